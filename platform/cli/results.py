"""``dragsaw leaderboard | report``: reading results."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dragsaw.platform.cli._common import UsageError, store_parent, store_url


def _leaderboard(args: argparse.Namespace) -> int:
    from dragsaw.platform.leaderboard import (
        across_datasets,
        draw_cd_diagram,
        format_rows,
        leaderboard,
    )
    from dragsaw.platform.leaderboard._cd_diagram import FORMATS as DIAGRAM_FORMATS
    from dragsaw.platform.store import ResultStore

    if args.cd_diagram and args.across is None:
        raise UsageError("--cd-diagram needs --across datasets (the diagram ranks variants across datasets)")
    if args.cd_diagram and Path(args.cd_diagram).suffix.lstrip(".").lower() not in DIAGRAM_FORMATS:
        raise UsageError(f"--cd-diagram must end in one of {['.' + f for f in DIAGRAM_FORMATS]}, "
                         f"but got {args.cd_diagram!r}")
    if not 0 < args.alpha < 1:
        raise UsageError(f"--alpha must lie in (0, 1), but got {args.alpha}")
    baseline = None if args.baseline.lower() == "none" else args.baseline
    url = store_url(args)
    store = ResultStore(url)
    store.check_readable()
    try:
        rows = leaderboard(store, experiment=args.experiment, dataset=args.dataset, metric=args.metric,
                           convention=args.convention, baseline=baseline, alpha=args.alpha,
                           exclude_incomplete=args.exclude_incomplete)
    except ValueError as err:  # an unknown experiment, dataset, variant or baseline
        raise UsageError(str(err)) from None
    if not rows:
        raise UsageError(f"no completed trials in {url}"
                         + (f" for experiment {args.experiment!r}" if args.experiment else "")
                         + (f" and dataset {args.dataset!r}" if args.dataset else ""))
    ranking = across_datasets(rows, baseline=baseline if baseline not in (None, "spec") else None,
                              alpha=args.alpha)
    if args.across is None:
        print(format_rows(rows, args.format, legend=not args.no_legend))
        if args.format in ("table", "markdown") and ranking.rows:  # several datasets: their ranking too
            short = [{k: r[k] for k in ("variant", "mean_rank", "n_datasets", "friedman_p", "cd", "p_holm")}
                     for r in ranking.rows]
            print(f"\nRanking across {len(ranking.blocks)} datasets (details: --across datasets):\n")
            print(format_rows(short, args.format))
        return 0
    if not ranking.rows:
        raise UsageError("nothing to rank across datasets: " + "; ".join(ranking.notes))
    print(format_rows(ranking.rows, args.format, legend=not args.no_legend))
    if args.format in ("table", "markdown"):
        f = ranking.friedman
        print(f"\n{ranking.metric}: {len(ranking.rows)} variants over {len(ranking.blocks)} datasets; Friedman "
              f"chi2 = {f.chi2:.3f}, F_F = {f.f:.3f}, p = {f.p_value:.3g}; Nemenyi CD = {ranking.cd:.3f} "
              f"(alpha {ranking.alpha:g})" if f is not None else "")
        for note in ranking.notes:
            print(f"note: {note}")
    if args.cd_diagram:
        draw_cd_diagram(ranking, args.cd_diagram)
        print(f"critical-difference diagram written: {args.cd_diagram}", file=sys.stderr)
    return 0


def _report(args: argparse.Namespace) -> int:
    from dragsaw.platform.report import write_report

    page = write_report(store_url(args), args.experiment, args.out,
                        trials_for_pictures=None if args.pictures == "auto" else [])
    print(f"report written: {page} (and report.md beside it)")
    return 0


def _epilog() -> str:
    from dragsaw.platform.leaderboard import COLUMNS, RANK_COLUMNS, legend

    return ("columns:\n" + _indent(legend(COLUMNS, COLUMNS)) + "\n\ncolumns with --across datasets (and one "
            "`rank <dataset>` per dataset):\n" + _indent(legend(RANK_COLUMNS, RANK_COLUMNS)))


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def register(sub: argparse._SubParsersAction) -> None:
    """Add this family's subcommands to the ``dragsaw`` parser."""
    store = store_parent()

    p = sub.add_parser("leaderboard", parents=[store], formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="aggregated results: mean, std, n, rank, comparisons with the baseline",
                       description="One row per experiment, dataset, data fraction and variant, recomputed from "
                                   "the stored per-case counts. Each variant is compared with its baseline by a "
                                   "two-level bootstrap over training runs and test cases.",
                       epilog=_epilog())
    p.add_argument("--experiment", metavar="NAME", help="one experiment (default: every experiment in the store)")
    p.add_argument("--dataset", metavar="NAME", help="one dataset, as named in the spec (default: each dataset)")
    p.add_argument("--metric", default="dice", choices=["dice", "jaccard", "accuracy"],
                   help="the per-case score ranked and compared (default: dice)")
    p.add_argument("--convention", choices=["paper2d", "foreground"],
                   help="which classes are averaged per case: paper2d (all, background too) or foreground "
                        "(nnU-Net); default: each trial's own")
    p.add_argument("--baseline", default="spec", metavar="VARIANT",
                   help="variant to compare the others with; `spec` (default): the baseline the experiment's "
                        "spec declares, each variant against its own (with axes fcn+pdcr against fcn+baseline); "
                        "`none`: no comparisons")
    p.add_argument("--alpha", type=float, default=0.05,
                   help="significance level of the verdict and of the critical difference (default: 0.05)")
    p.add_argument("--across", choices=["datasets"],
                   help="rank the variants across datasets (and experiments sharing variants): mean ranks, "
                        "Friedman, Nemenyi CD, Holm-corrected Wilcoxon against the baseline")
    p.add_argument("--cd-diagram", metavar="FILE",
                   help="with --across datasets: write the critical-difference diagram to FILE (.png or .svg)")
    p.add_argument("--format", default="table", choices=["table", "markdown", "csv", "json"],
                   help="output format (default: table; json writes undefined values as null)")
    p.add_argument("--no-legend", action="store_true",
                   help="leave out the column legend under table and markdown output")
    p.add_argument("--exclude-incomplete", action="store_true",
                   help="leave out completed trials whose cases data is missing or differs from what they "
                        "recorded, naming them on stderr (default: exit 2 naming them)")
    p.set_defaults(func=_leaderboard)

    p = sub.add_parser("report", parents=[store],
                       help="an experiment as HTML + Markdown: paper-shaped tables, figures, provenance")
    p.add_argument("--experiment", required=True, metavar="NAME", help="experiment name as in its spec's `name`")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for report.html, report.md and the PNG files")
    p.add_argument("--pictures", default="auto", choices=["auto", "none"],
                   help="uncertainty maps and t-SNE from the best trials' checkpoints (auto), or none")
    p.set_defaults(func=_report)
