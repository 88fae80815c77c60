"""Work that can never run is refused before launch (issue 8, point 5): impossible N for a
layer, patches larger than the image, absurd or non-finite numbers, resources no machine
here can give, and spec files that are not UTF-8. Each exits 2 from ``validate``,
``run --dry-run`` and ``run``, names the field and the bound, and writes nothing."""

import pytest

from dragsaw.platform.cli import main
from dragsaw.platform.launch.preview import local_resource_problems
from dragsaw.workloads.recipe.config import ConfigError
from dragsaw.workloads.recipe.preflight import config_problems, preflight

from .test_cli import write_spec

COMMANDS = [("validate",), ("run", "--dry-run"), ("run",)]


def refused(capsys, tmp_path, command, spec, *overrides):
    """Run ``command`` and return its stderr, asserting exit 2 and that nothing was written."""
    before = sorted(p.name for p in tmp_path.iterdir())
    args = [*command, str(spec), *[x for o in overrides for x in ("--set", o)]]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no store, no data written
    return err


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
@pytest.mark.parametrize("override, field, bound", [
    ("train.epochs=1e12", "train.epochs", "less than or equal to 100000"),
    ("train.lr=.inf", "train.lr", "finite number"),
    ("train.lr=.nan", "train.lr", "finite number"),
    ("model.width=1e9", "model.width", "less than or equal to 16"),
    ("variants.uafr.plugins={pdcr: {sites: [{layers: [encoder.2], n: 1e9}]}}", "n", "less than or equal to 1000000"),
])
def test_absurd_numbers_exit_2_naming_the_field_and_the_bound(tmp_path, capsys, command, override, field, bound):
    spec = write_spec(tmp_path)
    err = refused(capsys, tmp_path, command, spec, override)
    assert field in err and bound in err, err


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_n_beyond_a_layers_positions_is_refused_with_the_bound(tmp_path, capsys, command):
    # unet at 64x64: encoder.5 is 4x4 = 16 positions
    spec = write_spec(tmp_path)
    err = refused(capsys, tmp_path, command, spec,
                  "variants.uafr.plugins={pdcr: {sites: [{layers: [encoder.5], n: 17}]}}")
    assert "plugins.pdcr.sites[0].n" in err and "n=17 exceeds the 16 positions of layer 'encoder.5'" in err, err
    assert "at most 16" in err


def test_n_at_exactly_the_positions_is_accepted(tmp_path, capsys):
    spec = write_spec(tmp_path)
    assert main(["validate", str(spec), "--set", "variants.uafr.plugins={pdcr: {sites: [{layers: [encoder.5], "
                 "n: 16}]}}"]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_patches_larger_than_the_image_are_refused(tmp_path, capsys, command):
    spec = write_spec(tmp_path)
    err = refused(capsys, tmp_path, command, spec,
                  "variants.uafr.plugins={pdcr: {patch_sizes: [5, 5000], sites: [{layers: [encoder.2], n: 8}]}}")
    assert "plugins.pdcr.patch_sizes" in err and "[5000]" in err and "at most 64" in err, err


def test_a_search_choice_too_large_for_its_layer_is_cut_with_a_note(tmp_path, capsys):
    """The shipped search's N choices reach 128; at 96 px encoder.4/5 of DeepLabV3+ have 36
    positions: 64 and 128 are cut there (a note each, the effective space printed), not refused."""
    from pathlib import Path

    spec = Path(__file__).resolve().parents[2] / "configs" / "search" / "new_dataset.yaml"
    store = tmp_path / "results"
    assert main(["validate", str(spec), "--smoke", "--set", f"store={store}", "--set",
                 'search.space["pdcr.n.{layer}"].choices=[8, 16, 32, 64, 128]']) == 0
    out = capsys.readouterr().out
    assert ('note: search.space["pdcr.n.encoder.5"]: choice 128 cut: n=128 exceeds the 36 positions of layer '
            "'encoder.5'") in out, out
    assert "pdcr.n.{layer}: categorical choices=[8, 16, 32, 64, 128]; on encoder.4, encoder.5: categorical " \
        "choices=[8, 16, 32]" in out, out
    assert not store.exists()


@pytest.mark.parametrize("command", [("validate",), ("run", "--dry-run")], ids=lambda c: " ".join(c))
def test_a_search_parameter_with_no_runnable_choice_left_is_refused(tmp_path, capsys, command):
    from pathlib import Path

    spec = Path(__file__).resolve().parents[2] / "configs" / "search" / "new_dataset.yaml"
    store = tmp_path / "results"
    assert main([*command, str(spec), "--smoke", "--set", f"store={store}", "--set",
                 'search.space["pdcr.n.{layer}"].choices=[64, 128]']) == 2
    err = capsys.readouterr().err
    assert 'search.space["pdcr.n.encoder.5"]' in err and "no runnable choice left" in err, err
    assert "Traceback" not in err and not store.exists()


@pytest.mark.parametrize("command", [("run",)], ids=["run"])
def test_more_cpus_than_this_machine_has_are_refused_by_run(tmp_path, capsys, command):
    spec = write_spec(tmp_path)
    err = refused(capsys, tmp_path, command, spec, "resources.cpus=100000")
    assert "resources.cpus: 100000 CPUs per trial, but this machine has" in err, err


def test_validate_and_dry_run_only_note_what_this_machine_lacks(tmp_path, capsys):
    """A preview may be for a cluster: it says so, and `run` here refuses."""
    spec = write_spec(tmp_path)
    assert main(["validate", str(spec), "--set", "resources.cpus=100000"]) == 0
    assert "note: resources.cpus: 100000 CPUs per trial" in capsys.readouterr().out


def test_a_gpu_request_on_a_machine_without_gpus_is_no_problem_here():
    """In-process runs fall back to the CPU on purpose (with a note)."""
    from types import SimpleNamespace

    import torch

    spec = SimpleNamespace(resources=SimpleNamespace(cpus=1, gpus=1))
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert local_resource_problems(spec) == []


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32", "latin-1"])
@pytest.mark.parametrize("command", [("validate",), ("run", "--dry-run")], ids=lambda c: " ".join(c))
def test_a_spec_that_is_not_utf8_exits_2_naming_the_file_and_utf8(tmp_path, capsys, encoding, command):
    text = write_spec(tmp_path).read_text() + "description: caf\u00e9\n"
    spec = tmp_path / "other.yaml"
    spec.write_bytes(text.encode(encoding))
    err = refused(capsys, tmp_path, command, spec)
    assert str(spec) in err and "must be UTF-8" in err, err


def test_a_utf8_spec_with_a_byte_order_mark_is_read(tmp_path, capsys):
    spec = write_spec(tmp_path)
    spec.write_bytes(b"\xef\xbb\xbf" + spec.read_bytes())
    assert main(["validate", str(spec)]) == 0, capsys.readouterr().err


def test_preflight_raises_config_error_for_what_the_model_refuses():
    config = {"model": {"name": "fcn", "width": 0.125}, "train": {"image_size": [64, 64]},
              "plugins": {"pdcr": {"sites": [{"layers": ["encoder.5"], "n": 5}]}}}
    # fcn at 64 px: encoder.5 (stride 32) is 2x2
    assert config_problems(config) == [(("plugins", "pdcr", "sites", 0, "n"),
                                        "n=5 exceeds the 4 positions of layer 'encoder.5' (2x2 feature map of fcn "
                                        "at train.image_size [64, 64]): at most 4")]
    with pytest.raises(ConfigError, match=r"plugins\.pdcr\.sites\.0\.n: n=5 exceeds the 4 positions"):
        preflight(config)
    config["plugins"]["pdcr"]["sites"][0]["n"] = 4
    preflight(config)  # at the bound: fine
