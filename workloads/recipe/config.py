"""The plain config of one trial (what the platform's specs expand into).

Every number has a stated range: a value outside it (``epochs: 1e12``, ``lr: .inf``) is
refused when the spec is loaded, with the bound in the message, instead of training for
days or failing at run time. Floats must be finite everywhere (``allow_inf_nan=False``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

from dragsaw.workloads.plugins.config import PluginsConfig

#: Upper bounds of the numbers of a trial config: far beyond any sensible run, they catch
#: typos and units mistakes (``epochs: 1e12``) before anything is launched.
MAX_EPOCHS = 100_000
MAX_BATCH = 65_536
MAX_LR = 10.0
MAX_ITERATIONS = 10_000_000
MAX_IMAGE_SIDE = 16_384
MAX_PATCH_SIDE = 2_048
MAX_WIDTH = 16.0
MAX_WORKERS = 1_024

#: Mixed-precision modes of ``TrainConfig.precision`` (``auto``: by device, see precision.py).
Precision = Literal["auto", "off", "bf16", "fp16"]

#: Model selection of ``EvalConfig.selection`` (which epoch's weights are evaluated).
Selection = Literal["last", "best_val"]


class ConfigError(ValueError):
    """A trial's configuration cannot run (a deterministic error: retrying cannot help).
    The platform records the attempt as failed and does not retry it."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DataConfig(_Strict):
    """name/root/options: as for ``load_dataset``. fold: an official split (``test``,
    ``val``) or a cross-validation fold 0-4. fraction: the limited-data subset of the
    training cases (Fig. 7), nested across fractions for one ``subset_seed``."""

    name: str
    root: str
    options: dict[str, Any] = Field(default_factory=dict)
    fold: int | str = "test"
    fraction: float = Field(default=1.0, gt=0, le=1)
    subset_seed: int = 0
    max_eval_cases: int | None = Field(default=None, ge=1, le=10_000_000)


class ModelConfig(_Strict):
    """A registered model by name (``deeplabv3plus``, ``unet``, ``fcn``, ``unet3d``)."""

    name: str
    width: float = Field(default=1.0, gt=0, le=MAX_WIDTH)
    options: dict[str, Any] = Field(default_factory=dict)


class TrainConfig(_Strict):
    """Adam, cosine schedule, loss = segmentation loss + pdcr_weight * PDCR (paper Sec. V-A).

    iterations_per_epoch: None = one pass over the training cases (2D), 250 (3D, nnU-Net's
    patch-based epochs). loss: None = ``ce`` for 2D (the paper), ``ce_dice`` for 3D (nnU-Net).

    How it computes (results agree within the tolerances in tests/workloads/test_precision.py;
    the defaults follow the device, see ``workloads/recipe/precision.py``):
    num_workers: data loader processes; None = sized from the trial's CPUs (``cpus - 1``,
    persistent across epochs; 0 when the CPUs are not given). precision: ``auto`` (bf16
    autocast on a CUDA device with bfloat16, else fp16 with a gradient scaler; float32 on
    the CPU), ``off``, ``bf16`` or ``fp16``. channels_last: None = on for 2D models on CUDA.
    compile: ``torch.compile`` the model.
    """

    epochs: int = Field(default=50, ge=1, le=MAX_EPOCHS)
    batch_size: int = Field(default=8, ge=1, le=MAX_BATCH)
    lr: float = Field(default=1e-3, gt=0, le=MAX_LR)
    weight_decay: float = Field(default=1e-5, ge=0, le=10.0)
    pdcr_weight: float = Field(default=0.01, ge=0, le=10_000.0)
    loss: Literal["ce", "ce_dice"] | None = None
    iterations_per_epoch: int | None = Field(default=None, ge=1, le=MAX_ITERATIONS)
    image_size: tuple[int, int] = (256, 256)
    patch_size: tuple[int, int, int] = (64, 64, 64)
    spacing: tuple[float, float, float] | None = None
    foreground_ratio: float = Field(default=0.33, ge=0, le=1)
    augment: bool = True
    num_workers: int | None = Field(default=None, ge=0, le=MAX_WORKERS)
    precision: Precision = "auto"
    channels_last: bool | None = None
    compile: bool = False

    @field_validator("image_size")
    @classmethod
    def _multiple_of_32(cls, v):
        if any(s % 32 or not 32 <= s <= MAX_IMAGE_SIDE for s in v):
            raise ValueError(f"image_size sides must be multiples of 32 (the models' total stride) in "
                             f"[32, {MAX_IMAGE_SIDE}], got {list(v)}")
        return v

    @field_validator("patch_size")
    @classmethod
    def _multiple_of_16(cls, v):
        if any(s % 16 or not 16 <= s <= MAX_PATCH_SIDE for s in v):
            raise ValueError(f"patch_size sides must be multiples of 16 in [16, {MAX_PATCH_SIDE}], got {list(v)}")
        return v

    @field_validator("spacing")
    @classmethod
    def _positive_spacing(cls, v):
        if v is not None and any(not 0 < s <= 1000 for s in v):
            raise ValueError(f"spacing must be in (0, 1000] mm per axis, got {list(v)}")
        return v


class EvalConfig(_Strict):
    """every: evaluate the held-out cases every k epochs (and always after the last).
    overlap / sw_batch_size: 3D sliding-window inference. empty: the empty-reference rule.

    selection: which epoch's weights the final evaluation uses (see ``selection.py``):
    ``last`` (default) or ``best_val``, the epoch with the best Dice on a validation subset
    carved from the training cases (never the held-out ones): ``val_fraction`` of them (at
    least 1), drawn with the trial's seed and removed from training, scored every
    ``val_every`` epochs and after the last. With ``last`` the three are left out of the
    dumped config (and its hash), so configs from before they existed keep their hashes."""

    every: int = Field(default=1, ge=1, le=MAX_EPOCHS)
    batch_size: int = Field(default=8, ge=1, le=MAX_BATCH)
    overlap: float = Field(default=0.5, ge=0, lt=1)
    sw_batch_size: int = Field(default=2, ge=1, le=MAX_BATCH)
    empty: Literal["nan", "one"] = "nan"
    selection: Selection = "last"
    val_fraction: float = Field(default=0.1, gt=0, lt=1)
    val_every: int = Field(default=1, ge=1, le=MAX_EPOCHS)

    @model_serializer(mode="wrap")
    def _selection_only_when_used(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        if self.selection == "last":
            for key in ("selection", "val_fraction", "val_every"):
                data.pop(key, None)
        return data


class TrialConfig(_Strict):
    """Everything one trial needs. ``plugins``: the plug-ins by stage names; their
    ``pdcr.num_classes`` and ``uafr.num_maps`` may be left out, and the trial fills them
    from its dataset (:meth:`for_classes`)."""

    data: DataConfig
    model: ModelConfig
    plugins: PluginsConfig | None = None
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    cache_dir: str | None = None

    @field_validator("plugins")
    @classmethod
    def _no_empty_plugins(cls, v: PluginsConfig | None) -> PluginsConfig | None:
        """``plugins: {}`` means no plug-ins, as null does (the same trial, the same hash)."""
        return None if v is not None and v == PluginsConfig() else v

    def for_classes(self, num_classes: int) -> TrialConfig:
        """This config for a dataset of ``num_classes`` classes: the plug-ins' class-dependent
        sizes filled where unset (see ``PluginsConfig.for_classes``; ValueError when
        ``pdcr.num_classes`` contradicts the dataset)."""
        if self.plugins is None:
            return self
        return self.model_copy(update={"plugins": self.plugins.for_classes(num_classes)})
