"""The critical-difference diagram of Demsar (2006), Fig. 1: an axis of mean ranks (1 = best,
on the left), each variant's name on a line down to its mean rank, the Nemenyi critical
difference drawn as a bar above the axis, and thick bars joining variants whose mean ranks
differ by less than it (no significant difference). matplotlib's object API with the Agg
canvas: no pyplot state, no display."""

from __future__ import annotations

import io
from pathlib import Path

from dragsaw.platform.leaderboard._across import Ranking, cliques

FORMATS = ("png", "svg")


def draw_cd_diagram(ranking: Ranking, path: str | Path | None = None, fmt: str | None = None) -> bytes:
    """The diagram of ``ranking`` as PNG or SVG bytes; also written to ``path`` when given.

    fmt: "png" | "svg"; default: ``path``'s suffix, else "png". Raises ValueError when the
    ranking has fewer than two variants (nothing to draw) or the format is unknown."""
    fmt = (fmt or (Path(path).suffix.lstrip(".").lower() if path is not None else "png")) or "png"
    if fmt not in FORMATS:
        raise ValueError(f"the diagram's format must be one of {list(FORMATS)} (from the file suffix or fmt), "
                         f"but got {fmt!r}")
    ranks = ranking.mean_ranks
    if len(ranks) < 2:
        raise ValueError("a critical-difference diagram needs >= 2 ranked variants; " + "; ".join(ranking.notes))
    from matplotlib.figure import Figure

    k = len(ranks)
    order = sorted(ranks, key=lambda v: (ranks[v], v))
    left, right = order[: (k + 1) // 2], order[(k + 1) // 2:]
    rows = max(len(left), len(right))
    groups = cliques(ranks, ranking.cd)
    height = 1.5 + 0.28 * rows + 0.12 * len(groups)
    fig = Figure(figsize=(7.0, height), dpi=100)
    ax = fig.add_axes((0.22, 0.0, 0.56, 1.0))
    top = 0.0
    ax.set_xlim(1, k)
    ax.set_ylim(-(rows + 1.2) * 0.28 - 0.12 * len(groups) - 0.1, 1.05)
    ax.axis("off")
    ax.plot([1, k], [top, top], color="black", lw=1)
    for r in range(1, k + 1):
        ax.plot([r, r], [top, top + 0.08], color="black", lw=1)
        ax.text(r, top + 0.12, str(r), ha="center", va="bottom", fontsize=9)
    for r in range(1, k):
        ax.plot([r + 0.5, r + 0.5], [top, top + 0.04], color="black", lw=0.7)
    # The critical difference, as a bar from rank 1.
    cd_y = top + 0.5
    ax.plot([1, 1 + ranking.cd], [cd_y, cd_y], color="black", lw=1.5)
    for x in (1, 1 + ranking.cd):
        ax.plot([x, x], [cd_y - 0.04, cd_y + 0.04], color="black", lw=1.5)
    ax.text(1 + ranking.cd / 2, cd_y + 0.05, f"CD = {ranking.cd:.2f} (Nemenyi, α = {ranking.alpha:g})",
            ha="center", va="bottom", fontsize=8)
    bars = -0.12 * len(groups) - 0.1
    for i, v in enumerate(left):
        y = bars - 0.28 * (i + 1)
        ax.plot([ranks[v], ranks[v], 1 - 0.05], [top, y, y], color="black", lw=0.8, clip_on=False)
        ax.text(1 - 0.08, y, f"{v} ({ranks[v]:.2f})", ha="right", va="center", fontsize=9, clip_on=False)
    for i, v in enumerate(reversed(right)):
        y = bars - 0.28 * (i + 1)
        ax.plot([ranks[v], ranks[v], k + 0.05], [top, y, y], color="black", lw=0.8, clip_on=False)
        ax.text(k + 0.08, y, f"({ranks[v]:.2f}) {v}", ha="left", va="center", fontsize=9, clip_on=False)
    for i, group in enumerate(groups):
        y = -0.15 - 0.12 * i
        ax.plot([ranks[group[0]] - 0.03, ranks[group[-1]] + 0.03], [y, y], color="black", lw=3.5,
                solid_capstyle="butt")
    friedman = ranking.friedman
    title = f"Mean ranks of {ranking.metric} over {len(ranking.blocks)} datasets"
    if friedman is not None:
        title += f"; Friedman p = {friedman.p_value:.3g}" if friedman.p_value >= 1e-4 else "; Friedman p < 0.0001"
    ax.text((1 + k) / 2, 0.95, title, ha="center", va="top", fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, bbox_inches="tight", metadata={"Date": None} if fmt == "svg" else None)
    data = buf.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


__all__ = ["FORMATS", "draw_cd_diagram"]
