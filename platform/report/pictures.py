"""Fig. 9 uncertainty grids and Fig. 8 t-SNE plots for chosen trials, rebuilt from what the
store keeps: the trial's config (``config_json``) and its final weights
(``{store}/_checkpoints/{experiment}/{trial_id}/weights.pt``; a ``trial.pt`` resume checkpoint
where a store has no weights file).

A trial is rebuilt with ``Trial(config)`` from its stored config, and the checkpoint's network
weights are loaded once its config hash (``dragsaw.workloads.canonical.config_hash``, the one
the trial wrote into the checkpoint) is checked to be the stored config's. Two settings only
say where the trial ran, so they are adapted to this machine before the trial is built:
``device`` (CPU when the trial ran on a GPU and none is here) and ``cache_dir`` (the default
cache when the trial's is absent here). What stops a picture for a known reason (no
checkpoint, a checkpoint of another config, a config this version cannot read, data not on
this machine, a 3D dataset) skips it with a note saying why; anything else is a bug and fails
the report.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from dragsaw.platform.report.collect import Experiment, TrialRow
from dragsaw.platform.report.document import Figure
from dragsaw.platform.report.tables import Board
from dragsaw.platform.store.checkpoints import CheckpointStore

#: The layer of Fig. 9's uncertainty maps (layer 2 of the encoder), used when it carries UAFR.
FIG9_STAGE = "encoder.2"
TSNE_VECTORS_PER_CASE = 64


def default_choice(exp: Experiment, boards: list[Board]) -> list[TrialRow]:
    """The best trial (highest stored Dice) of the best variant with UAFR or PDCR (highest mean
    Dice on the first dataset that has one, at its largest data fraction; ties go to UAFR, then
    to UAFR + PDCR), and the best trial of that variant's baseline on the same dataset."""
    full: dict[str, Board] = {}
    for b in boards:
        if b.dataset not in full or (b.fraction or 1) >= (full[b.dataset].fraction or 1):
            full[b.dataset] = b
    for board in full.values():
        means = {v: (board.row("dice", v) or {}).get("mean") for v in board.variants}
        plugged = [v for v in board.variants if _has_plugins(board.trials[v][0]) and means[v] is not None]
        if not plugged:
            continue
        # Ties go to the variant with UAFR (it has an uncertainty map), then with PDCR too.
        best = max(plugged, key=lambda v: (means[v], bool(board.trials[v][0].plugins.get("uafr")),
                                           bool(board.trials[v][0].plugins.get("pdcr"))))
        chosen = []
        baseline = exp.baseline_of(best)
        if baseline in board.trials and baseline != best:
            chosen.append(_best_trial(board.trials[baseline]))
        chosen.append(_best_trial(board.trials[best]))
        return chosen
    return []


def _has_plugins(t: TrialRow) -> bool:
    return bool(t.plugins.get("uafr") or t.plugins.get("pdcr"))


def _best_trial(trials: list[TrialRow]) -> TrialRow:
    return max(trials, key=lambda t: (t.dice if t.dice is not None else -1.0, t.trial_id))


def pictures(exp: Experiment, trials: list[TrialRow], max_cases: int) -> tuple[list[Figure], list[str]]:
    """(figures, notes): an uncertainty grid for each chosen trial with UAFR, and one t-SNE
    figure with a panel per chosen trial at a common layer (the first PDCR layer of the
    chosen trials, else their UAFR layer)."""
    figures, notes, rebuilt = [], [], []
    with tempfile.TemporaryDirectory(prefix="dragsaw-report-") as work:
        for t in trials:
            trial, note = _rebuild(exp, t)
            if note:
                notes.append(note)
                continue
            rebuilt.append((t, trial))
            if not t.plugins.get("uafr"):
                notes.append(f"trial {t.trial_id} ({t.variant}) has no UAFR block: no uncertainty map")
                continue
            figures.append(_uncertainty(t, trial, Path(work), max_cases))
        if rebuilt:
            figure, note = _tsne(rebuilt, Path(work), max_cases)
            figures += [figure] if figure else []
            notes += [note] if note else []
    return figures, notes


def _uncertainty(t: TrialRow, trial, work: Path, max_cases: int) -> Figure:
    from dragsaw.workloads.pictures import uncertainty_grid

    layers = list(t.plugins["uafr"].get("layers", []))
    stage = FIG9_STAGE if FIG9_STAGE in layers else layers[0]
    png = uncertainty_grid(trial.model, trial.plugins, trial.cache, list(trial.eval_ids[:max_cases]), stage,
                           work / f"fig9-{t.trial_id}.png", device=trial.device)
    return Figure(f"uncertainty-{t.trial_id}", with_colorbar(png.read_bytes()),
                  f"Uncertainty maps (as Fig. 9) of trial {t.trial_id} ({t.variant}, {t.dataset}, fold {t.fold}, "
                  f"seed {t.seed}) at {stage}: image, ground truth, prediction, and UAFR's normalised entropy u "
                  "on a fixed scale from 0 (black: one map certain) to 1 (yellow: all maps equally likely), see "
                  "the colour bar. A map that is yellow almost everywhere is UAFR finding the stage's features "
                  "uninformative (u near 1), not a confident prediction.")


def with_colorbar(png: bytes) -> bytes:
    """The uncertainty grid (a PNG whose last column is u on magma's fixed [0, 1] scale, as
    ``workloads.pictures.uncertainty_grid`` draws it) with a labelled colour bar beside it,
    so that the maps cannot be read the wrong way round."""
    import io

    import matplotlib.image as mpimg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure as MplFigure

    image = mpimg.imread(io.BytesIO(png), format="png")
    height, width = image.shape[:2]
    dpi = 100
    fig = MplFigure(figsize=(width / dpi + 1.1, height / dpi), dpi=dpi)
    ax = fig.add_axes((0.0, 0.0, width / (width + 110), 1.0))
    ax.imshow(image)
    ax.axis("off")
    bar = fig.add_axes((width / (width + 110) + 0.01, 0.15, 0.02, 0.7))
    colorbar = fig.colorbar(ScalarMappable(Normalize(0, 1), "magma"), cax=bar)
    colorbar.set_label("uncertainty u (normalised entropy)", fontsize=9)
    colorbar.set_ticks([0, 0.25, 0.5, 0.75, 1.0])
    colorbar.ax.set_yticklabels(["0 certain", "0.25", "0.5", "0.75", "1 uniform"], fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def _rebuild(exp: Experiment, t: TrialRow):
    """(Trial with its trained weights, None) or (None, why not)."""
    from pydantic import ValidationError

    from dragsaw.workloads.canonical import config_hash
    from dragsaw.workloads.data import DatasetError
    from dragsaw.workloads.recipe import Trial, TrialConfig
    from dragsaw.workloads.recipe import checkpoint as ckpt

    where = f"trial {t.trial_id} ({t.variant})"
    if t.config.get("data", {}).get("name", "").startswith("msd_") or t.config.get("model", {}).get("name") == "unet3d":
        return None, f"{where}: pictures are drawn for 2D datasets only"
    try:
        stored = TrialConfig.model_validate(t.config)
    except ValidationError as err:
        return None, f"{where}: its stored config is not one this version can run: {str(err)[:300]}"
    store = CheckpointStore(exp.store_url, exp.name)
    try:  # a finished trial's weights.pt; a trial.pt (resume checkpoint) of older stores
        weights = store.weights(t.trial_id)
        directory = None if weights else store.restore(t.trial_id)
    except OSError as err:
        return None, f"{where}: cannot read its checkpoint: {type(err).__name__}: {err}"
    if weights is None and directory is None:
        return None, (f"{where}: no stored checkpoint (_checkpoints/{exp.name}/{t.trial_id}/weights.pt; "
                      "`checkpoints: none` keeps none, a search only its best samples'): skipped")
    try:
        if weights is not None:
            state = ckpt.load_weights(weights, config_hash(stored))
        else:
            assert directory is not None
            state = ckpt.load(directory, config_hash(stored))
    except ckpt.CheckpointMismatch:
        return None, f"{where}: its checkpoint was written for another config than the stored one: skipped"
    finally:
        if weights:
            os.unlink(weights)
        if directory:
            shutil.rmtree(directory, ignore_errors=True)
    try:
        trial = Trial(_here(stored, _cuda()), data_root=_staged(stored.data.root))
    except (DatasetError, OSError) as err:  # the data is not on this machine, nor can be staged
        return None, f"{where}: cannot be rebuilt here: {type(err).__name__}: {str(err)[:300]}"
    trial.model.load_state_dict(state["model"])
    return trial, None


def _staged(root: str) -> str | None:
    """This machine's staged copy of a URL data root (staged now if absent), else None."""
    from dragsaw.platform.datasets.staging import is_url, stage

    return str(stage(root).path) if is_url(root) else None


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _here(config, cuda: bool):
    """``config`` with device and cache folder adapted to this machine (see the module doc)."""
    update = {}
    if config.device == "cuda" and not cuda:
        update["device"] = "cpu"
    if config.cache_dir and not Path(config.cache_dir).is_dir():
        update["cache_dir"] = None
    return config.model_copy(update=update) if update else config


def _tsne(rebuilt, work: Path, max_cases: int):
    from dragsaw.workloads.pictures import hidden_vectors, tsne_figure
    from dragsaw.workloads.plugins.stages import declared_stages

    stage = None
    for t, _ in rebuilt:
        sites = (t.plugins.get("pdcr") or {}).get("sites") or []
        if sites:
            stage = sites[0]["layers"][0]
            break
    if stage is None:
        layers = [layer for t, _ in rebuilt for layer in (t.plugins.get("uafr") or {}).get("layers", [])]
        stage = FIG9_STAGE if FIG9_STAGE in layers else (layers[0] if layers else FIG9_STAGE)
    sets: dict = {}
    classes: list[str] = []
    for t, trial in rebuilt:
        network = getattr(trial.model, "model", trial.model) if trial.plugins is not None else trial.model
        stages = declared_stages(network)
        path = stages[stage].module if stage in stages else stage
        if path not in dict(network.named_modules()):
            return None, f"t-SNE: trial {t.trial_id} has no layer {stage!r}"
        cases = list(trial.eval_ids[:max_cases])
        pdcr = "with PDCR" if t.plugins.get("pdcr") else "without PDCR"
        sets[f"{t.variant}, {pdcr} ({t.trial_id[:8]})"] = hidden_vectors(
            trial.model, path, trial.cache, cases, per_case=TSNE_VECTORS_PER_CASE, device=trial.device)
        classes = classes or list(trial.dataset.classes)
    png = tsne_figure(sets, classes, work / "fig8.png")
    return Figure("tsne", png.read_bytes(),
                  f"t-SNE (as Fig. 8) of {TSNE_VECTORS_PER_CASE} feature vectors per held-out case at {stage} "
                  f"({max_cases} cases per trial), coloured by the class at each vector's cell centre."), None


__all__ = ["FIG9_STAGE", "default_choice", "pictures"]
