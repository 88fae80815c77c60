"""``dragsaw run | resume | status | validate | compact``: experiments and their progress."""

from __future__ import annotations

import argparse

from dragsaw.platform.cli._common import address_parent, spec_parent, store_parent, store_url


def _validate(args: argparse.Namespace) -> int:
    from dragsaw.platform.launch import validate

    spec, trials = validate(args.spec, args.set, smoke=args.smoke)
    what = f"{len(trials)} trials" if trials is not None else "a search"
    print(f"{args.spec}: valid ({spec.name}: {what})")
    return 0


def _run(args: argparse.Namespace) -> int:
    from dragsaw.platform.launch import launch

    return launch(args.spec, overrides=args.set, store=args.store, address=args.address, dry_run=args.dry_run,
                  smoke=args.smoke)


def _resume(args: argparse.Namespace) -> int:
    from dragsaw.platform.launch import resume

    return resume(args.name, store=store_url(args), address=args.address)


def _status(args: argparse.Namespace) -> int:
    from dragsaw.platform.launch import status

    print(status(store_url(args), args.name))
    return 0


def _compact(args: argparse.Namespace) -> int:
    from dragsaw.platform.store import ResultStore

    url = store_url(args)
    store = ResultStore(url)
    store.check()
    written = store.compact(args.experiment)
    print(f"compacted {url}: {written}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this family's subcommands to the ``dragsaw`` parser."""
    store, address, spec = store_parent(), address_parent(), spec_parent()

    p = sub.add_parser("run", parents=[spec, store, address], help="launch an experiment spec (grid or search) on Ray")
    p.add_argument("--dry-run", action="store_true", help="print the expanded trials and resources, run nothing")
    p.set_defaults(func=_run)

    p = sub.add_parser("resume", parents=[store, address], help="continue an interrupted experiment from the store")
    p.add_argument("name", metavar="NAME", help="experiment name as in its spec's `name` (see `dragsaw status`)")
    p.set_defaults(func=_resume)

    p = sub.add_parser("status", parents=[store], help="experiments in a store and how far they got")
    p.add_argument("name", nargs="?", metavar="NAME", help="one experiment (default: every experiment in the store)")
    p.set_defaults(func=_status)

    p = sub.add_parser("validate", parents=[spec], help="check a spec without running it")
    p.set_defaults(func=_validate)

    p = sub.add_parser("compact", parents=[store],
                       help="merge each partition's result files into one (faster leaderboards)")
    p.add_argument("--experiment", metavar="NAME", help="compact one experiment (default: every experiment)")
    p.set_defaults(func=_compact)
