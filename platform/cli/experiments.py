"""``dragsaw run | resume | status | validate | compact``: experiments and their progress."""

from __future__ import annotations

import argparse

from dragsaw.platform.cli._common import address_parent, spec_parent, store_parent, store_url


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 7 * 24 * 3600:
        raise argparse.ArgumentTypeError(f"must be a number of seconds in (0, 604800], got {text!r}")
    return value


def _validate(args: argparse.Namespace) -> int:
    from dragsaw.platform.launch import validate

    spec, preview = validate(args.spec, args.set, smoke=args.smoke)
    print(f"{args.spec}: valid")
    for line in preview.summary():
        print(line)
    return 0


def _run(args: argparse.Namespace) -> int:
    from dragsaw.platform.launch import launch

    return launch(args.spec, overrides=args.set, store=args.store, address=args.address, dry_run=args.dry_run,
                  smoke=args.smoke, wait_for_resources=args.wait_for_resources, take_over=args.take_over)


def _resume(args: argparse.Namespace) -> int:
    from dragsaw.platform.launch import resume

    return resume(args.name, store=store_url(args), address=args.address, take_over=args.take_over)


def _status(args: argparse.Namespace) -> int:
    from dragsaw.platform.launch.driver import status

    print(status(store_url(args), args.name))
    return 0


def _compact(args: argparse.Namespace) -> int:
    from dragsaw.platform.store import ResultStore

    url = store_url(args)
    store = ResultStore(url)
    store.check()
    written = store.compact(args.experiment, verify=True)  # on demand: also rebuild damaged caches
    print(f"compacted {url}: {written}")
    return 0


def _take_over_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--take-over", action="store_true",
                   help="run even though another driver holds the experiment's lease (refused otherwise, exit 2, "
                        "naming its host and pid). Use it only when that driver is gone: a killed driver's lease "
                        "expires by itself DRAGSAW_LEASE_SECONDS (default 60) s after its last heartbeat")


def register(sub: argparse._SubParsersAction) -> None:
    """Add this family's subcommands to the ``dragsaw`` parser."""
    store, address, spec = store_parent(), address_parent(), spec_parent()

    p = sub.add_parser("run", parents=[spec, store, address], help="launch an experiment spec (grid or search) on Ray")
    p.add_argument("--dry-run", action="store_true",
                   help="print every trial, the resources, an estimate of the cost and the missing dataset roots; "
                        "needs no data, runs and writes nothing")
    p.add_argument("--wait-for-resources", type=_seconds, default=None, metavar="SECONDS",
                   help="with --address on a cluster with an autoscaler: wait up to SECONDS for a node that fits "
                        "one trial (default: refuse at once, exit 2, when no node can place a trial)")
    _take_over_option(p)
    p.set_defaults(func=_run)

    p = sub.add_parser("resume", parents=[store, address], help="continue an interrupted experiment from the store")
    p.add_argument("name", metavar="NAME", help="experiment name as in its spec's `name` (see `dragsaw status`)")
    _take_over_option(p)
    p.set_defaults(func=_resume)

    p = sub.add_parser("status", parents=[store], help="experiments in a store and how far they got")
    p.add_argument("name", nargs="?", metavar="NAME", help="one experiment (default: every experiment in the store)")
    p.set_defaults(func=_status)

    p = sub.add_parser("validate", parents=[spec], help="check a spec without running it")
    p.set_defaults(func=_validate)

    p = sub.add_parser("compact", parents=[store],
                       help="merge each partition's result files into one (faster leaderboards); "
                            "checks the existing merged files and rebuilds damaged ones")
    p.add_argument("--experiment", metavar="NAME", help="compact one experiment (default: every experiment)")
    p.set_defaults(func=_compact)
