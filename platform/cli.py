"""The ``dragsaw`` command: small subcommands (Optuna's CLI habit). Bad input exits with
status 2 and a message naming the problem, never a traceback; nothing is launched and
nothing stored is touched before every check has passed."""

from __future__ import annotations

import argparse
import sys
from importlib import metadata

DEFAULT_STORE = "./results"


class UsageError(Exception):
    """Bad input from the user: printed without a traceback, exit status 2."""


def _input_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the input is wrong" (exit 2), imported lazily."""
    from dragsaw.platform.experiment.errors import SpecError
    from dragsaw.platform.launch import LaunchError
    from dragsaw.platform.store import StoreError
    from dragsaw.workloads.data import DatasetError

    return UsageError, SpecError, LaunchError, StoreError, DatasetError


def _version(args) -> int:
    print(f"dragsaw {metadata.version('dragsaw')}")
    return 0


def _demo(args) -> int:
    if args.steps < 1:
        raise UsageError(f"--steps must be >= 1, but got {args.steps}")
    if args.size < 32 or args.size % 4:
        raise UsageError(f"--size must be a multiple of 4 and >= 32, but got {args.size}")
    from dragsaw.workloads.demo import plugin_demo

    plugin_demo(steps=args.steps, seed=args.seed, size=args.size)
    return 0


def _validate(args) -> int:
    from dragsaw.platform.launch import validate

    spec, trials = validate(args.spec, args.set, smoke=args.smoke)
    what = f"{len(trials)} trials" if trials is not None else "a search"
    print(f"{args.spec}: valid ({spec.name}: {what})")
    return 0


def _run(args) -> int:
    from dragsaw.platform.launch import launch

    return launch(args.spec, overrides=args.set, store=args.store, address=args.address, dry_run=args.dry_run,
                  smoke=args.smoke)


def _resume(args) -> int:
    from dragsaw.platform.launch import resume

    return resume(args.name, store=args.store or DEFAULT_STORE, address=args.address)


def _status(args) -> int:
    from dragsaw.platform.launch import status

    print(status(args.store or DEFAULT_STORE, args.name))
    return 0


def _leaderboard(args) -> int:
    from dragsaw.platform.leaderboard import format_rows, leaderboard
    from dragsaw.platform.store import ResultStore

    store = ResultStore(args.store)
    store.check_readable()
    try:
        rows = leaderboard(store, experiment=args.experiment, dataset=args.dataset, metric=args.metric,
                           convention=args.convention, baseline=args.baseline)
    except ValueError as err:  # an unknown experiment, dataset, variant or baseline
        raise UsageError(str(err)) from None
    if not rows:
        raise UsageError(f"no completed trials in {args.store}"
                         + (f" for experiment {args.experiment!r}" if args.experiment else "")
                         + (f" and dataset {args.dataset!r}" if args.dataset else ""))
    print(format_rows(rows, args.format))
    return 0


def _compact(args) -> int:
    from dragsaw.platform.store import ResultStore

    store = ResultStore(args.store)
    store.check()
    written = store.compact(args.experiment)
    print(f"compacted {args.store}: {written}")
    return 0


def _report(args) -> int:
    from dragsaw.platform.report import write_report

    page = write_report(args.store, args.experiment, args.out,
                        trials_for_pictures=None if args.pictures == "auto" else [])
    print(f"report written: {page} (and report.md beside it)")
    return 0


def _datasets(args) -> int:
    from dragsaw.workloads.data import DATASETS, load_dataset

    if args.action == "list":
        for name, (module, cls) in sorted(DATASETS.items()):
            print(f"{name:<14} dragsaw.workloads.data.{module}.{cls}")
        return 0
    if not args.name or not args.root:
        raise UsageError("usage: dragsaw datasets check NAME ROOT [--option key=value ...]")
    options = {}
    for item in args.option or []:
        if "=" not in item:
            raise UsageError(f"--option must be key=value, but got {item!r}")
        key, value = item.split("=", 1)
        import yaml

        options[key] = yaml.safe_load(value)
    try:
        dataset = load_dataset(args.name, args.root, **options)
    except (TypeError, ValueError) as err:
        raise UsageError(str(err)) from None
    print(repr(dataset))
    for line in dataset.check():
        print(f"  {line}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dragsaw", description="PDCR / UAFR segmentation research at cluster scale.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="launch an experiment spec (grid or search) on Ray")
    p.add_argument("spec", help="experiment YAML, e.g. configs/experiments/quickstart.yaml")
    p.add_argument("--store", help="results URL (overrides the spec's `store`): a folder, s3://bucket/prefix, ...")
    p.add_argument("--address", help="Ray cluster address (default: start Ray in this process)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a spec field")
    p.add_argument("--dry-run", action="store_true", help="print the expanded trials and resources, run nothing")
    p.add_argument("--smoke", action="store_true",
                   help="apply the spec's `smoke:` overrides first: its tiny version (CI, synthetic data, CPU)")
    p.set_defaults(func=_run)

    p = sub.add_parser("resume", help="continue an interrupted experiment from the store")
    p.add_argument("name")
    p.add_argument("--store", help=f"results URL (default {DEFAULT_STORE})")
    p.add_argument("--address")
    p.set_defaults(func=_resume)

    p = sub.add_parser("status", help="experiments in a store and how far they got")
    p.add_argument("name", nargs="?")
    p.add_argument("--store", help=f"results URL (default {DEFAULT_STORE})")
    p.set_defaults(func=_status)

    p = sub.add_parser("leaderboard", help="aggregated results: mean, std, n, rank, paired tests")
    p.add_argument("--store", default=DEFAULT_STORE)
    p.add_argument("--experiment")
    p.add_argument("--dataset")
    p.add_argument("--metric", default="dice", choices=["dice", "jaccard", "accuracy"])
    p.add_argument("--convention", choices=["paper2d", "foreground"])
    p.add_argument("--baseline", help="variant to compare the others with (paired tests)")
    p.add_argument("--format", default="table", choices=["table", "markdown", "csv", "json"])
    p.set_defaults(func=_leaderboard)

    p = sub.add_parser("report", help="an experiment as HTML + Markdown: paper-shaped tables, figures, provenance")
    p.add_argument("--store", default=DEFAULT_STORE)
    p.add_argument("--experiment", required=True)
    p.add_argument("--out", required=True, help="folder for report.html, report.md and the PNG files")
    p.add_argument("--pictures", default="auto", choices=["auto", "none"],
                   help="uncertainty maps and t-SNE from the best trials' checkpoints (auto), or none")
    p.set_defaults(func=_report)

    p = sub.add_parser("compact", help="merge each partition's result files into one (faster leaderboards)")
    p.add_argument("--store", default=DEFAULT_STORE)
    p.add_argument("--experiment")
    p.set_defaults(func=_compact)

    p = sub.add_parser("validate", help="check a spec without running it")
    p.add_argument("spec")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--smoke", action="store_true", help="check the spec with its `smoke:` overrides applied")
    p.set_defaults(func=_validate)

    p = sub.add_parser("datasets", help="list the dataset loaders, or check an extracted dataset")
    p.add_argument("action", choices=["list", "check"])
    p.add_argument("name", nargs="?")
    p.add_argument("root", nargs="?")
    p.add_argument("--option", action="append", metavar="KEY=VALUE")
    p.set_defaults(func=_datasets)

    p = sub.add_parser("demo", help="train a small network bare and with PDCR + UAFR attached (CPU, ~1 min)")
    p.add_argument("--steps", type=int, default=40, help="training steps per variant (default 40)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    p.set_defaults(func=_demo)

    p = sub.add_parser("version", help="print the installed version")
    p.set_defaults(func=_version)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        errors = _input_errors()
    except ImportError:  # a broken install must not hide behind exit status 2
        raise
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
