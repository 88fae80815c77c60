"""Where the paper's eight datasets come from: one table, read by ``dragsaw datasets list``
and ``dragsaw datasets fetch``.

Each dataset is a set of archives as their publishers ship them; fetching places what
the archives hold, unchanged, under the dataset's root (default ``data/<folder>``, the
roots the paper specs name), where the loaders read it.

Checksums. Only the Medical Segmentation Decathlon mirror has published digests (MD5,
published by MONAI, which runs the ``msd-for-monai`` mirror, in
``monai.apps.DecathlonDataset.md5``); for the Montgomery zip we use the SHA-256 that the
torch-em library records for the same URL (a third party's record). The ISIC challenge
bucket, the PH2 page and DigestPath publish none: for those, the size and SHA-256 of each
file are recorded on its first fetch (trust on first use, in the dataset's manifest and
in ``$DRAGSAW_CACHE/fetch/digests.json``) and every later fetch of that file must match
them. Sizes marked "about" are approximate and unverified until fetched.

Tests (and mirrors) replace URLs and digests with ``$DRAGSAW_DATASETS_CATALOG``: a JSON
file ``{"files": {"<archive file name>": {"url": ..., "sha256": ..., "md5": ...}}}``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

#: Environment variable naming a JSON file of per-archive overrides (see the module doc).
CATALOG_ENV = "DRAGSAW_DATASETS_CATALOG"
#: Where fetched datasets go by default (relative to the working directory, as spec roots are).
DATA_DIR = Path("data")

_ISIC16 = "https://isic-challenge-data.s3.amazonaws.com/2016/"
_ISIC17 = "https://isic-challenge-data.s3.amazonaws.com/2017/"
_MSD = "https://msd-for-monai.s3-us-west-2.amazonaws.com/"
_MONAI_MD5 = "published by MONAI (monai.apps.DecathlonDataset.md5), which runs the msd-for-monai mirror"


@dataclass(frozen=True)
class Archive:
    """One file as its publisher ships it.

    ``url`` is None when the file is only available after registration (the user
    downloads it and passes it with ``--from``). ``places`` are the top-level entries
    the archive is known to unpack to (used to refuse overwriting a folder dragsaw did
    not place). ``md5``/``sha256``: published digests, with ``digest_by`` saying who
    publishes them; without them the SHA-256 is recorded on first fetch.
    """

    filename: str
    url: str | None
    places: tuple[str, ...]
    md5: str | None = None
    sha256: str | None = None
    digest_by: str = ""

    @property
    def published(self) -> tuple[str, str] | None:
        """(algorithm, hex digest) to verify against, or None (recorded on first fetch)."""
        if self.sha256:
            return "sha256", self.sha256.lower()
        if self.md5:
            return "md5", self.md5.lower()
        return None


@dataclass(frozen=True)
class Dataset:
    """A dataset of the paper's Table I: its archives, where it goes, and its terms."""

    name: str
    title: str
    folder: str
    archives: tuple[Archive, ...]
    homepage: str
    licence: str
    size: str
    official: str
    #: For registration-only archives: where to register and what to download.
    registration: str = ""
    #: Official case counts a 3D loader's check is compared with: (labelled, unlabelled test).
    official_cases: tuple[int, int] | None = None
    notes: tuple[str, ...] = field(default=())

    def default_root(self) -> Path:
        """``data/<folder>``: the root the paper specs name for this dataset."""
        return DATA_DIR / self.folder

    @property
    def needs_registration(self) -> bool:
        return any(a.url is None for a in self.archives)


def _isic(base: str, *names: str) -> tuple[Archive, ...]:
    return tuple(Archive(f"{n}.zip", f"{base}{n}.zip", (n,)) for n in names)


_ISIC16_TRAIN = _isic(_ISIC16, "ISBI2016_ISIC_Part1_Training_Data", "ISBI2016_ISIC_Part1_Training_GroundTruth")
_ISIC16_TEST = _isic(_ISIC16, "ISBI2016_ISIC_Part1_Test_Data", "ISBI2016_ISIC_Part1_Test_GroundTruth")
_PH2_PAGE = "https://www.fc.up.pt/addi/ph2%20database.html"
_ISIC_TERMS = "ISIC challenge data terms (https://challenge.isic-archive.com/data/)"
_MSD_LICENCE = "CC-BY-SA 4.0; cite Antonelli et al., Nat. Commun. 2022 (http://medicaldecathlon.com/)"


def _msd(task: str, md5: str) -> tuple[Archive, ...]:
    return (Archive(f"{task}.tar", f"{_MSD}{task}.tar", (task,), md5=md5, digest_by=_MONAI_MD5),)


DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset(
        "isic2016", "ISIC 2016 Part 1, skin lesion segmentation", "ISIC2016", _ISIC16_TRAIN + _ISIC16_TEST,
        "https://challenge.isic-archive.com/data/#2016",
        f"CC-0 as listed by ISIC; {_ISIC_TERMS}; cite Gutman et al., arXiv:1605.01397",
        "about 1 GB (unverified)", "900 train / 379 test"),
    Dataset(
        "isic2016_ph2", "train on ISIC 2016, test on PH2", "ISIC2016",
        _ISIC16_TRAIN + (Archive("PH2Dataset.rar", None, ("PH2Dataset",)),),
        _PH2_PAGE,
        f"PH2: free for research after registration, cite Mendonca et al., EMBC 2013 ({_PH2_PAGE}); "
        f"ISIC 2016 as for isic2016",
        "about 0.8 GB (ISIC 2016 training) + PH2 (size unverified)", "900 ISIC train / 200 PH2 test",
        registration=(f"PH2 is handed out after registration: fill in the form on {_PH2_PAGE}, download "
                      "PH2Dataset.rar from the link you receive (a RAR archive: extracting it needs the "
                      "`rarfile` package, installed with dragsaw, and one of the system tools unrar, unar, "
                      "7z or bsdtar), then run `dragsaw datasets fetch isic2016_ph2 --from PH2Dataset.rar`; "
                      "the ISIC 2016 training archives are downloaded by the same command."),
        notes=("PH2 is placed beside the ISIC 2016 folders (one root, as the loader reads it).",)),
    Dataset(
        "isic2017", "ISIC 2017 Part 1, skin lesion segmentation", "ISIC2017",
        _isic(_ISIC17, "ISIC-2017_Training_Data", "ISIC-2017_Training_Part1_GroundTruth",
              "ISIC-2017_Validation_Data", "ISIC-2017_Validation_Part1_GroundTruth",
              "ISIC-2017_Test_v2_Data", "ISIC-2017_Test_v2_Part1_GroundTruth"),
        "https://challenge.isic-archive.com/data/#2017",
        f"{_ISIC_TERMS}; cite Codella et al., ISBI 2018",
        "about 12 GB (unverified)", "2000 train / 150 val / 600 test"),
    Dataset(
        "mc", "Montgomery County chest X-rays (lung masks)", "MC",
        (Archive("NLM-MontgomeryCXRSet.zip", "https://openi.nlm.nih.gov/imgs/collections/NLM-MontgomeryCXRSet.zip",
                 ("MontgomerySet",),
                 sha256="54601e952315d8f67383e9202a6e145997ade429f54f7e0af44b4e158714f424",
                 digest_by="torch-em's record for this URL (third party; NLM publishes none)"),),
        "https://lhncbc.nlm.nih.gov/LHC-downloads/downloads.html#tuberculosis-image-data-sets",
        "NLM terms: do not share outside your group; cite Jaeger et al., QIMS 2014 and Candemir et al., "
        "IEEE TMI 2014",
        "about 0.6 GB (unverified)", "138 X-rays (80 normal, 58 TB); dragsaw's seeded 80/58 split"),
    Dataset(
        "digestpath", "DigestPath 2019 task 2, colonoscopy tissue segmentation", "DigestPath",
        (Archive("Colonoscopy_tissue_segment_dataset.zip", None, ("Colonoscopy_tissue_segment_dataset",)),),
        "https://digestpath2019.grand-challenge.org/",
        "DigestPath 2019 data terms, accepted on registration (research use; unverified)",
        "several GB (unverified)", "660 train images (250 with masks, 410 negatives); 5-fold CV",
        registration=("DigestPath is handed out after registration: sign in at https://grand-challenge.org, "
                      "join https://digestpath2019.grand-challenge.org/ and accept its data terms, download "
                      "the task 2 training set (colonoscopy tissue segmentation: the archive that holds "
                      "Colonoscopy_tissue_segment_dataset/ with tissue-train-pos-v1/ and tissue-train-neg/), "
                      "then run `dragsaw datasets fetch digestpath --from <that archive>` (zip or tar)."),
    ),
    Dataset("msd_brain", "Medical Segmentation Decathlon Task01, brain tumour", "MSD",
            _msd("Task01_BrainTumour", "240a19d752f0d9e9101544901065d872"), "http://medicaldecathlon.com/",
            _MSD_LICENCE, "about 7.1 GB", "484 labelled + 266 test volumes; 5-fold CV",
            official_cases=(484, 266)),
    Dataset("msd_heart", "Medical Segmentation Decathlon Task02, left atrium", "MSD",
            _msd("Task02_Heart", "06ee59366e1e5124267b774dbd654057"), "http://medicaldecathlon.com/",
            _MSD_LICENCE, "about 0.4 GB", "20 labelled + 10 test volumes; 5-fold CV", official_cases=(20, 10)),
    Dataset("msd_prostate", "Medical Segmentation Decathlon Task05, prostate", "MSD",
            _msd("Task05_Prostate", "35138f08b1efaef89d7424d2bcc928db"), "http://medicaldecathlon.com/",
            _MSD_LICENCE, "about 0.2 GB", "32 labelled + 16 test volumes; 5-fold CV", official_cases=(32, 16)),
)}


class CatalogError(ValueError):
    """The overrides file named by ``$DRAGSAW_DATASETS_CATALOG`` is unreadable or malformed."""


def catalog(overrides: str | os.PathLike | None = None) -> dict[str, Dataset]:
    """The datasets, with per-archive overrides applied from ``overrides`` (default: the
    file named by ``$DRAGSAW_DATASETS_CATALOG``, if set). Overrides give ``url``,
    ``sha256``, ``md5`` for an archive file name; a given digest replaces the published
    one (``null`` removes it: the file is then recorded on first fetch)."""
    path = overrides if overrides is not None else os.environ.get(CATALOG_ENV)
    if not path:
        return dict(DATASETS)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        files = data["files"]
        if not isinstance(files, dict):
            raise TypeError("`files` must be a mapping of archive file name -> overrides")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CatalogError(f"{CATALOG_ENV}={path}: cannot use it ({type(exc).__name__}: {exc}); expected JSON "
                           '{"files": {"<archive>": {"url": ..., "sha256": ..., "md5": ...}}}') from None
    known = {a.filename for d in DATASETS.values() for a in d.archives}
    unknown = sorted(set(files) - known)
    if unknown:
        raise CatalogError(f"{path}: unknown archive names {unknown}; valid: {sorted(known)}")
    out = {}
    for name, entry in DATASETS.items():
        archives = []
        for archive in entry.archives:
            change = files.get(archive.filename, {})
            bad = sorted(set(change) - {"url", "sha256", "md5"})
            if bad:
                raise CatalogError(f"{path}: {archive.filename}: unknown keys {bad}; valid: url, sha256, md5")
            if "url" in change:
                archive = replace(archive, url=change["url"])
            if "sha256" in change or "md5" in change:
                sha256, md5 = change.get("sha256"), change.get("md5")
                archive = replace(archive, sha256=sha256, md5=md5,
                                  digest_by=f"the catalog overrides in {path}" if sha256 or md5 else "")
            archives.append(archive)
        out[name] = replace(entry, archives=tuple(archives))
    return out


__all__ = ["CATALOG_ENV", "DATASETS", "DATA_DIR", "Archive", "CatalogError", "Dataset", "catalog"]
