"""The ``dragsaw`` command: small subcommands (Optuna's CLI habit), one module per family.
Bad input exits with status 2 and a message naming the problem, never a traceback; nothing
is launched and nothing stored is touched before every check has passed.

    experiments.py  run, resume, status, validate, compact
    results.py      leaderboard, report
    datasets.py     datasets list | check
    misc.py         demo, version
    search.py       best
"""

from __future__ import annotations

import argparse
import sys

from dragsaw.platform.cli import datasets, experiments, misc, results, search
from dragsaw.platform.cli._common import DEFAULT_STORE, UsageError, input_errors

__all__ = ["DEFAULT_STORE", "UsageError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: each family module adds its subcommands."""
    parser = argparse.ArgumentParser(prog="dragsaw", description="PDCR / UAFR segmentation research at cluster scale.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for family in (experiments, results, datasets, misc, search):
        family.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dragsaw`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    errors = input_errors()  # an ImportError here is a broken install: it must not read as exit 2
    try:
        return args.func(args)
    except errors as err:
        print(f"dragsaw {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dragsaw {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
