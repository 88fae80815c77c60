"""The ``dragsaw`` command. Subcommands are small functions registered in ``COMMANDS``;
bad input exits with status 2 and a one-paragraph message, never a traceback."""

from __future__ import annotations

import argparse
import sys
from importlib import metadata


class UsageError(Exception):
    """Bad input from the user: printed without a traceback, exit status 2."""


def _version(args: argparse.Namespace) -> int:
    print(f"dragsaw {metadata.version('dragsaw')}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    if args.steps < 1:
        raise UsageError(f"--steps must be >= 1, but got {args.steps}")
    if args.size < 32 or args.size % 4:
        raise UsageError(f"--size must be a multiple of 4 and >= 32, but got {args.size}")
    from dragsaw.workloads.demo import plugin_demo

    plugin_demo(steps=args.steps, seed=args.seed, size=args.size)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dragsaw", description="PDCR / UAFR segmentation research at cluster scale.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("version", help="print the installed version")
    p.set_defaults(func=_version)
    p = sub.add_parser("demo", help="train a small network bare and with PDCR + UAFR attached (CPU, ~1 min)")
    p.add_argument("--steps", type=int, default=40, help="training steps per variant (default 40)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    p.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UsageError as err:
        print(f"dragsaw {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
