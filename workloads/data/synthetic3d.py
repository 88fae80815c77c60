"""A small, seeded look-alike of MSD ``Task01_BrainTumour``, written in the official
layout so that the real loader (:mod:`.msd`) reads it, quirks included.

Each case is a skull-stripped, brain-shaped ellipsoid with an irregular surface,
two ventricles and a tumour of nested irregular regions (enhancing core inside
non-enhancing tumour inside edema, labels 3/2/1 as in BraTS), imaged in
``channels`` of the four MSD modalities (FLAIR, T1w, t1gd, T2w) with contrasts that
separate the classes, a smooth multiplicative bias field per modality, Rician noise
and an arbitrary gain per modality (MR units are arbitrary). Case ``BRATS_002``
has no non-enhancing tumour (label 2), as 12 of the 484 real cases.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

TASK = "Task01_BrainTumour"
MODALITIES = ("FLAIR", "T1w", "t1gd", "T2w")  # the real file's names and order
LABELS = {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"}  # sic

# Relative signal per tissue and modality (FLAIR, T1w, t1gd, T2w), roughly BraTS-like;
# any two tissues differ by >= 0.3 in the first two channels, so channels=2 separates them.
_CONTRAST = {
    "brain": (0.45, 0.60, 0.55, 0.40),
    "csf": (0.10, 0.20, 0.15, 1.00),
    "edema": (0.90, 0.45, 0.50, 0.80),
    "non-enhancing": (0.60, 0.15, 0.30, 0.90),
    "enhancing": (0.75, 0.75, 1.00, 0.60),
}
_NOISE = 0.03  # Rician sigma, relative to the signals above
_JUNK = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(4066)  # an AppleDouble header


def _smooth_field(rng: np.random.Generator, grid, wavelength_mm: float, terms: int = 6) -> np.ndarray:
    """A cheap smooth random field of about unit variance: random plane waves."""
    field = 0.0
    for _ in range(terms):
        k = rng.normal(size=3)
        k *= 2 * np.pi / (np.linalg.norm(k) * wavelength_mm * rng.uniform(0.7, 1.4))
        field = field + np.cos(sum(ki * g for ki, g in zip(k, grid)) + rng.uniform(0, 2 * np.pi))
    return field * np.sqrt(2.0 / terms)


def _blob(rng, grid, centre, radius_mm: float, roughness: float = 0.2) -> np.ndarray:
    """Irregular ball: distance / radius perturbed by a smooth field, below 1."""
    dist = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre)))
    return dist / radius_mm + roughness * _smooth_field(rng, grid, 2.5 * radius_mm, terms=4) < 1


def synth_case(rng: np.random.Generator, shape: Sequence[int], spacing: Sequence[float], channels: int,
               with_non_enhancing: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One case: image (C, D, H, W) float32, label (D, H, W) uint8, on a (D, H, W) grid in mm."""
    grid = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing)],
                       indexing="ij", sparse=True)
    semi = np.array([n * s for n, s in zip(shape, spacing)]) * 0.38 * rng.uniform(0.9, 1.05, size=3)
    ellipsoid = np.sqrt(sum((g / a) ** 2 for g, a in zip(grid, semi)))
    brain = ellipsoid + 0.05 * _smooth_field(rng, grid, semi.min()) < 1

    tissue = np.where(brain, 1, 0)  # 0 air, 1 brain, 2 csf, then tumour classes + 2
    offset = semi[1] * rng.uniform(0.12, 0.2)
    for side in (-1, 1):  # two ventricles beside the midline (W axis)
        centre = (0.0, -semi[1] * 0.1, side * offset)
        tissue[brain & _blob(rng, grid, centre, semi.min() * 0.18, 0.1)] = 2

    direction = rng.normal(size=3)
    centre = direction / np.linalg.norm(direction) * semi * rng.uniform(0.05, 0.3)
    r_ed = semi.min() * rng.uniform(0.5, 0.7)
    r_ne = r_ed * rng.uniform(0.65, 0.8)
    r_en = r_ne * rng.uniform(0.6, 0.75)
    edema = brain & _blob(rng, grid, centre, r_ed)
    non_enh = edema & _blob(rng, grid, centre, r_ne)
    enh = (non_enh if with_non_enhancing else edema) & _blob(rng, grid, centre, r_en)
    label = np.zeros(shape, np.uint8)
    label[edema] = 1
    if with_non_enhancing:
        label[non_enh] = 2
    label[enh] = 3
    tissue = np.where(label > 0, label.astype(np.int64) + 2, tissue)

    table = np.array([[0.0] * 4] + [_CONTRAST[k] for k in ("brain", "csf", "edema", "non-enhancing", "enhancing")])
    image = np.empty((channels, *shape), np.float32)
    texture = 1 + 0.04 * _smooth_field(rng, grid, 6.0)  # grey/white-matter-like variation
    for c in range(channels):
        signal = table[tissue, c] * texture * np.exp(0.12 * _smooth_field(rng, grid, 2 * semi.max(), 3))
        real = signal + rng.normal(0, _NOISE, shape)
        magnitude = np.sqrt(real ** 2 + rng.normal(0, _NOISE, shape) ** 2)  # Rician
        image[c] = np.where(brain, magnitude, 0) * 1000 * rng.uniform(0.8, 1.25)  # skull-stripped
    return image, label


def _save(array_xyz: np.ndarray, spacing_dhw: Sequence[float], path: Path) -> None:
    """Write a NIfTI whose header zooms are (x, y, z) = reversed (D, H, W) spacing."""
    sx, sy, sz = spacing_dhw[::-1]
    affine = np.diag([-sx, -sy, sz, 1.0])  # RAS with the x/y flip that DICOM-derived files carry
    affine[:3, 3] = [sx * array_xyz.shape[0] / 2, sy * array_xyz.shape[1] / 2, -sz * array_xyz.shape[2] / 2]
    img = nib.Nifti1Image(array_xyz, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, str(path))


def write_msd_brain(root: str | os.PathLike[str], n: int = 10, shape: Sequence[int] = (48, 48, 48), channels: int = 2, seed: int = 0,
                    spacing: Sequence[float] = (1.5, 1.0, 1.0), n_test: int = 2, overwrite: bool = False) -> Path:
    """Write ``root/Task01_BrainTumour`` and return that folder.

    ``shape`` and ``spacing`` (mm) are (D, H, W) as the loader returns them (the files
    hold (X, Y, Z, C) = (W, H, D, C), zooms (1.0, 1.0, 1.5) by default). ``n`` labelled
    cases ``BRATS_001..``, ``n_test`` unlabeled imagesTs cases after them, and
    ``._BRATS_001.nii.gz`` junk in imagesTr and labelsTr. Case i depends only on
    (seed, i); files are byte-identical across runs. An existing folder written with
    the same arguments is returned as is; any other is refused unless ``overwrite``.
    """
    shape, spacing = tuple(int(s) for s in shape), tuple(float(s) for s in spacing)
    if not 1 <= n <= 999 - n_test or n_test < 0:
        raise ValueError(f"`n` must be in [1, {999 - n_test}] and `n_test` >= 0, but got n={n}, n_test={n_test}")
    if len(shape) != 3 or min(shape) < 8:
        raise ValueError(f"`shape` must be 3 sizes (D, H, W), each >= 8, but got {shape}")
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"`spacing` must be 3 positive sizes (D, H, W) in mm, but got {spacing}")
    if not 1 <= channels <= len(MODALITIES):
        raise ValueError(f"`channels` must be in [1, {len(MODALITIES)}], but got {channels}")
    params = {"n": n, "shape": list(shape), "channels": channels, "seed": seed, "spacing": list(spacing),
              "n_test": n_test}
    root = Path(root).expanduser()
    final = root / TASK
    if final.exists() and not overwrite:
        if _written_with(final) == params:
            return final
        raise FileExistsError(f"{final} exists and was not written with {params}; pass overwrite=True to replace it")

    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{TASK}.", dir=root))  # whole folder or nothing
    tmp.chmod(0o755)  # mkdtemp makes it private
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (tmp / sub).mkdir()
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n + n_test)]
    ids = [f"BRATS_{i + 1:03d}" for i in range(n + n_test)]
    for i, (cid, rng) in enumerate(zip(ids, rngs)):
        image, label = synth_case(rng, shape, spacing, channels, with_non_enhancing=(i != 1))
        folder = "imagesTr" if i < n else "imagesTs"
        _save(image.transpose(3, 2, 1, 0), spacing, tmp / folder / f"{cid}.nii.gz")
        if i < n:
            _save(label.transpose(2, 1, 0), spacing, tmp / "labelsTr" / f"{cid}.nii.gz")
    for sub in ("imagesTr", "labelsTr"):
        (tmp / sub / f"._{ids[0]}.nii.gz").write_bytes(_JUNK)
    meta = {
        "name": "BRATS", "description": "dragsaw synthetic look-alike of Gliomas segmentation tumour",
        "reference": "synthetic (dragsaw.workloads.data.synthetic3d)", "licence": "CC-BY-SA 4.0",
        "release": "2.0 04/05/2018", "tensorImageSize": "4D",
        "modality": {str(c): MODALITIES[c] for c in range(channels)}, "labels": LABELS,
        "numTraining": n, "numTest": n_test,
        "training": [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in ids[:n]],
        "test": [f"./imagesTs/{c}.nii.gz" for c in ids[n:]],
        "dragsaw_synthetic": params,
    }
    (tmp / "dataset.json").write_text(json.dumps(meta, indent=4))
    if final.exists():  # overwrite=True
        shutil.rmtree(final)
    try:
        os.rename(tmp, final)
    except OSError:  # another process finished first
        shutil.rmtree(tmp)
        if _written_with(final) != params:
            raise
    return final


def _written_with(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "dataset.json").read_text()).get("dragsaw_synthetic")
    except (OSError, ValueError, AttributeError):
        return None


__all__ = ["LABELS", "MODALITIES", "synth_case", "write_msd_brain"]
