"""The paper's own reported numbers, shown beside ours where dataset and protocol are the paper's.

Transcribed by hand from the paper's text (``seeds/000_0f00b9589acae4ae.txt``, an OCR of the
PDF: where its columns are garbled, values were read against the row patterns and checked
against the averages the paper prints). Percent, as in the paper. Transcribed:

- Table II: "Ours" on all eight datasets; the paper's own baseline architecture where Table II
  lists it (DeepLabV3+ on DigestPath, nnU-Net on the three Decathlon tasks). For the 3D tasks
  the paper's DI is the mean foreground Dice (its "Avg"); per-class Dice is kept in ``per_class``.
- Table IV: UNet, FCN, DeepLabV3+ x {bare, +RF-PDCR, +H-PDCR, +UAFR, +H-PDCR+UAFR} on ISIC 2016.
  (The OCR puts a stray "1" in the RF-PDCR column of UNet's first row; it is the bare row, like
  the first row of every architecture, with the same parameter count as the next.)
- Table V (a)-(d): phi as L1/L2 norm, ratio-first series, no position encoding, Dice affinity.
  They vary the full model: its own row ("Ours", H-PDCR) is the full model's 88.94, so every row
  is read as PDCR + UAFR with the one change.
- Table VI (b): RF-PDCR in the encoder with H-PDCR in decoder and cross-layer (87.83).
- Table VIII: SE and CBAM in place of UAFR, read as the blocks alone (SENet's 86.56 lies below
  H-PDCR alone, 87.99, and Fig. 6 compares the same blocks with UAFR alone).
- Table IX (a) (UAFR without F), (b) (M = 1 ... 1000) and Table X (kernel 1, 5, 7): UAFR alone
  on DeepLabV3+ (their default rows equal Table IV's "+UAFR").

Not transcribed: Tables VI (a) and VII (the check marks that say which layers each row uses are
not legible in the text), Table V (e) (BYOL / SimCLR pretraining, not a dragsaw variant; SimSiam's
numbers are missing from the text), Table III (t-tests against other methods), Figs. 5-7 (plots,
no numbers in the text), and the other methods' rows of Table II.

Matching (``lookup``): a variant label is split at ``+`` into its components (axis values and
variant names, see ``platform/spec/variants.py``); each component is normalised (lower case,
``_`` -> ``-``) and read as
- a model (``unet``, ``fcn``, ``deeplabv3plus``, ``unet3d``); without one, the trial config's
  model counts;
- plug-ins: ``baseline`` / ``bare`` / ``none`` add none; ``rf-pdcr``, ``h-pdcr`` (plain ``pdcr``
  is H-PDCR, the paper's default), ``uafr``, ``se`` / ``senet``, ``cbam``, joined by ``-``
  (``pdcr-uafr``, ``h-pdcr-uafr``); ``ours`` / ``full`` / ``both`` mean H-PDCR + UAFR;
- a setting ``key=value`` (list-axis labels such as ``num_maps=5``, ``kernel_size=7``,
  ``use_f=false``, ``phi=l1``, ``series=ratio_first``, ``position_encoding=false``,
  ``affinity=dice``; a few spelled-out aliases such as ``l1-norm`` too). Settings equal to the
  paper's default (``num_maps=2``, ``kernel_size=3`` ...) are dropped.
A component that is none of these makes the label unmatched ("—"). The key is then
(dataset name of the trial config, model, plug-ins, settings).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

MODELS = ("unet", "fcn", "deeplabv3plus", "unet3d")
MODULES = ("rf-pdcr", "h-pdcr", "uafr", "se", "cbam")

#: Dataset -> the held-out folds of the paper's protocol (Table I): official test split, or 5-fold CV.
PROTOCOL_FOLDS: dict[str, frozenset[str]] = {
    **dict.fromkeys(("isic2016", "isic2016_ph2", "isic2017", "mc"), frozenset({"test"})),
    **dict.fromkeys(("digestpath", "msd_brain", "msd_heart", "msd_prostate"), frozenset("01234")),
}
PROTOCOL_TEXT = {"test": "the official test split", "cv": "5-fold cross-validation (folds 0-4)"}

_WHOLE = {"baseline": (), "bare": (), "none": (), "plain": (), "base": (),
          "ours": ("h-pdcr", "uafr"), "full": ("h-pdcr", "uafr"), "both": ("h-pdcr", "uafr")}
_TOKENS = {"pdcr": "h-pdcr", "hpdcr": "h-pdcr", "rfpdcr": "rf-pdcr", "uafr": "uafr", "se": "se",
           "senet": "se", "cbam": "cbam"}
_SETTING_ALIASES = {"l1-norm": "phi=l1", "l2-norm": "phi=l2", "ratio-first": "series=ratio-first",
                    "no-f": "use-f=false", "without-f": "use-f=false", "dice-affinity": "affinity=dice",
                    "no-position-encoding": "position-encoding=false", "no-pe": "position-encoding=false"}
_KEY_ALIASES = {"m": "num-maps", "kernel": "kernel-size", "f": "use-f"}
_VALUE_ALIASES = {"no": "false", "off": "false", "yes": "true", "on": "true"}
# phi: the paper's Eq. 4 is `area` as printed; dragsaw's default `ratio` reads it with clipped boxes.
_DEFAULTS = frozenset({"num-maps=2", "kernel-size=3", "use-f=true", "phi=ratio", "phi=area", "series=loss-first",
                       "position-encoding=true", "affinity=ratio"})


@dataclass(frozen=True)
class PaperRow:
    """One row of the paper: scores in percent (None where the paper gives none)."""

    dataset: str
    model: str
    modules: frozenset[str]
    settings: frozenset[str]
    jaccard: float | None
    dice: float | None
    accuracy: float | None
    source: str
    per_class: Mapping[str, float] = field(default_factory=dict)

    @property
    def key(self) -> tuple:
        return (self.dataset, self.model, self.modules, self.settings)

    def score(self, metric: str) -> float | None:
        return getattr(self, metric)


def _row(dataset, model, modules, ja, di, ac, source, settings=(), per_class=None) -> PaperRow:
    return PaperRow(dataset, model, frozenset(modules), frozenset(settings), ja, di, ac, source,
                    dict(per_class or {}))


OURS = ("h-pdcr", "uafr")
_D = "deeplabv3plus"

ROWS: tuple[PaperRow, ...] = (
    # Table II: ours everywhere; the paper's baseline architecture where the table lists it.
    _row("isic2016_ph2", _D, OURS, 86.74, 93.51, None, "Table II"),
    _row("isic2016", _D, OURS, 88.94, 94.51, 97.71, "Tables II, IV"),
    _row("isic2017", _D, OURS, 82.00, 89.63, 95.64, "Table II"),
    _row("mc", _D, OURS, 95.30, None, 99.68, "Table II"),
    _row("digestpath", _D, (), 63.88, 77.92, 94.33, "Table II"),
    _row("digestpath", _D, OURS, 65.42, 79.44, 95.78, "Table II"),
    _row("msd_brain", "unet3d", (), None, 73.65, None, "Table II (nnU-Net)",
         per_class={"ED": 81.68, "NE": 61.29, "EN": 77.97}),
    _row("msd_brain", "unet3d", OURS, None, 78.02, None, "Table II",
         per_class={"ED": 83.15, "NE": 65.82, "EN": 85.09}),
    _row("msd_heart", "unet3d", (), None, 93.21, None, "Table II (nnU-Net)", per_class={"LA": 93.21}),
    _row("msd_heart", "unet3d", OURS, None, 94.38, None, "Table II", per_class={"LA": 94.38}),
    _row("msd_prostate", "unet3d", (), None, 74.84, None, "Table II (nnU-Net)",
         per_class={"PE": 63.14, "TR": 86.53}),
    _row("msd_prostate", "unet3d", OURS, None, 78.72, None, "Table II",
         per_class={"PE": 68.83, "TR": 88.61}),
    # Table IV on ISIC 2016 (JA, DI, AC).
    _row("isic2016", "unet", (), 78.81, 86.15, 92.05, "Table IV"),
    _row("isic2016", "unet", ("rf-pdcr",), 80.04, 87.42, 92.86, "Table IV"),
    _row("isic2016", "unet", ("h-pdcr",), 80.52, 87.94, 93.14, "Table IV"),
    _row("isic2016", "unet", ("uafr",), 80.02, 87.17, 93.20, "Table IV"),
    _row("isic2016", "unet", OURS, 81.31, 88.34, 94.16, "Table IV"),
    _row("isic2016", "fcn", (), 80.42, 86.46, 92.30, "Table IV"),
    _row("isic2016", "fcn", ("rf-pdcr",), 81.55, 87.83, 93.65, "Table IV"),
    _row("isic2016", "fcn", ("h-pdcr",), 82.37, 88.56, 94.50, "Table IV"),
    _row("isic2016", "fcn", ("uafr",), 82.04, 88.32, 94.67, "Table IV"),
    _row("isic2016", "fcn", OURS, 83.13, 89.54, 95.51, "Table IV"),
    _row("isic2016", _D, (), 86.09, 91.17, 95.41, "Tables IV, VII"),
    _row("isic2016", _D, ("rf-pdcr",), 86.52, 92.24, 96.17, "Table IV"),
    _row("isic2016", _D, ("h-pdcr",), 87.99, 93.45, 97.01, "Tables IV, VI"),
    _row("isic2016", _D, ("uafr",), 87.81, 93.50, 96.79, "Tables IV, IX, X"),
    # Table V (a)-(d): the full model with one change.
    _row("isic2016", _D, ("rf-pdcr", "uafr"), 88.24, 93.97, 97.21, "Table V (a)"),
    _row("isic2016", _D, ("rf-pdcr", "uafr"), 87.89, 93.45, 96.87, "Table V (a)", ["phi=l1"]),
    _row("isic2016", _D, OURS, 88.43, 94.18, 97.25, "Table V (a)", ["phi=l1"]),
    _row("isic2016", _D, ("rf-pdcr", "uafr"), 87.52, 93.01, 96.19, "Table V (a)", ["phi=l2"]),
    _row("isic2016", _D, OURS, 88.04, 93.68, 96.99, "Table V (a)", ["phi=l2"]),
    _row("isic2016", _D, OURS, 88.75, 94.31, 97.69, "Table V (b)", ["series=ratio-first"]),
    _row("isic2016", _D, OURS, 88.85, 94.40, 97.67, "Table V (c)", ["position-encoding=false"]),
    _row("isic2016", _D, OURS, 88.61, 94.08, 97.22, "Table V (d)", ["affinity=dice"]),
    # Table VI (b): RF-PDCR in the encoder, H-PDCR in decoder and cross-layer.
    _row("isic2016", _D, ("rf-pdcr", "h-pdcr"), 87.83, 93.33, 96.99, "Table VI (b)"),
    # Table VIII: SE / CBAM in place of UAFR.
    _row("isic2016", _D, ("se",), 86.56, 92.77, 96.23, "Table VIII"),
    _row("isic2016", _D, ("cbam",), 86.48, 92.66, 96.45, "Table VIII"),
    # Table IX: UAFR without F (a); M maps (b). Table X: kernel size of F.
    _row("isic2016", _D, ("uafr",), 87.17, 92.91, 96.49, "Table IX (a)", ["use-f=false"]),
    *(_row("isic2016", _D, ("uafr",), ja, di, ac, "Table IX (b)", [f"num-maps={m}"])
      for m, ja, di, ac in ((1, 87.75, 93.48, 96.68), (5, 87.55, 93.35, 96.77), (10, 87.62, 93.42, 96.73),
                            (50, 87.53, 93.29, 96.73), (100, 87.50, 93.26, 96.72), (500, 86.96, 92.92, 96.39),
                            (1000, 86.86, 92.90, 96.28))),
    *(_row("isic2016", _D, ("uafr",), ja, di, ac, "Table X", [f"kernel-size={k}"])
      for k, ja, di, ac in ((1, 87.14, 93.13, 96.77), (5, 87.50, 93.39, 96.67), (7, 87.27, 93.23, 96.73))),
)


def _index(rows: Iterable[PaperRow]) -> dict[tuple, PaperRow]:
    out: dict[tuple, PaperRow] = {}
    for row in rows:
        if row.key in out:
            raise ValueError(f"paper row {row.key} is transcribed twice ({out[row.key].source}, {row.source})")
        out[row.key] = row
    return out


BY_KEY = _index(ROWS)


def parse_label(variant: str) -> tuple[str | None, frozenset[str], frozenset[str]] | None:
    """(model or None, plug-ins, settings) that a variant label names, or None when one of its
    components is not understood (see the module doc)."""
    model, modules, settings = None, set(), set()
    for raw in variant.split("+"):
        part = raw.strip().lower().replace("_", "-")
        part = _SETTING_ALIASES.get(part, part)
        if part in MODELS:
            model = part
        elif "=" in part:
            key, value = part.split("=", 1)
            setting = f"{_KEY_ALIASES.get(key, key)}={_VALUE_ALIASES.get(value, value)}"
            if setting not in _DEFAULTS:
                settings.add(setting)
        elif part in _WHOLE:
            modules.update(_WHOLE[part])
        else:
            found = _modules_of(part)
            if found is None:
                return None
            modules.update(found)
    return model, frozenset(modules), frozenset(settings)


def _modules_of(part: str) -> set[str] | None:
    """Plug-ins named by one ``-``-joined component (``h-pdcr-uafr``), or None."""
    tokens, out, i = part.split("-"), set(), 0
    while i < len(tokens):
        token = tokens[i]
        if token in ("rf", "h") and i + 1 < len(tokens) and tokens[i + 1] == "pdcr":
            out.add(f"{token}-pdcr")
            i += 2
            continue
        if token in _TOKENS:
            out.add(_TOKENS[token])
        elif token not in ("baseline", "bare", "plus", "and", "with"):
            return None
        i += 1
    return out


def lookup(dataset: str, variant: str, model: str) -> PaperRow | None:
    """The paper's row for a variant label on a dataset (its registry name, e.g. ``isic2016``);
    ``model`` is the trial config's model, used when the label names none."""
    parsed = parse_label(variant)
    if parsed is None:
        return None
    named, modules, settings = parsed
    return BY_KEY.get((dataset, named or model, modules, settings))


def baseline_and_ours(dataset: str) -> tuple[PaperRow | None, PaperRow | None]:
    """Table II's rows for a dataset: the paper's baseline architecture and "Ours"."""
    model = "unet3d" if dataset.startswith("msd_") else _D
    return BY_KEY.get((dataset, model, frozenset(), frozenset())), BY_KEY.get(
        (dataset, model, frozenset(OURS), frozenset()))


def protocol_problems(configs: Iterable[Mapping], synthetic: bool = False) -> list[str]:
    """Why trials (their TrialConfig dicts) do not follow the paper's protocol for their
    dataset; [] when they do. Checked: real data (not a synthetic look-alike), the held-out
    folds of Table I, all training data (fraction 1), every held-out case, full-width
    networks. Training settings (epochs, image size) are not checked."""
    problems: list[str] = []
    if synthetic:
        problems.append("synthetic look-alike data")
    for config in configs:
        data, model = config.get("data", {}), config.get("model", {})
        name, fold = data.get("name"), str(data.get("fold"))
        folds = PROTOCOL_FOLDS.get(name)
        if folds is None:
            problems.append(f"dataset {name!r} is not one of the paper's")
        elif fold not in folds:
            problems.append(f"fold {fold!r} is not the paper's protocol for {name} "
                            f"({PROTOCOL_TEXT['test' if 'test' in folds else 'cv']})")
        if float(data.get("fraction", 1.0)) != 1.0:
            problems.append(f"data fraction {data.get('fraction')} (the paper trains on all training data)")
        if data.get("max_eval_cases"):
            problems.append(f"max_eval_cases={data['max_eval_cases']} (the paper evaluates every held-out case)")
        if float(model.get("width", 1.0)) != 1.0:
            problems.append(f"model width {model.get('width')} (the paper's networks are full width)")
    return list(dict.fromkeys(problems))


__all__ = [
    "BY_KEY",
    "MODELS",
    "MODULES",
    "PROTOCOL_FOLDS",
    "ROWS",
    "PaperRow",
    "baseline_and_ours",
    "lookup",
    "parse_label",
    "protocol_problems",
]
