"""Plots of the stored results as PNG: learning curves, the per-layer lines of Figs. 5 and 6,
and the data-fraction curve of Fig. 7 (matplotlib's object API with the Agg canvas: no
pyplot state, no display).

Per-layer sweeps are detected from the trial configs, not from variant names: a variant is a
*per-layer point* when its plug-ins sit at exactly one layer (one PDCR site on one layer, or
one UAFR / SE / CBAM block); its *line* is the plug-in kind (RF-PDCR, H-PDCR, UAFR, SE, CBAM)
plus the options that differ from the plug-in's defaults (e.g. ``H-PDCR (affinity=constant)``,
the affinity variants of Fig. 5). A dataset gets the per-layer plot when some line has points
at two or more layers. Variants without plug-ins are drawn as the dotted baseline, and the
best variant that uses one kind at several layers as a dashed line ("best usage").
"""

from __future__ import annotations

import io
import math
import re
from collections import defaultdict

import pyarrow as pa
import pyarrow.compute as pc
from matplotlib.ticker import MaxNLocator

from dragsaw.platform.report.collect import Experiment
from dragsaw.platform.report.document import Figure, slug
from dragsaw.platform.report.tables import Board

_PDCR_OPTIONS = ("phi", "affinity", "series", "position_encoding", "sampling", "tau", "patch_sizes", "constant")
_BLOCK_OPTIONS = {"uafr": ("kernel_size", "use_f", "hidden"), "se": ("reduction",), "cbam": ("reduction", "kernel_size")}
_STAGE = re.compile(r"^(encoder|decoder)[._-]?(\d+)$")


def _canvas(width: float, height: float, ncols: int = 1):
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(width, height), dpi=90)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _largest_fraction(boards: list[Board]) -> dict[str, Board]:
    out: dict[str, Board] = {}
    for b in boards:
        if b.dataset not in out or (b.fraction or 1) >= (out[b.dataset].fraction or 1):
            out[b.dataset] = b
    return out


_CURVES = ("train_loss", "dice", "val_dice")


def _mean_curves(exp: Experiment, members: list) -> dict[str, dict[tuple[str, str], dict[int, float]]]:
    """dataset -> (variant, metric name) -> epoch -> mean over ``members`` (the trials drawn,
    each its counted attempt) of the ``_CURVES`` metrics, read chunk by chunk: memory holds one
    chunk of the epochs table and the sums, whatever the number of trials and epochs."""
    keys = pa.table({"dataset": [t.dataset for t in members], "trial_id": [t.trial_id for t in members],
                     "attempt": pa.array([t.attempt for t in members], pa.int64())})
    wanted = pa.array(_CURVES, pa.string())
    by = ["dataset", "variant", "name", "epoch"]
    parts = []
    for chunk in exp.store.scan("epochs", exp.name, columns=["dataset", "trial_id", "attempt", "variant", "epoch",
                                                                "name", "value"]):
        chunk = chunk.filter(pc.field("name").isin(wanted) & pc.field("value").is_valid())
        chunk = chunk.join(keys, ["dataset", "trial_id", "attempt"], join_type="inner")
        if chunk.num_rows:
            parts.append(chunk.group_by(by).aggregate([("value", "sum"), ("value", "count")]))
    out: dict[str, dict[tuple[str, str], dict[int, float]]] = defaultdict(dict)
    if not parts:
        return out
    total = pa.concat_tables(parts).group_by(by).aggregate([("value_sum", "sum"), ("value_count", "sum")])
    for r in total.to_pylist():
        out[r["dataset"]].setdefault((r["variant"], r["name"]), {})[r["epoch"]] = \
            r["value_sum_sum"] / r["value_count_sum"]
    return out


# --- learning curves -------------------------------------------------------------------------


def learning_curves(exp: Experiment, boards: list[Board]) -> list[Figure]:
    """Per dataset: train loss and Dice per epoch, mean over the seeds and folds of each variant
    (the trials of the largest data fraction)."""
    chosen = _largest_fraction(boards)
    members = [t for board in chosen.values() for ts in board.trials.values() for t in ts]
    if not members:
        return []
    curves_of = _mean_curves(exp, members)
    figures = []
    for dataset, board in chosen.items():
        curves = curves_of.get(dataset)
        if not curves:
            continue
        fig, axes = _canvas(10, 3.8, 2)
        for ax, name, label in ((axes[0], "train_loss", "train loss"), (axes[1], "dice", "Dice (held-out)")):
            # eval.selection best_val: the validation Dice, dashed, beside the held-out one
            shown = [(name, "-", "")] + ([("val_dice", "--", " (validation)")] if name == "dice" else [])
            for variant in board.variants:
                for key, style, suffix in shown:
                    points = curves.get((variant, key))
                    if points:
                        xs = sorted(points)
                        ax.plot(xs, [points[x] for x in xs], marker="o", ms=3, ls=style, label=variant + suffix)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(label)
            ax.grid(alpha=0.3)
        axes[1].legend(fontsize=7)
        validated = any(name == "val_dice" for _, name in curves)
        figures.append(Figure(f"learning-curves-{slug(dataset)}", _png(fig),
                              f"Learning curves on {board.title}: mean over seeds and folds per variant."
                              + (" Dashed: Dice on the validation cases carved from the training data "
                                 "(eval.selection: best_val)." if validated else "")))
    return figures


# --- per-layer lines (Figs. 5, 6) --------------------------------------------------------------


def placement(config: dict) -> list[tuple[str, tuple[str, ...]]]:
    """(line name, layers) of every plug-in block a trial config attaches."""
    from dragsaw.workloads.pdcr.config import PDCRConfig
    from dragsaw.workloads.plugins.config import CBAMConfig, SEConfig, UAFRConfig

    plugins = config.get("plugins") or {}
    out = []
    pdcr = plugins.get("pdcr")
    if pdcr:
        options = _options(pdcr, PDCRConfig, _PDCR_OPTIONS)
        for site in pdcr.get("sites", []):
            kind = "RF-PDCR" if site.get("patch") == "receptive_field" else "H-PDCR"
            out.append((kind + options, tuple(site.get("layers", ()))))
    for key, model in (("uafr", UAFRConfig), ("se", SEConfig), ("cbam", CBAMConfig)):
        block = plugins.get(key)
        if block:
            out.append((key.upper() + _options(block, model, _BLOCK_OPTIONS[key]), tuple(block.get("layers", ()))))
    return out


def _options(values: dict, model, names) -> str:
    changed = []
    for name in names:
        default = model.model_fields[name].default
        default = list(default) if isinstance(default, tuple) else default
        if name in values and values[name] != default and values[name] is not None:
            value = values[name]
            changed.append(f"{name}={'-'.join(map(str, value)) if isinstance(value, list) else value}")
    return f" ({', '.join(changed)})" if changed else ""


def _layer_key(layer: str):
    m = _STAGE.match(layer)
    return (0 if m.group(1) == "encoder" else 1, int(m.group(2)), "") if m else (2, 0, layer)


def per_layer(exp: Experiment, boards: list[Board]) -> list[Figure]:
    """Figs. 5 / 6: held-out Dice against the layer a plug-in sits at, one line per kind."""
    figures = []
    for dataset, board in _largest_fraction(boards).items():
        points: dict[str, dict[str, tuple[float, float]]] = defaultdict(dict)
        baselines, multi = [], defaultdict(list)
        for v in board.variants:
            row = board.row("dice", v)
            if not row or row.get("mean") is None:
                continue
            blocks = placement(board.trials[v][0].config)
            layers = {layer for _, ls in blocks for layer in ls}
            kinds = {kind for kind, _ in blocks}
            if not blocks:
                baselines.append((v, row))
            elif len(kinds) == 1 and len(layers) == 1 and all(len(ls) == 1 for _, ls in blocks):
                points[kinds.pop()][layers.pop()] = (row["mean"], row["std"])
            elif len(kinds) == 1:
                multi[kinds.pop()].append((v, row))
        lines = {k: p for k, p in points.items() if len(p) >= 2}
        if not lines:
            continue
        layers = sorted({layer for p in lines.values() for layer in p}, key=_layer_key)
        fig, axes = _canvas(7.5, 4.2)
        ax = axes[0]
        for kind, p in lines.items():
            xs = [i for i, layer in enumerate(layers) if layer in p]
            ys = [100 * p[layers[i]][0] for i in xs]
            errs = [_err(p[layers[i]][1]) for i in xs]
            ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=kind)
        for v, row in baselines:
            ax.axhline(100 * row["mean"], ls=":", color="tab:blue", label=f"baseline ({v})")
        for kind in lines:
            if multi.get(kind):
                v, row = max(multi[kind], key=lambda x: x[1]["mean"])
                ax.axhline(100 * row["mean"], ls="--", color="tab:red", alpha=0.7, label=f"best {kind} usage ({v})")
        ax.set_xticks(range(len(layers)), layers, rotation=30, fontsize=8)
        ax.set_ylabel("Dice (%)")
        ax.set_xlabel("layer")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        figures.append(Figure(f"per-layer-{slug(dataset)}", _png(fig),
                              f"Per layer on {board.title} (as Figs. 5 and 6): mean held-out Dice ± std of the "
                              "variants that attach one plug-in at one layer; dotted: no plug-in; dashed: the "
                              "best variant using that kind at several layers."))
    return figures


# --- data fractions (Fig. 7) -----------------------------------------------------------------


def _fraction_of(board: Board) -> float:
    if board.fraction is None:
        raise ValueError(f"{board.title}: a board without a data fraction has no place on a fraction curve")
    return board.fraction


def fraction_curves(exp: Experiment, boards: list[Board]) -> list[Figure]:
    """Fig. 7: held-out Dice against the fraction of training data, one line per variant, per
    dataset whose trials differ by ``data.fraction``."""
    by_dataset: dict[str, list[Board]] = defaultdict(list)
    for b in boards:
        if b.fraction is not None:
            by_dataset[b.dataset].append(b)
    figures = []
    for dataset, group in by_dataset.items():
        group.sort(key=_fraction_of)
        fig, axes = _canvas(7.5, 4.2)
        ax = axes[0]
        for variant in exp.ordered({v for b in group for v in b.variants}):
            pts = [(100 * _fraction_of(b), r) for b in group if (r := b.row("dice", variant))]
            pts = [(x, r) for x, r in pts if r.get("mean") is not None]
            if pts:
                ax.errorbar([x for x, _ in pts], [100 * r["mean"] for _, r in pts],
                            yerr=[_err(r["std"]) for _, r in pts],
                            marker="o", capsize=3, label=variant)
        full = group[-1]
        for v in full.variants:
            if exp.baseline_of(v) == v and (r := full.row("dice", v)):
                ax.axhline(100 * r["mean"], ls=":", color="gray", label=f"{v} at {100 * _fraction_of(full):g}%")
        ax.set_xlabel("training data used (%)")
        ax.set_ylabel("Dice (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        figures.append(Figure(f"data-fraction-{slug(dataset)}", _png(fig),
                              f"Data fraction on {dataset} (as Fig. 7): mean held-out Dice ± std over seeds and "
                              "folds against the share of the training cases used."))
    return figures


def _err(std) -> float:
    """An error bar in percent; none for an undefined std (one trial)."""
    return 0.0 if std is None or math.isnan(std) else 100 * std


__all__ = ["fraction_curves", "learning_curves", "per_layer", "placement"]
