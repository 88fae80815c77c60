"""What the 2D loaders share: finding the official folders (also when a Windows
unzip nested them twice), listing files without macOS/hidden junk, pairing
images with masks, reading images and binary masks with errors that name the
file, and the human-readable ``check()`` report."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from dragsaw.workloads.data.base import DatasetError, SegmentationDataset

#: Names that are never cases: macOS resource forks (``._x``), Finder/Explorer files.
JUNK_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini", "__MACOSX"})

#: A 0/255 mask saved as JPEG keeps values near 0 or 255 except at edges; a mask is
#: refused when more than this fraction of its pixels lies in the ambiguous band.
JPEG_MASK_BAND = (64, 191)  # exclusive bounds: 65..190 is ambiguous
JPEG_MASK_MAX_AMBIGUOUS = 0.05

#: PIL modes holding 8 bits per channel (16-bit and float images are refused, not clipped).
MODES_8BIT = frozenset({"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"})

_PIL_LIMIT = threading.Lock()


def is_junk(name: str) -> bool:
    """Hidden files, macOS ``._`` resource forks and OS thumbnails: never cases."""
    return name.startswith(".") or name in JUNK_NAMES


def resolve(parent: Path, relative: str) -> tuple[Path | None, list[str]]:
    """Find the folder ``relative`` for a dataset whose root is ``parent``: ``parent/relative``,
    else inside the archive's own top folder one level down (``parent/<top>/relative``,
    e.g. DigestPath's ``Colonoscopy_tissue_segment_dataset/``; one such folder only), else
    ``parent`` itself when it is that top folder (``relative``'s first component is
    ``parent``'s name, e.g. root ``.../MontgomerySet``). Returns (path or None, notes)."""
    path, notes = _resolve_here(parent, relative)
    if path is not None:
        return path, notes
    first, *rest = Path(relative).parts
    if rest and parent.name == first:
        path, notes = _resolve_here(parent, str(Path(*rest)))
        if path is not None:
            return path, [f"{relative}: the root is the folder {first}/ itself"] + notes
    found = []
    if parent.is_dir():
        for entry in sorted(os.scandir(parent), key=lambda e: e.name):
            if entry.is_dir() and not is_junk(entry.name):
                inner, inner_notes = _resolve_here(Path(entry.path), relative)
                if inner is not None:
                    found.append((entry.name, inner, inner_notes))
    if len(found) == 1:
        top, inner, inner_notes = found[0]
        return inner, [f"{relative}: found one level down, inside {top}/"] + inner_notes
    if len(found) > 1:
        raise DatasetError(f"{relative} is in several folders under {parent}: "
                           f"{', '.join(f'{top}/' for top, _, _ in found)}; pass the one to use as the root")
    return None, notes


def _resolve_here(parent: Path, relative: str) -> tuple[Path | None, list[str]]:
    """``parent/relative`` component by component; where a component holds only a folder
    of its own name (``X/X/``, a Windows unzip), step into it. Returns (path or None, notes)."""
    path, notes = parent, []
    for part in Path(relative).parts:
        path = path / part
        if not path.is_dir():
            return None, notes
        while (path / part).is_dir() and all(is_junk(e) for e in os.listdir(path) if e != part):
            path = path / part
            notes.append(f"{path.relative_to(parent)}: folder nested twice (Windows unzip), reading the inner one")
    return path, notes


def list_folder(folder: Path) -> tuple[list[str], list[str], list[str]]:
    """(files, folders, junk) directly in ``folder``, each sorted by name."""
    files, folders, junk = [], [], []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if is_junk(entry.name):
            junk.append(entry.name)
        elif entry.is_dir():
            folders.append(entry.name)
        else:
            files.append(entry.name)
    return files, folders, junk


def _examples(names: Sequence[str], n: int = 3) -> str:
    shown = ", ".join(str(x) for x in names[:n])
    return shown + (f", ... ({len(names) - n} more)" if len(names) > n else "")


class Dataset2D(SegmentationDataset):
    """Base of the 2D loaders: checks the root at construction and collects the lines of
    :meth:`check` (counts against the official sizes, notes on what was skipped)."""

    spatial_dims = 2
    #: One line telling the user what to extract under the root (used in errors).
    expected = ""

    def __init__(self, root: str | os.PathLike[str], classes: Sequence[str]):
        super().__init__(root, classes)
        self._report: list[str] = []
        if not self.root.is_dir():
            raise DatasetError(f"{self.name}: root folder {self.root} does not exist or is not a folder; "
                               f"expected there: {self.expected}")

    # -- layout ------------------------------------------------------------------------------
    def _folders(self, wanted: dict[str, str]) -> dict[str, Path]:
        """Resolve every ``relative path -> what it should hold``; all missing ones fail at once."""
        found, missing = {}, []
        for relative, what in wanted.items():
            path, notes = resolve(self.root, relative)
            self._report += notes
            if path is None:
                missing.append(f"missing folder {relative!r} (expected: {what})")
            found[relative] = path
        if missing:
            raise DatasetError(f"{self.name} under {self.root}: " + "; ".join(missing))
        return found

    def _ignored(self, folder: Path, others: Sequence[str], junk: Sequence[str], what: str = "files") -> None:
        """Say in the report what was skipped in ``folder``, never drop it silently."""
        rel = folder.relative_to(self.root)
        if others:
            self._report.append(f"{rel}: ignored {len(others)} {what} that are not cases ({_examples(others)})")
        if junk:
            self._report.append(f"{rel}: ignored {len(junk)} hidden/macOS '._' file(s) ({_examples(junk)})")

    def _found(self, split: str, found: int, official: int, what: str, where: str) -> None:
        state = "complete" if found == official else (
            "fewer than official: partial download?" if found < official else "more than official")
        self._report.append(f"{split}: found {found} of the official {official} {what} in {where} ({state})")

    def _add(self, split: str, cases: dict[str, list[Path]]) -> None:
        """Register ``cases`` (id -> [image, mask(s)]) under ``split``; an id twice is an error."""
        for cid, files in cases.items():
            if cid in self.files:
                raise DatasetError(f"{self.name}: case {cid!r} occurs twice: {self.files[cid][0]} and {files[0]}")
            self.files[cid] = list(files)
        self.splits.setdefault(split, []).extend(sorted(cases))

    def _unpaired(self, problems: Sequence[str]) -> None:
        """Raise one error listing every image without its mask / mask without its image."""
        if problems:
            shown = "; ".join(problems[:10]) + (f"; ... and {len(problems) - 10} more" if len(problems) > 10 else "")
            raise DatasetError(f"{self.name} under {self.root}: {len(problems)} unpaired files: {shown}")

    # -- report ------------------------------------------------------------------------------
    def check(self, read: bool = False) -> list[str]:
        """Human-readable lines for ``dragsaw datasets check``: cases found against the official
        sizes, splits, and what was skipped. ``read=True`` also reads every case and lists the
        files that fail (slow on the full datasets)."""
        sizes = ", ".join(f"{k}={len(v)}" for k, v in self.splits.items())
        lines = [f"{self.name} at {self.root}: {len(self)} cases, classes {self.classes}, splits {sizes}"]
        lines += self._report
        if read:
            bad = []
            for cid in self.files:
                try:
                    self.read(cid)
                except DatasetError as exc:
                    bad.append(f"unreadable: {exc}")
            lines.append(f"read {len(self) - len(bad)} of {len(self)} cases without error")
            lines += bad
        return lines


# -- reading ---------------------------------------------------------------------------------
@contextmanager
def pixel_limit(max_pixels: int | None):
    """Temporarily set PIL's decompression-bomb limit (``None``: leave it as it is)."""
    if max_pixels is None:
        yield
        return
    with _PIL_LIMIT:
        old = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = old


def fit_size(size: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """(width, height) scaled so that the longer side is at most ``max_side`` (kept if smaller)."""
    if max_side is None or max(size) <= max_side:
        return size[0], size[1]
    scale = max_side / max(size)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def decode(path: Path, *, max_pixels: int | None = None, max_side: int | None = None,
           eight_bit: bool = True) -> tuple[Image.Image, tuple[int, int]]:
    """The decoded image and its stored (width, height). With ``max_side``, a JPEG is
    decoded shrunk by a power of two (fast, little memory) but still at least
    ``fit_size(stored, max_side)``: the caller resizes the rest. Errors name the file."""
    try:
        with pixel_limit(max_pixels):
            img = Image.open(path)
        stored = img.size
        if max_side is not None and img.format == "JPEG" and max(stored) > max_side:
            img.draft(img.mode, fit_size(stored, max_side))
        img.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"cannot read image {path}: {exc}") from exc
    if eight_bit and img.mode not in MODES_8BIT:
        raise DatasetError(f"image {path} must have 8 bits per channel, but has PIL mode {img.mode!r}")
    return img, stored


def to_array(img: Image.Image, channels: int) -> np.ndarray:
    """(H, W, channels) uint8 from an 8-bit PIL image (1: luminance, 3: RGB)."""
    return np.asarray(img.convert("L" if channels == 1 else "RGB"), dtype=np.uint8).reshape(
        img.height, img.width, channels)


def binary_values(mask: np.ndarray, path: Path, *, lossy: bool = False) -> np.ndarray:
    """``mask > 127`` after checking a 0/255 mask: exactly {0, 255} for lossless files, or at
    most ``JPEG_MASK_MAX_AMBIGUOUS`` of pixels in ``JPEG_MASK_BAND`` for JPEG masks."""
    hist = np.bincount(mask.ravel(), minlength=256)
    if lossy:
        lo, hi = JPEG_MASK_BAND
        ambiguous = hist[lo + 1:hi].sum() / max(1, mask.size)
        if ambiguous > JPEG_MASK_MAX_AMBIGUOUS:
            raise DatasetError(
                f"mask {path} must be a 0/255 mask (JPEG noise allowed), but {ambiguous:.1%} of its pixels "
                f"are in {lo + 1}..{hi - 1} (at most {JPEG_MASK_MAX_AMBIGUOUS:.0%} allowed)")
    else:
        values = np.flatnonzero(hist)
        bad = [int(v) for v in values if v not in (0, 255)]
        if bad:
            raise DatasetError(f"mask {path} must hold only 0 and 255, but has values "
                               f"{[int(v) for v in values[:10]]}{' ...' if len(values) > 10 else ''}")
    return mask > 127


def read_binary_mask(path: Path, size: tuple[int, int] | None = None, *, image_path: Path | None = None,
                     lossy: bool = False) -> np.ndarray:
    """(H, W) bool from a 0/255 mask file; ``size`` (width, height) must match the image's."""
    img, stored = decode(path)
    if size is not None and stored != tuple(size):
        raise DatasetError(f"mask {path} is {stored[0]}x{stored[1]} (WxH) but its image {image_path} "
                           f"is {size[0]}x{size[1]}")
    return binary_values(np.asarray(img.convert("L")), path, lossy=lossy)


def pairing_problems(images: dict[str, Path], masks: dict[str, Path], expected: Callable[[str], Path]) -> list[str]:
    """Lines naming each image without its mask (and the mask file ``expected(id)`` it
    should have) and each mask without its image."""
    problems = [f"image {images[cid]} has no mask (expected {expected(cid)})" for cid in sorted(images)
                if cid not in masks]
    problems += [f"mask {masks[cid]} has no image" for cid in sorted(masks) if cid not in images]
    return problems
