"""``write_report``: read an experiment from a store and write ``report.html`` (one
self-contained page) and ``report.md`` with its PNG files into a folder."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from dragsaw.platform.report import html, markdown
from dragsaw.platform.report.collect import Experiment, ReportError, load_experiment
from dragsaw.platform.report.document import Block, Document, Section, Text
from dragsaw.platform.report.figures import fraction_curves, learning_curves, per_layer
from dragsaw.platform.report.pictures import default_choice, pictures
from dragsaw.platform.report.provenance import provenance_blocks
from dragsaw.platform.report.ranking import ranking_blocks
from dragsaw.platform.report.tables import (
    Board,
    cross_dataset_table,
    paired_table,
    results_table,
    scoreboards,
)


def write_report(store_url: str, experiment: str, out_dir: str | Path, *,
                 trials_for_pictures: Sequence[str] | None = None, max_picture_cases: int = 3) -> Path:
    """Write the report of ``experiment`` in the result store at ``store_url`` into ``out_dir``
    (created if absent): ``report.html``, ``report.md`` and one PNG per figure. Returns the path
    of ``report.html``.

    trials_for_pictures: trial ids whose uncertainty maps (Fig. 9) and t-SNE (Fig. 8) are drawn
    from their stored checkpoints; None chooses the best trial of the best variant with UAFR or
    PDCR and of its baseline; an empty sequence draws none.
    max_picture_cases: held-out cases per trial in those pictures (>= 1).
    Raises ReportError (a ValueError) for an unknown experiment or trial id, StoreError when the
    store cannot be read.
    """
    if isinstance(max_picture_cases, bool) or not isinstance(max_picture_cases, int) or max_picture_cases < 1:
        raise ValueError(f"`max_picture_cases` must be an int >= 1, but got {max_picture_cases!r}")
    if isinstance(trials_for_pictures, str):
        raise TypeError(f"`trials_for_pictures` must be a list of trial ids, but got the str {trials_for_pictures!r}")
    exp = load_experiment(store_url, experiment)
    boards = scoreboards(exp)
    chosen = _chosen(exp, boards, trials_for_pictures)
    doc = Document(f"dragsaw report: {exp.name}", _subtitle(exp), [])
    doc.sections.append(Section("Overview", _overview(exp, boards)))
    for board in boards:
        blocks: list[Block] = [results_table(exp, board)]
        paired = paired_table(board)
        if paired is not None:
            blocks.append(paired)
        doc.sections.append(Section(f"Results: {board.title}", blocks))
    across = cross_dataset_table(exp, boards)
    if across is not None:
        doc.sections.append(Section("Across datasets (Table II)", [across]))
    ranking = ranking_blocks(boards)
    if ranking:
        doc.sections.append(Section("Ranking across datasets (critical-difference diagram)", ranking))
    for title, figures in (("Learning curves", learning_curves(exp, boards)),
                           ("Per-layer ablation (Figs. 5, 6)", per_layer(exp, boards)),
                           ("Limited training data (Fig. 7)", fraction_curves(exp, boards))):
        if figures:
            doc.sections.append(Section(title, list(figures)))
    if chosen:
        figures, notes = pictures(exp, chosen, max_picture_cases)
        doc.sections.append(Section("Uncertainty maps and t-SNE (Figs. 8, 9)",
                                    [*figures, *(Text(f"Note: {n}") for n in notes)]))
    doc.sections.append(Section("Provenance", provenance_blocks(exp)))
    return _write(doc, Path(out_dir))


def _chosen(exp: Experiment, boards: list[Board], ids: Sequence[str] | None):
    if ids is None:
        return default_choice(exp, boards)
    by_id = {t.trial_id: t for t in exp.trials}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        some = ", ".join(sorted(by_id)[:10]) + (", ..." if len(by_id) > 10 else "")
        raise ReportError(f"`trials_for_pictures` names trials without a completed attempt in {exp.name!r}: "
                          f"{unknown}; completed trials: {some or 'none'}")
    return [by_id[i] for i in ids]


def _subtitle(exp: Experiment) -> str:
    from dragsaw.platform.store.provenance import git_commit, versions

    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    description = exp.spec.get("description")
    return ((f"{description}. " if description else "") + f"Generated {now} from {exp.store.url} by dragsaw "
            f"{versions().get('dragsaw', '?')} (commit {git_commit()}).")


def _overview(exp: Experiment, boards: list[Board]) -> list:
    variants = exp.ordered({t.variant for t in exp.trials})
    conventions = sorted({c for b in boards for r in b.rows.get("dice", {}).values()
                          if (c := r.get("convention")) is not None})
    failed = sum(1 for a in exp.attempts if a["status"] != "completed")
    out = [Text(f"{len(exp.trials)} completed trials (and {failed} failed or stopped attempts) of "
                f"{len(variants)} variants on {len(exp.datasets())} dataset(s): {', '.join(exp.datasets()) or 'none'}. "
                f"Variants: {', '.join(variants) or 'none'}. Baseline: {exp.baseline_label or 'none'}."),
           Text("Scores are in percent, recomputed from the stored per-case confusion counts: mean ± std over "
                "folds and seeds, with the number of trials in brackets, under the averaging convention "
                f"{' / '.join(conventions) or '—'} (paper2d: background and foreground averaged per image, as "
                "the paper's 2D numbers; foreground: nnU-Net's mean over foreground classes). The paper's "
                "numbers (platform/report/paper_numbers.py) are shown only where dataset and protocol are the "
                "paper's; '—' where it reports none.")]
    if not exp.trials:
        out.append(Text("No trial of this experiment has completed yet: there is nothing to score."))
    return out


def _write(doc: Document, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    names = set()
    for figure in doc.figures():
        base, k = figure.name, 2
        while figure.name in names:
            figure.name = f"{base}-{k}"
            k += 1
        names.add(figure.name)
        (out / f"{figure.name}.png").write_bytes(figure.png)
    (out / "report.md").write_text(markdown.render(doc), encoding="utf-8")
    page = out / "report.html"
    page.write_text(html.render(doc), encoding="utf-8")
    return page


__all__ = ["write_report"]
