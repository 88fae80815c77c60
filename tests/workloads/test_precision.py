"""The GPU path's options, run on the CPU: mixed precision, channels-last, torch.compile and
loader workers run and give the same numbers as the plain path within stated tolerances.

Tolerances (relative): channels-last vs contiguous: the first step in float64, loss and every
parameter's gradient 1e-9 (the same arithmetic in another order; measured 7e-14), the loss curve of
2 epochs (4 Adam steps) 2e-3: Adam's first steps are about lr * sign(g) whatever |g|, so
rounding-level gradient differences become lr-sized weight differences (measured: 4.5e-4).
bf16 autocast vs float32: loss curve 5e-2 (bf16 keeps 8 bits of mantissa; measured 1.7e-3).
torch.compile vs eager: 1e-4. Loader workers vs none: identical batches (exact). PDCR's loss
stays float32 under autocast (1e-6 against float32 arithmetic on the same features).

Max-pooling makes the layout comparison discrete: the layouts' forward passes differ by
rounding (~4e-6 relative at a U-Net's deepest skip), and where two values of a 2x2 window are
that close the argmax, and with it the whole gradient of that window, moves. With UAFR on
encoder.2 one of 3774 windows flips and that layer's input gradient differs by 2e-2. So the
config compared here is one without such a near-tie (no UAFR, no augmentation: rotations'
constant borders make exact ties); the flips are max-pool's, not channels-last's.
"""

import pytest
import torch
from pydantic import ValidationError

from dragsaw.workloads.recipe.config import TrainConfig
from dragsaw.workloads.recipe.loaders import loader_settings, training_loader
from dragsaw.workloads.recipe.precision import resolve_compute
from dragsaw.workloads.recipe.trial import Trial

PLUGINS = {"pdcr": {"sites": [{"layers": ["encoder.2"], "n": 16}, {"layers": ["encoder.2", "encoder.3"], "n": 8}]}}


@pytest.fixture(scope="module")
def isic_root(tmp_path_factory):
    from dragsaw.workloads.data.synthetic import write_isic2016

    root = tmp_path_factory.mktemp("isic")
    write_isic2016(root, n_train=8, n_test=2, size=(64, 64), seed=0)
    return root


def config(root, cache, **train):
    return {"data": {"name": "isic2016", "root": str(root)}, "model": {"name": "unet", "width": 0.125},
            "plugins": PLUGINS, "train": {"epochs": 2, "batch_size": 4, "image_size": (64, 64), **train},
            "seed": 5, "device": "cpu", "cache_dir": str(cache)}


def loss_curve(root, cache, epochs=2, **train) -> list[float]:
    """train_loss and train_pdcr_loss of each epoch (no evaluation)."""
    trial = Trial(config(root, cache, **train))
    try:
        out = []
        for _ in range(epochs):
            m = trial.train_epoch()
            trial.epoch += 1
            out += [m["train_loss"], m["train_pdcr_loss"]]
        return out
    finally:
        trial.close()


@pytest.fixture(scope="module")
def fp32_curve(isic_root, tmp_path_factory):
    return loss_curve(isic_root, tmp_path_factory.mktemp("cache"), precision="off", channels_last=False)


# -- config and defaults --------------------------------------------------------------


@pytest.mark.parametrize("field, value, valid", [
    ("precision", "fp8", "'auto', 'off', 'bf16' or 'fp16'"),
    ("channels_last", "sometimes", "valid boolean"),
    ("compile", "maybe", "valid boolean"),
    ("num_workers", -1, "greater than or equal to 0"),
])
def test_bad_compute_options_are_refused_naming_field_and_valid_values(field, value, valid):
    with pytest.raises(ValidationError) as err:
        TrainConfig.model_validate({field: value})
    assert err.value.errors()[0]["loc"] == (field,)
    assert valid in str(err.value)


def test_device_defaults_cpu_float32_contiguous_cuda_channels_last_for_2d():
    cpu = resolve_compute(TrainConfig(), torch.device("cpu"), 2)
    assert (cpu.precision, cpu.memory_format, cpu.compile, cpu.scaler) == ("off", torch.contiguous_format, False, False)
    assert cpu.dtype is None
    # fp16 named explicitly: no query of a GPU needed to resolve the rest for a CUDA device
    gpu = resolve_compute(TrainConfig(precision="fp16"), torch.device("cuda"), 2)
    assert (gpu.dtype, gpu.scaler, gpu.memory_format) == (torch.float16, True, torch.channels_last)
    gpu3d = resolve_compute(TrainConfig(precision="fp16"), torch.device("cuda"), 3)
    assert gpu3d.memory_format == torch.contiguous_format
    forced3d = resolve_compute(TrainConfig(channels_last=True), torch.device("cpu"), 3)
    assert forced3d.memory_format == torch.channels_last_3d
    assert resolve_compute(TrainConfig(compile=True), torch.device("cpu"), 2).compile
    bf16 = resolve_compute(TrainConfig(precision="bf16"), torch.device("cpu"), 2)
    assert (bf16.dtype, bf16.scaler) == (torch.bfloat16, False)


def test_loader_sized_from_the_trials_cpus():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert loader_settings(None, 4, cpu) == loader_settings(None, 4.5, cpu)
    s = loader_settings(None, 4, cuda)
    assert (s.num_workers, s.pin_memory, s.persistent_workers) == (3, True, True)
    s = loader_settings(None, 1, cpu)
    assert (s.num_workers, s.pin_memory, s.persistent_workers) == (0, False, False)
    assert loader_settings(None, None, cpu).num_workers == 0  # outside the platform: no CPU count given
    assert loader_settings(2, 16, cpu).num_workers == 2  # the config's number wins


# -- same numbers ---------------------------------------------------------------------


def first_step(root, cache, dtype=torch.float32, **train) -> tuple[float, dict[str, torch.Tensor]]:
    trial = Trial(config(root, cache, **train))
    try:
        trial.model.to(dtype)  # the same Parameter objects: the optimiser still holds them
        trial.model.train()
        x, y = next(iter(trial.loader))
        loss, _, _ = trial.train_step(x.to(dtype), y)
        return loss.item(), {n: p.grad.clone() for n, p in trial.model.named_parameters() if p.grad is not None}
    finally:
        trial.close()


def test_channels_last_gives_the_same_step_and_loss_curve(isic_root, tmp_path, fp32_curve):
    # The first step compared in float64: the layouts' different summation orders then differ by
    # ~1e-16 (measured 7e-14 of a gradient's norm), so no max-pool window is near enough a tie
    # to flip, and anything above 1e-9 is the layout's fault, not rounding. In float32 the same
    # comparison measured up to 2.6e-3 on CI (near-ties and thread splits), too close to a bug.
    # No augmentation: the rotations' constant borders make exactly equal activations.
    loss, grads = first_step(isic_root, tmp_path / "cache", torch.float64, precision="off",
                             channels_last=False, augment=False)
    loss_cl, grads_cl = first_step(isic_root, tmp_path / "cache", torch.float64, precision="off",
                                   channels_last=True, augment=False)
    assert loss_cl == pytest.approx(loss, rel=1e-9)
    assert grads.keys() == grads_cl.keys()
    for name, g in grads.items():
        assert (g - grads_cl[name]).norm() <= 1e-9 * g.norm() + 1e-12, name
    # The float32 loss curve as users run it: Adam turns rounding into lr-sized steps (see top).
    curve = loss_curve(isic_root, tmp_path / "cache", precision="off", channels_last=True)
    assert curve == pytest.approx(fp32_curve, rel=2e-3)


def test_bf16_autocast_on_cpu_stays_close_and_pdcr_stays_float32(isic_root, tmp_path, fp32_curve):
    curve = loss_curve(isic_root, tmp_path / "cache", precision="bf16")
    assert curve == pytest.approx(fp32_curve, rel=5e-2)
    assert curve != fp32_curve  # bf16 really ran

    trial = Trial(config(isic_root, tmp_path / "cache", precision="bf16"))
    x, y = next(iter(trial.loader))
    with trial.autocast():
        logits = trial.forward(x)
    assert logits.dtype == torch.bfloat16
    assert trial.plugins is not None
    assert trial.plugins.regularization(y).dtype == torch.float32
    trial.close()


def test_pdcr_loss_is_float32_under_autocast_whatever_the_features_dtype():
    from dragsaw.workloads.pdcr import PDCR, PDCRConfig

    cfg = PDCRConfig.model_validate({"sites": [{"layers": ["a"], "n": 12}, {"layers": ["a", "b"], "n": 6}],
                                     "num_classes": 2, "sampling": "grid"})
    torch.manual_seed(0)
    pdcr = PDCR(cfg, {"a": 8, "b": 16})
    feats = {"a": torch.randn(2, 8, 8, 8), "b": torch.randn(2, 16, 4, 4)}
    labels = torch.randint(0, 2, (2, 32, 32))

    def loss(dtype, autocast):
        for name, f in feats.items():
            pdcr.record(name, f.to(dtype))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            return pdcr(labels)

    reference = loss(torch.bfloat16, autocast=False)  # bf16 features cast up, float32 arithmetic
    under = loss(torch.bfloat16, autocast=True)
    assert under.dtype == torch.float32
    # bf16 matmuls inside the loss would be off by ~1e-3 relative
    assert under.item() == pytest.approx(reference.item(), rel=1e-6)


def test_loader_workers_give_identical_batches(isic_root, tmp_path):
    trial = Trial(config(isic_root, tmp_path / "cache"))
    plain, _ = training_loader(trial.samples, 4, loader_settings(0, None, trial.device), seed=1)
    workers_loader, sampler = training_loader(trial.samples, 4, loader_settings(None, 3, trial.device), seed=1)
    plain_sampler = plain.sampler
    assert workers_loader.num_workers == 2 and workers_loader.persistent_workers
    try:
        for epoch in (0, 1):  # the persistent workers follow the epoch
            sampler.set_epoch(epoch)
            plain_sampler.set_epoch(epoch)  # pyright: ignore[reportAttributeAccessIssue]
            a, b = list(plain), list(workers_loader)
            assert len(a) == len(b) == 2
            for (xa, ya), (xb, yb) in zip(a, b):
                assert torch.equal(xa, xb) and torch.equal(ya, yb)
        sampler.set_epoch(0)
        first_again = next(iter(workers_loader))[0]
        sampler.set_epoch(1)
        assert not torch.equal(first_again, next(iter(workers_loader))[0])  # epochs differ
    finally:
        del workers_loader
        trial.close()


@pytest.mark.slow
def test_compiled_model_matches_eager():
    """torch.compile (inductor, C++ kernels on the CPU: ~1 min here) of a tiny conv net:
    outputs within 1e-4 relative (1e-5 absolute) and each parameter's gradient within 1e-4
    of its norm (+ 1e-6 absolute: the first conv's bias, before BN, has an exact gradient of 0)."""
    from dragsaw.workloads.recipe.precision import Compute

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 2, 1))
    compute = Compute(torch.device("cpu"), "off", torch.contiguous_format, compile=True)
    compiled = compute.compiled(net)
    assert compiled is not net
    x = torch.randn(2, 3, 16, 16)
    try:
        out = compiled(x)
    except Exception as exc:  # noqa: BLE001 - only a missing compiler toolchain is a reason to skip
        if "compiler" in str(exc).lower() or "cxx" in str(exc).lower():
            pytest.skip(f"torch.compile cannot build kernels on this CPU build: {exc}")
        raise
    out.square().mean().backward()
    grads = [p.grad.clone() for p in net.parameters() if p.grad is not None]
    net.zero_grad()
    eager = net(x)
    assert torch.allclose(out, eager, rtol=1e-4, atol=1e-5)
    eager.square().mean().backward()
    eager_grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert len(eager_grads) == len(grads) == 6
    for g, e in zip(grads, eager_grads):
        assert (g - e).norm() <= 1e-4 * e.norm() + 1e-6  # + 1e-6: the conv bias before BN has grad 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 with a GradScaler is a CUDA path; no CUDA "
                    "device here (run on a GPU machine)")
def test_fp16_with_grad_scaler_on_cuda(isic_root, tmp_path):
    trial = Trial({**config(isic_root, tmp_path / "cache", precision="fp16"), "device": "cuda"})
    try:
        assert trial.compute.scaler and trial.scaler.is_enabled()
        m = trial.train_epoch()
        assert all(torch.isfinite(torch.tensor(v)) for v in m.values())
        assert trial.scaler.get_scale() > 0
    finally:
        trial.close()
