"""Variants ranked across the experiment's datasets (Demsar 2006): a table of per-dataset
ranks, mean ranks, Nemenyi and Holm-corrected Wilcoxon tests against the baseline, and the
critical-difference diagram, from the boards' Dice rows (the largest data fraction of each
dataset)."""

from __future__ import annotations

from dragsaw.platform.leaderboard import across_datasets, draw_cd_diagram
from dragsaw.platform.report.document import Block, Cell, Figure, Table, Text
from dragsaw.platform.report.tables import Board, p_text


def ranking_blocks(boards: list[Board], metric: str = "dice", alpha: float = 0.05) -> list[Block]:
    """The ranking table and the CD diagram; [] with fewer than two datasets or variants."""
    largest: dict[str, Board] = {}
    for b in boards:
        if b.dataset not in largest or (b.fraction or 1) >= (largest[b.dataset].fraction or 1):
            largest[b.dataset] = b
    rows = [r for b in largest.values() for r in b.rows.get(metric, {}).values()]
    if len(largest) < 2 or not rows:
        return []
    ranking = across_datasets(rows, alpha=alpha)
    if not ranking.rows:
        return [Text("No ranking across datasets: " + "; ".join(ranking.notes))]
    columns = ["Variant", "Mean rank"] + [f"Rank {d}" for d in ranking.blocks]
    columns += ["p Nemenyi vs baseline", "p Wilcoxon vs baseline (Holm)", "Wilcoxon p-value"]
    table_rows = []
    for r in ranking.rows:
        cells = [Cell(r["variant"]), Cell(f"{r['mean_rank']:.2f}", bold=r is ranking.rows[0])]
        cells += [Cell(f"{r[f'rank {d}']:g}") for d in ranking.blocks]
        cells += [Cell(p_text(r["p_nemenyi"])), Cell(p_text(r["p_holm"])), Cell(r["wilcoxon"] or "—")]
        table_rows.append(cells)
    f = ranking.friedman
    notes = [f"Ranks of the mean {metric.upper() if metric != 'dice' else 'DI'} over runs per dataset (1 = best, "
             "ties averaged). Friedman " + (f"chi2 = {f.chi2:.2f}, F_F = {f.f:.2f}, p = {p_text(f.p_value)}; "
                                            if f is not None else "") +
             f"Nemenyi critical difference CD = {ranking.cd:.2f} at alpha = {alpha:g} (mean ranks further apart "
             "differ significantly); Wilcoxon signed-rank tests over datasets against the baseline "
             f"{ranking.baseline or '—'}, Holm-adjusted (Demsar 2006; Benavoli et al. 2016)."]
    notes += ranking.notes
    table = Table(columns, table_rows, f"Ranking across {len(ranking.blocks)} datasets", notes)
    figure = Figure("cd-diagram", draw_cd_diagram(ranking, fmt="png"),
                    f"Critical-difference diagram: mean ranks across {len(ranking.blocks)} datasets (1 = best, on "
                    f"the left); thick bars join variants whose mean ranks differ by less than the Nemenyi CD "
                    f"({ranking.cd:.2f}, alpha {alpha:g}), i.e. not significantly.")
    return [table, figure]


__all__ = ["ranking_blocks"]
