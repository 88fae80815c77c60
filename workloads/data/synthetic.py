"""Synthetic look-alikes that WRITE the official 2D layouts, so that the real loaders
read them: a dermoscopy set in the ISIC 2016 layout and a chest X-ray set in the
Montgomery layout (the 3D MSD brain look-alike lives in ``synthetic3d.py``).

Each writer is seeded and deterministic (same arguments -> same bytes), writes into a
temporary folder first and moves the finished folders into place, and leaves a
``.dragsaw_synthetic_<kind>.json`` marker with its arguments: called again with the
same arguments it returns at once; with other arguments over an existing set it
refuses unless ``overwrite=True``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from dragsaw.workloads._checks import closest

_ISIC_FOLDERS = ("ISBI2016_ISIC_Part1_Training_Data", "ISBI2016_ISIC_Part1_Training_GroundTruth",
                 "ISBI2016_ISIC_Part1_Test_Data", "ISBI2016_ISIC_Part1_Test_GroundTruth")


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) coordinates in [0, 1], float64, each (h, w)."""
    return np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")


def _smooth(rng: np.random.Generator, y: np.ndarray, x: np.ndarray, terms: int = 6, freq: float = 4.0) -> np.ndarray:
    """A smooth random field, roughly in [-1, 1]: a sum of random plane waves (no resampling,
    so the result does not depend on an image library's interpolation)."""
    out = np.zeros_like(y)
    for _ in range(terms):
        f = rng.uniform(0.5, 1.0) * freq * 2 * np.pi
        a = rng.uniform(0, 2 * np.pi)
        out += np.cos(f * (np.cos(a) * x + np.sin(a) * y) + rng.uniform(0, 2 * np.pi))
    return out / np.sqrt(terms / 2)


def _ids(rng: np.random.Generator, n: int) -> list[int]:
    """``n`` increasing, non-contiguous numbers from 0 (gaps of 1 to 4)."""
    return [int(v) for v in np.cumsum(rng.integers(1, 5, size=n)) - 1]


def _dermoscopy(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """One dermoscopy-like RGB image (h, w, 3) uint8 and its 0/255 lesion mask (h, w) uint8."""
    y, x = _grid(h, w)
    y, x = y * h / max(h, w), x * w / max(h, w)  # isotropic units
    cy, cx = h / max(h, w) * rng.uniform(0.4, 0.6), w / max(h, w) * rng.uniform(0.4, 0.6)
    r0 = rng.uniform(0.16, 0.3)
    theta, dist = np.arctan2(y - cy, x - cx), np.hypot(y - cy, x - cx)
    wobble = sum(rng.uniform(0, 0.16) / np.sqrt(k) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
                 for k in range(2, 8))
    radius = r0 * (1 + wobble + 0.04 * _smooth(rng, y, x, freq=12))  # irregular, wobbly border
    mask = dist < radius
    alpha = np.clip((radius - dist) / (0.03 * r0 + 0.006) + 0.5, 0, 1)  # blurred border

    skin = np.array([226, 178, 152]) * rng.uniform(0.9, 1.05, size=3)
    skin_img = skin * (1 + 0.05 * _smooth(rng, y, x, freq=3)[..., None])
    light, dark = np.array([158, 108, 78]), np.array([84, 52, 40])  # browns, mixed by a smooth field
    mix = np.clip(0.5 + 0.35 * _smooth(rng, y, x, freq=6), 0, 1)[..., None]
    lesion = (light * (1 - mix) + dark * mix) * rng.uniform(0.8, 1.1, size=3) ** 0.3
    core = np.clip(1 - dist / np.maximum(radius, 1e-6), 0, 1)[..., None]  # darker towards the centre
    texture = 1 + 0.08 * _smooth(rng, y, x, freq=14)[..., None] + 0.05 * _smooth(rng, y, x, freq=30)[..., None]
    grey = np.clip(_smooth(rng, y, x, freq=5), 0, 1)[..., None] * rng.uniform(0, 0.5)  # blue-grey veil
    lesion_img = (lesion * texture * (1 - 0.3 * core)) * (1 - grey) + np.array([105, 100, 115]) * grey
    img = skin_img * (1 - alpha[..., None]) + lesion_img * alpha[..., None]

    for _ in range(int(rng.integers(0, 4))):  # dark globules inside the lesion
        gy, gx = cy + rng.uniform(-0.5, 0.5) * r0, cx + rng.uniform(-0.5, 0.5) * r0
        img *= 1 - 0.3 * np.exp(-((y - gy) ** 2 + (x - gx) ** 2) / (2 * (0.02 * rng.uniform(0.5, 1.5)) ** 2))[..., None]

    hairs = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(0, 6))):  # thin dark curves (quadratic Bezier)
        p = rng.uniform(-0.1, 1.1, size=(3, 2)) * (w, h)
        t = np.linspace(0, 1, 60)[:, None]
        curve = (1 - t) ** 2 * p[0] + 2 * t * (1 - t) * p[1] + t ** 2 * p[2]
        cv2.polylines(hairs, [np.round(curve * 4).astype(np.int32)], False, 255, int(rng.integers(1, 3)),
                      cv2.LINE_AA, shift=2)
    img = img * (1 - 0.75 * hairs[..., None] / 255) + np.array([45, 32, 26]) * 0.75 * hairs[..., None] / 255

    yc, xc = y - h / max(h, w) / 2, x - w / max(h, w) / 2
    vignette = 1 - rng.uniform(0.2, 0.45) * (yc ** 2 + xc ** 2) / 0.5  # darker corners
    img = img * vignette[..., None] + rng.normal(0, 5, size=img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8), np.where(mask, 255, 0).astype(np.uint8)


def _chest(rng: np.random.Generator, h: int, w: int, tb: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A chest-X-ray-like grayscale image (h, w) uint8 and the patient's left and right lung
    masks (0/255). The patient's left lung is on the image's right, as on a PA film."""
    y, x = _grid(h, w)
    body = ((x - 0.5) / 0.47) ** 2 + ((y - 0.6) / 0.62) ** 2 < 1
    img = np.where(body, 0.62, 0.08) + 0.04 * _smooth(rng, y, x, freq=3)
    lungs = []
    for side in (-1, 1):  # image left (patient's right), image right (patient's left)
        cx, cy = 0.5 + side * rng.uniform(0.17, 0.21), rng.uniform(0.46, 0.52)
        ax, ay = rng.uniform(0.11, 0.14), rng.uniform(0.27, 0.32)
        theta = np.arctan2(y - cy, x - cx)
        wob = 1 + 0.05 * np.cos(2 * theta + rng.uniform(0, 6.3)) + 0.03 * np.cos(3 * theta + rng.uniform(0, 6.3))
        inside = ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 < wob
        inside &= y < cy + ay * 0.8 - 0.06 * np.cos((x - cx) / ax * 1.5)  # domed diaphragm
        lungs.append(inside)
    lung = lungs[0] | lungs[1]
    img = np.where(lung, 0.24 + 0.05 * _smooth(rng, y, x, freq=8), img)
    img += 0.16 * np.exp(-((x - 0.5) / 0.07) ** 2) * (y > 0.15)  # mediastinum and spine
    img += 0.12 * np.exp(-(((x - 0.56) / 0.1) ** 2 + ((y - 0.68) / 0.1) ** 2)) * ~lung  # heart
    for k in range(9):  # ribs: bright curved bands
        y0 = 0.2 + 0.075 * k + rng.uniform(-0.01, 0.01)
        arc = y0 + 0.9 * (x - 0.5) ** 2 - 0.1 * np.abs(x - 0.5)
        img += 0.1 * np.exp(-((y - arc) / 0.012) ** 2) * body
    if tb:  # opacities in the upper lobes
        for _ in range(int(rng.integers(2, 5))):
            side = lungs[int(rng.integers(0, 2))]
            ys, xs = np.nonzero(side & (y < 0.45))
            if len(ys):
                i = int(rng.integers(0, len(ys)))
                img += 0.18 * np.exp(-((y - y[ys[i], xs[i]]) ** 2 + (x - x[ys[i], xs[i]]) ** 2) / (2 * 0.03 ** 2))
    img = img + rng.normal(0, 0.025, size=img.shape)
    as_u8 = lambda a: np.clip(np.round(a * 255), 0, 255).astype(np.uint8)
    return as_u8(img), as_u8(lungs[1].astype(float)), as_u8(lungs[0].astype(float))


def _write(kind: str, root, folders: tuple[str, ...], params: dict, overwrite: bool,
           fill: Callable[[Path], None]) -> Path:
    """Run ``fill(tmp)`` in a temporary folder under ``root``, then move ``folders`` into
    ``root`` and write the marker; reuse or refuse an existing set (see the module doc)."""
    root = Path(root).expanduser()
    marker = root / f".dragsaw_synthetic_{kind}.json"
    present = [f for f in folders if (root / f.split("/")[0]).exists()]
    if present:
        if marker.is_file() and json.loads(marker.read_text()) == params and not overwrite:
            return root
        if not overwrite:
            raise FileExistsError(f"{root} already holds {sorted({p.split('/')[0] for p in present})}, not written "
                                  f"by write_synthetic({kind!r}) with {params}; pass overwrite=True to replace them")
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".tmp-synthetic-") as tmp:
        fill(Path(tmp))
        for top in sorted({f.split("/")[0] for f in folders}):
            if (root / top).exists():
                shutil.rmtree(root / top)
            os.replace(Path(tmp) / top, root / top)
    marker.write_text(json.dumps(params))
    return root


def write_isic2016(root: str | os.PathLike[str], n_train: int = 40, n_test: int = 16, size: tuple[int, int] = (192, 256), seed: int = 0,
                   overwrite: bool = False) -> Path:
    """Write a dermoscopy-like set in the ISIC 2016 layout under ``root`` and return ``root``.

    ``size`` is (H, W) in pixels. Images: RGB JPEGs (quality 90) of a brown, irregular,
    blurred-border lesion on lighter skin, with texture, hairs and vignetting; masks:
    0/255 PNGs. Ids ``ISIC_xxxxxxx`` are increasing but not contiguous, train and test
    interleaved as in the official set.
    """
    if n_train < 1 or n_test < 1:
        raise ValueError(f"`n_train` and `n_test` must be >= 1, but got n_train={n_train}, n_test={n_test}")
    h, w = (int(s) for s in size)
    if min(h, w) < 32:
        raise ValueError(f"`size` must be (H, W) with both >= 32, but got {size}")
    params = {"n_train": n_train, "n_test": n_test, "size": [h, w], "seed": seed}

    def fill(tmp: Path) -> None:
        rng = np.random.default_rng(seed)
        ids = _ids(rng, n_train + n_test)
        is_test = np.zeros(len(ids), bool)
        is_test[rng.permutation(len(ids))[:n_test]] = True
        for folder in _ISIC_FOLDERS:
            (tmp / folder).mkdir()
        for i, number in enumerate(ids):
            image, mask = _dermoscopy(np.random.default_rng([seed, int(number)]), h, w)
            data, truth = _ISIC_FOLDERS[2:] if is_test[i] else _ISIC_FOLDERS[:2]
            Image.fromarray(image).save(tmp / data / f"ISIC_{number:07d}.jpg", quality=90)
            Image.fromarray(mask).save(tmp / truth / f"ISIC_{number:07d}_Segmentation.png")

    return _write("isic2016", root, _ISIC_FOLDERS, params, overwrite, fill)


def write_mc(root: str | os.PathLike[str], n: int = 24, size: tuple[int, int] = (256, 256), seed: int = 0, overwrite: bool = False) -> Path:
    """Write a chest-X-ray-like set in the Montgomery layout under ``root`` and return ``root``.

    ``size`` is (H, W). Images: 8-bit grayscale PNGs, two dark lung fields beside a bright
    mediastinum, ribs, noise; ``_1`` (tuberculosis) cases add upper-lobe opacities. About
    58/138 of the cases are ``_1`` (at least one of each). Masks: 0/255 PNGs in
    ``ManualMask/leftMask`` (the patient's left lung, on the image's right) and ``rightMask``.
    """
    if n < 2:
        raise ValueError(f"`n` must be >= 2 (at least one normal and one tuberculosis case), but got {n}")
    h, w = (int(s) for s in size)
    if min(h, w) < 32:
        raise ValueError(f"`size` must be (H, W) with both >= 32, but got {size}")
    params = {"n": n, "size": [h, w], "seed": seed}
    folders = ("MontgomerySet/CXR_png", "MontgomerySet/ManualMask/leftMask", "MontgomerySet/ManualMask/rightMask")

    def fill(tmp: Path) -> None:
        rng = np.random.default_rng(seed)
        numbers = [v + 1 for v in _ids(rng, n)]
        tb = rng.random(n) < 58 / 138
        tb[0], tb[-1] = False, True  # both kinds present
        for folder in folders:
            (tmp / folder).mkdir(parents=True)
        for number, sick in zip(numbers, tb):
            name = f"MCUCXR_{number:04d}_{int(sick)}.png"
            image, left, right = _chest(np.random.default_rng([seed, number]), h, w, bool(sick))
            for folder, array in zip(folders, (image, left, right)):
                Image.fromarray(array).save(tmp / folder / name)

    return _write("mc", root, folders, params, overwrite, fill)


def _write_msd_brain(root, **kw) -> Path:
    from dragsaw.workloads.data.synthetic3d import (
        write_msd_brain,  # NIfTI code, imported only when asked for
    )

    return write_msd_brain(root, **kw)


#: kind (the dataset name it mimics) -> writer(root, **options)
WRITERS: dict[str, Callable[..., Path]] = {"isic2016": write_isic2016, "mc": write_mc, "msd_brain": _write_msd_brain}


def write_synthetic(kind: str, root: str | os.PathLike[str], **kw: Any) -> Path:
    """Write the synthetic look-alike of dataset ``kind`` under ``root``; read it back with
    ``load_dataset(kind, root)``. ``kw`` go to the writer (:func:`write_isic2016`,
    :func:`write_mc`, ``synthetic3d.write_msd_brain``)."""
    if kind not in WRITERS:
        raise ValueError(f"`kind` must be one of {sorted(WRITERS)}, but got {kind!r}; {closest(str(kind), WRITERS)}")
    return WRITERS[kind](root, **kw)


__all__ = ["WRITERS", "write_isic2016", "write_mc", "write_synthetic"]
