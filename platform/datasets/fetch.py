"""``dragsaw datasets fetch``: get a dataset's archives, verify them, unpack them into a
temporary folder and move the result to the dataset's root, then run its loader's check.

Order of work (nothing half-done counts):

1. :func:`plan` checks every input before anything is written: dataset names, ``--from``
   files, registration-only archives, and folders in the root that dragsaw did not place.
2. :func:`run`, per dataset: every missing archive is downloaded (into
   ``$DRAGSAW_CACHE/downloads``, resumable, see ``download.py``) or taken from ``--from``,
   and verified against its published digest or the one recorded on its first fetch. A
   mismatch stops here: nothing has been written under the root.
3. All archives are unpacked into one temporary folder beside the root, which becomes the
   root by one rename (or, when the root exists, each new top-level folder is renamed in).
4. The manifest ``<root>/.dragsaw-fetch.json`` records each placed archive (size,
   digests, where it came from); digests seen for the first time are also recorded in
   ``$DRAGSAW_CACHE/fetch/digests.json`` (trust on first use). Downloads are deleted.
5. The loader opens the root and its check is printed: counts against the official ones.

A dataset whose archives are all in the manifest (and on disk) is fetched: a second
fetch does nothing.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dragsaw.platform.datasets.catalog import Archive, Dataset, catalog
from dragsaw.platform.datasets.download import Digests, download, hash_file, verify
from dragsaw.platform.datasets.extract import extract

MANIFEST = ".dragsaw-fetch.json"


class FetchInputError(ValueError):
    """Bad input to a fetch (unknown name, missing ``--from`` file, a folder in the way):
    found before anything is downloaded or written."""


class FetchError(Exception):
    """A fetch failed while working (download, checksum, unpacking, placing)."""


@dataclass
class Step:
    """One dataset to fetch: its root, the archives still to place (with the user's
    file for ``--from`` ones, else None: download), and the ones already placed."""

    dataset: Dataset
    root: Path
    todo: list[tuple[Archive, Path | None]] = field(default_factory=list)
    done: list[Archive] = field(default_factory=list)


# -- records -------------------------------------------------------------------------------------
def read_manifest(root: Path) -> dict:
    """``<root>/.dragsaw-fetch.json`` as a dict (``{"archives": {}}`` when absent or unreadable)."""
    try:
        data = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("archives"), dict):
            return data
    except (OSError, ValueError):
        pass
    return {"archives": {}}


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def is_placed(root: Path, archive: Archive, manifest: dict | None = None) -> bool:
    """Whether ``archive`` was placed under ``root`` by a fetch and its folders are still there."""
    entry = (manifest or read_manifest(root))["archives"].get(archive.filename)
    return bool(entry) and all((root / top).exists() for top in entry.get("placed", []))


def status(dataset: Dataset, root: Path | None = None) -> str:
    """``fetched``, ``partly fetched (k of n archives)``, or ``not fetched`` (with the root)."""
    root = Path(root or dataset.default_root())
    manifest = read_manifest(root)
    placed = sum(is_placed(root, a, manifest) for a in dataset.archives)
    if placed == len(dataset.archives):
        size = sum(manifest["archives"][a.filename].get("size", 0) for a in dataset.archives)
        return f"fetched ({root}; archives {size / 1e9:.2f} GB)"
    if placed:
        return f"partly fetched: {placed} of {len(dataset.archives)} archives ({root})"
    return f"not fetched ({root} {'exists, without its archives' if root.exists() else 'does not exist'})"


def _digest_book() -> Path:
    from dragsaw.workloads.data import cache_dir

    return cache_dir() / "fetch" / "digests.json"


def recorded_digest(filename: str) -> dict | None:
    """What was recorded on ``filename``'s first fetch (size, sha256, when, url), or None."""
    try:
        return json.loads(_digest_book().read_text(encoding="utf-8")).get(filename)
    except (OSError, ValueError, AttributeError):
        return None


def _record_digest(archive: Archive, digests: Digests, origin: str) -> Path:
    book = _digest_book()
    book.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = json.loads(book.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    data[archive.filename] = {"size": digests.size, "sha256": digests.sha256, "origin": origin,
                              "first_fetched": _now()}
    _write_json(book, data)
    return book


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def expected_digest(archive: Archive) -> tuple[tuple[str, str] | None, str]:
    """(algorithm, hex) to verify ``archive`` against and who vouches for it: the published
    digest, else the one recorded on its first fetch, else (None, why)."""
    if archive.published:
        return archive.published, archive.digest_by or "published"
    seen = recorded_digest(archive.filename)
    if seen and seen.get("sha256"):
        return ("sha256", seen["sha256"]), f"recorded on its first fetch, {seen.get('first_fetched')}"
    return None, "none published: sha256 and size recorded on first fetch (trust on first use)"


# -- planning ------------------------------------------------------------------------------------
def plan(names: Sequence[str], to: str | os.PathLike | None = None, sources: Sequence[str | os.PathLike] = (),
         datasets: dict[str, Dataset] | None = None) -> list[Step]:
    """Check the inputs of a fetch and say what it will do; raises :class:`FetchInputError`
    (naming the dataset, file or folder and what would be valid) before any work."""
    from dragsaw.workloads._checks import closest

    datasets = datasets if datasets is not None else catalog()
    if not names:
        raise FetchInputError(f"name at least one dataset; valid: {sorted(datasets)}")
    for name in names:
        if name not in datasets:
            raise FetchInputError(f"unknown dataset {name!r}; valid: {sorted(datasets)} ({closest(name, datasets)})")
    if to is not None and len(set(names)) > 1:
        raise FetchInputError(f"--to names one dataset's root, but {len(set(names))} datasets were given")
    files = []
    for src in sources:
        path = Path(src).expanduser()
        if not path.is_file():
            raise FetchInputError(f"--from {src}: no such file")
        files.append(path)

    steps: list[Step] = []
    coming: dict[Path, set[str]] = {}  # archives placed by earlier steps of this fetch, per root
    for name in dict.fromkeys(names):
        dataset = datasets[name]
        root = Path(to).expanduser() if to is not None else dataset.default_root()
        if root.exists() and not root.is_dir():
            raise FetchInputError(f"{'--to' if to is not None else 'the default root'} {root} is a file; "
                                  "a dataset's root must be a folder (or not exist yet)")
        manifest = read_manifest(root)
        step = Step(dataset, root)
        for archive in dataset.archives:
            if is_placed(root, archive, manifest) or archive.filename in coming.get(root.resolve(), set()):
                step.done.append(archive)
            else:
                step.todo.append((archive, None))
        coming.setdefault(root.resolve(), set()).update(a.filename for a, _ in step.todo)
        steps.append(step)

    _match_sources(steps, files)
    for step in steps:
        missing = [a for a, src in step.todo if a.url is None and src is None]
        if missing:
            raise FetchInputError(f"{step.dataset.name} needs {', '.join(a.filename for a in missing)}, which "
                                  f"you download yourself. {step.dataset.registration}")
        manifest = read_manifest(step.root)
        for archive, _ in step.todo:
            for top in archive.places:
                if (step.root / top).exists() and not any(
                        top in entry.get("placed", []) for entry in manifest["archives"].values()):
                    raise FetchInputError(
                        f"{step.root / top} already exists but was not placed by `dragsaw datasets fetch` (no "
                        f"record in {step.root / MANIFEST}): move it away or fetch to another root with --to; "
                        f"to use it as it is, check it with `dragsaw datasets check {step.dataset.name} {step.root}`")
    return steps


def _match_sources(steps: list[Step], files: list[Path]) -> None:
    """Give each ``--from`` file to the archive it is: by file name, else to the only
    registration-only archive still without one."""
    slots = [(step, i) for step in steps for i, _ in enumerate(step.todo)]
    if not slots:  # everything is fetched already: a second fetch does nothing, --from or not
        return
    for path in files:
        by_name = [(s, i) for s, i in slots if s.todo[i][0].filename == path.name and s.todo[i][1] is None]
        if not by_name:
            open_slots = [(s, i) for s, i in slots if s.todo[i][0].url is None and s.todo[i][1] is None]
            if len(open_slots) != 1:
                wanted = sorted({s.todo[i][0].filename for s, i in slots})
                raise FetchInputError(f"--from {path}: its name is none of the archives this fetch needs "
                                      f"({wanted or 'none: everything is fetched'}); rename it to the one it is")
            by_name = open_slots
        for step, i in by_name:  # the same file may serve two datasets sharing a root
            step.todo[i] = (step.todo[i][0], path)


# -- running -------------------------------------------------------------------------------------
def run(steps: Sequence[Step], *, downloads: Path | None = None, keep_archives: bool = False, progress: bool = True,
        retry_wait: float = 2.0, out: Callable[[str], None] = print) -> int:
    """Carry out a :func:`plan`; returns 0, or 1 when a loader's check fails afterwards.
    Raises :class:`FetchError` (checksums, downloads, unpacking): the root is then untouched."""
    from dragsaw.workloads.data import cache_dir

    downloads = Path(downloads) if downloads is not None else cache_dir() / "downloads"
    status_code = 0
    for step in steps:
        name, root = step.dataset.name, step.root
        if not step.todo:
            out(f"{name}: already fetched in {root}: nothing to do "
                f"(check it with `dragsaw datasets check {name} {root} --read`)")
            continue
        out(f"{name}: {step.dataset.title}; {len(step.todo)} archive(s) to place in {root}")
        got = [(archive, *_obtain(archive, src, downloads, progress, retry_wait, out),
                archive.url if src is None else str(src)) for archive, src in step.todo]
        _place(step, got, out)
        if not keep_archives:
            for _, path, _, _, _ in got:
                if path.parent == downloads:
                    path.unlink(missing_ok=True)
        status_code |= _loader_check(step, out)
    return status_code


def _obtain(archive: Archive, src: Path | None, downloads: Path, progress: bool, retry_wait: float,
            out: Callable[[str], None]) -> tuple[Path, Digests, str]:
    """The verified archive file, its digests, and how it was verified."""
    from dragsaw.platform.datasets.download import DownloadError

    expected, vouch = expected_digest(archive)
    try:
        if src is not None:
            out(f"  {archive.filename}: verifying {src}")
            digests = hash_file(src)
            verify(src, digests, expected, vouch, name=archive.filename, delete=False)
            path = src
        else:
            path = downloads / archive.filename
            if path.exists():  # verified by an earlier fetch that stopped before placing
                digests = hash_file(path)
                verify(path, digests, expected, vouch)
            else:
                assert archive.url is not None
                out(f"  {archive.filename}: downloading {archive.url}")
                digests = download(archive.url, path, expected=expected, expected_source=vouch, progress=progress,
                                   retry_wait=retry_wait)
    except DownloadError as exc:
        raise FetchError(str(exc)) from None
    how = (f"{expected[0]} matches, {vouch}" if expected else vouch)
    out(f"  {archive.filename}: {digests.size} bytes, sha256 {digests.sha256} ({how})")
    return path, digests, how


def _place(step: Step, got: list[tuple[Archive, Path, Digests, str, str | None]],
           out: Callable[[str], None]) -> None:
    """Unpack every archive into one temporary folder beside the root, then move it in."""
    from dragsaw.platform.datasets.extract import ExtractError

    root = step.root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.fetch-", dir=root.parent))
    try:
        tops: dict[str, list[str]] = {}
        for archive, path, _, _, _ in got:
            out(f"  {archive.filename}: unpacking")
            tops[archive.filename] = extract(path, tmp)
        manifest = read_manifest(root)
        if not root.exists():
            tmp.chmod(0o755)  # mkdtemp makes it private
            os.rename(tmp, root)
        else:
            new = sorted({t for ts in tops.values() for t in ts})
            clash = [t for t in new if os.path.lexists(root / t)]
            if clash:
                raise FetchError(f"cannot place {', '.join(clash)} in {root}: already there, not from this fetch")
            for top in new:
                os.rename(tmp / top, root / top)
            shutil.rmtree(tmp)
    except ExtractError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise FetchError(str(exc)) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for archive, _, digests, how, origin in got:
        if archive.published is None and recorded_digest(archive.filename) is None:
            book = _record_digest(archive, digests, origin or "")
            out(f"  {archive.filename}: no published checksum; sha256 {digests.sha256} and size {digests.size} "
                f"recorded on this first fetch (trust on first use) in {book} and {root / MANIFEST}; later "
                f"fetches must match them")
        manifest["archives"][archive.filename] = {
            "placed": tops[archive.filename], "size": digests.size, "sha256": digests.sha256, "md5": digests.md5,
            "verified": how, "from": origin, "fetched": _now()}
    _write_json(root / MANIFEST, manifest)
    out(f"  placed {', '.join(sorted({t for ts in tops.values() for t in ts}))} in {root}")


def _loader_check(step: Step, out: Callable[[str], None]) -> int:
    """Open the root with the dataset's loader and print its check; 1 if it fails."""
    from dragsaw.workloads.data import DatasetError, load_dataset

    dataset = step.dataset
    try:
        loaded = load_dataset(dataset.name, step.root)
    except DatasetError as exc:
        out(f"  loader check FAILED: {exc}")
        return 1
    out(f"  loader check ({dataset.name}; official: {dataset.official}):")
    for line in loaded.check():
        out(f"    {line}")
    if dataset.official_cases:
        labelled, test = dataset.official_cases
        found_test = len(getattr(loaded, "unlabeled", []))
        for what, found, official in (("labelled", len(loaded), labelled), ("test", found_test, test)):
            state = "complete" if found == official else "DIFFERS from the official count"
            out(f"    {what} cases: {found} of the official {official} ({state})")
    return 0


__all__ = ["MANIFEST", "FetchError", "FetchInputError", "Step", "expected_digest", "is_placed", "plan",
           "read_manifest", "recorded_digest", "run", "status"]
