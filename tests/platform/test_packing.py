"""Fractional GPUs (``resources.gpus: 0.5``): distinct configurations are probed once for their
peak memory, the dry run prints it (or says GPU memory is unknown here), and a packing that
cannot fit is refused (exit 2 naming the configuration, its peak and the GPU memory)."""

from pathlib import Path

import pytest

from dragsaw.platform.cli import main
from dragsaw.platform.experiment.datasets import preview_datasets
from dragsaw.platform.experiment.grid import expand
from dragsaw.platform.experiment.loading import load_spec
from dragsaw.platform.experiment.parts import Resources
from dragsaw.platform.launch.packing import CUDA_CONTEXT_BYTES, check, configurations
from dragsaw.platform.launch.preview import refuse
from dragsaw.platform.launch.run import LaunchError
from dragsaw.workloads.recipe.probe import MemoryPeak, peak_memory, trials_per_gpu

PAPER = Path(__file__).resolve().parents[2] / "configs" / "experiments" / "paper"


def test_fractional_gpus_are_a_resource_and_pack_whole_trials_per_gpu():
    assert Resources(gpus=0.5).gpus == 0.5
    assert [trials_per_gpu(g) for g in (0.5, 1 / 3, 0.3, 0.25, 1, 2)] == [2, 3, 3, 4, 1, 1]
    with pytest.raises(ValueError, match="more than one GPU must be a whole number"):
        Resources(gpus=1.5)


@pytest.fixture(scope="module")
def table4_configs(tmp_path_factory):
    root = tmp_path_factory.mktemp("t4")
    spec = load_spec(PAPER / "table4.yaml", ["resources.gpus=0.5", f"datasets[0].root={root}/none"])
    datasets = preview_datasets(spec)[0]
    return configurations(expand(spec, datasets), [], datasets)


def test_one_configuration_per_memory_relevant_setting_not_per_seed_or_fold(table4_configs):
    # table4: 3 placements x ... x 3 seeds x folds; the seeds and folds share one probe each
    assert len(table4_configs) < sum(c.trials for c in table4_configs) == 45
    assert len({c.key for c in table4_configs}) == len(table4_configs)
    assert all(c.config["train"]["batch_size"] for c in table4_configs)


def test_without_cuda_the_gpu_memory_is_unknown_and_nothing_is_refused(table4_configs):
    lines, problems = check(table4_configs, 0.5, memory=None)
    assert problems == []
    assert lines[0].startswith("GPU memory: unknown on this machine (no CUDA device)")
    assert f"{len(table4_configs)} distinct configurations was not probed" in lines[0]
    assert "packing 2 trials per GPU (resources.gpus: 0.5) is not checked here" in lines[0]


@pytest.fixture(scope="module")
def tiny_peak():
    """A real probe of a tiny config on the CPU (the RSS rise of a fresh process)."""
    config = {"data": {"name": "isic2016", "root": "."}, "model": {"name": "unet", "width": 0.125},
              "plugins": {"pdcr": {"sites": [{"layers": ["encoder.2"], "n": 8}]}},
              "train": {"batch_size": 2, "image_size": (64, 64)}}
    return config, peak_memory(config, 3, 2, 2, device="cpu")


def test_the_cpu_probe_measures_a_peak_or_says_why_not(tiny_peak):
    _, peak = tiny_peak
    assert peak.device == "cpu"
    if peak.peak_bytes is None:
        assert "cannot be reset" in peak.note
    else:
        assert 2**20 < peak.peak_bytes < 2**32, peak.describe()
        assert "MiB peak resident set increase (VmHWM) on cpu" in peak.describe()


def test_a_packing_that_cannot_fit_is_refused_naming_configuration_peak_and_memory(tiny_peak, table4_configs):
    _, measured = tiny_peak
    peak = measured if measured.peak_bytes else MemoryPeak("cpu", 100 * 2**20, "assumed")
    c = table4_configs[0]
    assert peak.peak_bytes is not None
    need_two = 2 * (peak.peak_bytes + CUDA_CONTEXT_BYTES)
    lines, problems = check([c], 0.5, (need_two, "a GPU just big enough"), {c.key: peak})
    assert problems == [] and "fits" in lines[1]
    lines, problems = check([c], 1 / 3, (need_two, "a GPU just big enough"), {c.key: peak})
    assert len(problems) == 1 and "DOES NOT FIT" in lines[1]
    msg = problems[0]
    assert msg.startswith("resources.gpus: 0.333333 packs 3 trials per GPU, but configuration ")
    assert repr(c.label) in msg and f"peaks at {peak.peak_bytes / 2**20:,.0f} MiB" in msg
    assert f"the {need_two / 2**30:,.1f} GiB of the GPU (a GPU just big enough)" in msg
    with pytest.raises(LaunchError) as err:
        refuse(problems, "spec.yaml")
    assert err.value.args[0].startswith("spec.yaml: cannot run:\n  resources.gpus: 0.333333 packs 3")


def test_the_dry_run_states_that_gpu_memory_is_unknown_here(tmp_path, monkeypatch, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the dry run probes instead (covered on GPU machines)")
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(PAPER / "table4.yaml"), "--dry-run", "--set", "resources.gpus=0.5"]) == 0
    out = capsys.readouterr().out
    assert "paper_table4: 45 trials, 8 CPU / 0.5 GPU each" in out
    assert "GPU memory: unknown on this machine (no CUDA device)" in out
    assert "packing 2 trials per GPU (resources.gpus: 0.5) is not checked here" in out
    assert list(tmp_path.iterdir()) == []


def test_bad_compute_options_exit_2_at_the_spec_naming_field_and_valid_values(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["validate", str(PAPER / "table4.yaml"), "--set", "train.precision=fp8",
                 "--set", "train.num_workers=-1"]) == 2
    err = capsys.readouterr().err
    assert "train.precision: Input should be 'auto', 'off', 'bf16' or 'fp16'" in err
    assert "train.num_workers: Input should be greater than or equal to 0" in err
