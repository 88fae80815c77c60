"""``dragsaw demo | version``."""

from __future__ import annotations

import argparse
from importlib import metadata

from dragsaw.platform.cli._common import UsageError


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


def register(sub: argparse._SubParsersAction) -> None:
    """Add this family's subcommands to the ``dragsaw`` parser."""
    p = sub.add_parser("demo", help="train a small network bare and with PDCR + UAFR attached (CPU, ~1 min)")
    p.add_argument("--steps", type=int, default=40, help="training steps per variant (default 40)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    p.set_defaults(func=_demo)

    p = sub.add_parser("version", help="print the installed version")
    p.set_defaults(func=_version)
