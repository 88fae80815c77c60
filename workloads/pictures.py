"""The paper's pictures for trained models: uncertainty grids (Fig. 9) and t-SNE of
hidden vectors coloured by class (Fig. 8). Writes PNG files with matplotlib (Agg)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dragsaw.workloads.data.cache import CaseCache
from dragsaw.workloads.data.loading import image_tensor_2d
from dragsaw.workloads.plugins import PluggedModel, Plugins
from dragsaw.workloads.uafr import UAFR


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _stage_output(model: nn.Module, module_path: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, raw output of ``module_path`` before any re-weighting hook) for input x."""
    captured = {}
    network = model.model if isinstance(model, PluggedModel) else model  # paths are the network's
    module = dict(network.named_modules())[module_path]
    handle = module.register_forward_hook(lambda m, i, o: captured.setdefault("out", o.detach()), prepend=True)
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        handle.remove()
    return logits, captured["out"]


def uncertainty_grid(model: nn.Module, plugins: Plugins, cache: CaseCache, case_ids: Sequence[str], stage: str,
                     out_png: str | Path, device: str | torch.device = "cpu") -> Path:
    """Fig. 9 for 2D cases: rows of image | ground truth | prediction | UAFR uncertainty
    (normalised entropy at ``stage``, upsampled to the image). ``stage`` is a config name
    that carries a UAFR block. Returns the PNG path."""
    key = stage.replace(".", "__")
    block = plugins.reweight[key] if key in plugins.reweight else None
    if not isinstance(block, UAFR):
        raise ValueError(f"stage {stage!r} has no UAFR block; UAFR stages: "
                         f"{[k.replace('__', '.') for k in plugins.reweight]}")
    path = plugins.paths[stage]
    plt = _plt()
    fig, axes = plt.subplots(len(case_ids), 4, figsize=(12, 3 * len(case_ids)), squeeze=False)
    model.eval()
    for row, case_id in zip(axes, case_ids):
        entry = cache.get(case_id)
        x = image_tensor_2d(entry["image"]).unsqueeze(0).to(device)
        logits, raw = _stage_output(model, path, x)
        with torch.no_grad():
            u = F.interpolate(block.uncertainty(raw), size=x.shape[2:], mode="bilinear", align_corners=False)
        panels = [entry["image"].squeeze(), entry["label"], logits.argmax(1)[0].cpu().numpy(), u[0, 0].cpu().numpy()]
        titles = [case_id, "ground truth", "prediction", f"uncertainty ({stage})"]
        for k, (ax, img, title) in enumerate(zip(row, panels, titles)):
            if k == 3:  # the uncertainty map, on its fixed [0, 1] scale
                ax.imshow(img, cmap="magma", vmin=0, vmax=1)
            else:
                ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    return _save(plt, fig, out_png)


def hidden_vectors(model: nn.Module, module_path: str, cache: CaseCache, case_ids: Sequence[str],
                   per_case: int = 64, seed: int = 0, device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Sample ``per_case`` vectors of a layer's output per 2D case, each labelled with the
    class at its cell centre. Returns (vectors (N, C) float32, classes (N,) int64)."""
    gen = torch.Generator().manual_seed(seed)
    vectors, classes = [], []
    model.eval()
    for case_id in case_ids:
        entry = cache.get(case_id)
        x = image_tensor_2d(entry["image"]).unsqueeze(0).to(device)
        _, feat = _stage_output(model, module_path, x)
        c, h, w = feat.shape[1:]
        flat = torch.randperm(h * w, generator=gen)[:per_case]
        ys, xs = flat // w, flat % w
        vectors.append(feat[0, :, ys, xs].T.cpu().numpy())
        label = entry["label"]
        cy = ((2 * ys + 1) * label.shape[0]) // (2 * h)
        cx = ((2 * xs + 1) * label.shape[1]) // (2 * w)
        classes.append(label[cy.numpy(), cx.numpy()].astype(np.int64))
    return np.concatenate(vectors).astype(np.float32), np.concatenate(classes)


def tsne_figure(sets: Mapping[str, tuple[np.ndarray, np.ndarray]], class_names: Sequence[str],
                out_png: str | Path, seed: int = 0) -> Path:
    """Fig. 8: one t-SNE panel per named set of (vectors, classes), e.g. without and with PDCR."""
    from sklearn.manifold import TSNE

    plt = _plt()
    fig, axes = plt.subplots(1, len(sets), figsize=(5 * len(sets), 4.5), squeeze=False)
    for ax, (name, (vectors, classes)) in zip(axes[0], sets.items()):
        perplexity = float(min(30, max(2, len(vectors) // 4)))
        emb = TSNE(n_components=2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(vectors)
        for k, cname in enumerate(class_names):
            sel = classes == k
            if sel.any():
                ax.scatter(emb[sel, 0], emb[sel, 1], s=6, label=cname)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(fontsize=8)
    return _save(plt, fig, out_png)


def _save(plt, fig, out_png: str | Path) -> Path:
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=80)
    plt.close(fig)
    return out_png
