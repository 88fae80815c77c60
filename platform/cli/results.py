"""``dragsaw leaderboard | report``: reading results."""

from __future__ import annotations

import argparse

from dragsaw.platform.cli._common import UsageError, store_parent, store_url


def _leaderboard(args: argparse.Namespace) -> int:
    from dragsaw.platform.leaderboard import format_rows, leaderboard
    from dragsaw.platform.store import ResultStore

    url = store_url(args)
    store = ResultStore(url)
    store.check_readable()
    try:
        rows = leaderboard(store, experiment=args.experiment, dataset=args.dataset, metric=args.metric,
                           convention=args.convention, baseline=args.baseline)
    except ValueError as err:  # an unknown experiment, dataset, variant or baseline
        raise UsageError(str(err)) from None
    if not rows:
        raise UsageError(f"no completed trials in {url}"
                         + (f" for experiment {args.experiment!r}" if args.experiment else "")
                         + (f" and dataset {args.dataset!r}" if args.dataset else ""))
    print(format_rows(rows, args.format))
    return 0


def _report(args: argparse.Namespace) -> int:
    from dragsaw.platform.report import write_report

    page = write_report(store_url(args), args.experiment, args.out,
                        trials_for_pictures=None if args.pictures == "auto" else [])
    print(f"report written: {page} (and report.md beside it)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this family's subcommands to the ``dragsaw`` parser."""
    store = store_parent()

    p = sub.add_parser("leaderboard", parents=[store], help="aggregated results: mean, std, n, rank, paired tests")
    p.add_argument("--experiment", metavar="NAME", help="one experiment (default: every experiment in the store)")
    p.add_argument("--dataset", metavar="NAME", help="one dataset, as named in the spec (default: each dataset)")
    p.add_argument("--metric", default="dice", choices=["dice", "jaccard", "accuracy"],
                   help="the per-case score ranked and compared (default: dice)")
    p.add_argument("--convention", choices=["paper2d", "foreground"],
                   help="which classes are averaged per case: paper2d (all, background too) or foreground "
                        "(nnU-Net); default: each trial's own")
    p.add_argument("--baseline", metavar="VARIANT", help="variant to compare the others with (paired tests)")
    p.add_argument("--format", default="table", choices=["table", "markdown", "csv", "json"],
                   help="output format (default: table)")
    p.set_defaults(func=_leaderboard)

    p = sub.add_parser("report", parents=[store],
                       help="an experiment as HTML + Markdown: paper-shaped tables, figures, provenance")
    p.add_argument("--experiment", required=True, metavar="NAME", help="experiment name as in its spec's `name`")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for report.html, report.md and the PNG files")
    p.add_argument("--pictures", default="auto", choices=["auto", "none"],
                   help="uncertainty maps and t-SNE from the best trials' checkpoints (auto), or none")
    p.set_defaults(func=_report)
