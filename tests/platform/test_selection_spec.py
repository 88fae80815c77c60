"""``eval.selection`` at the spec boundary: a bad value, a validation fraction out of range
and a training split too small to carve a validation subset from all exit 2 from
``validate``, ``run --dry-run`` and ``run``, naming the field and what would be valid,
before anything is written."""

import pytest

from dragsaw.platform.cli import main

from .test_cli import write_spec
from .test_refuse import COMMANDS, refused


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
@pytest.mark.parametrize("override, needles", [
    ("eval.selection=best_epoch", ("eval.selection", "Input should be 'last' or 'best_val'")),
    ("eval.val_fraction=1.5", ("eval.val_fraction", "less than 1")),
    ("eval.val_every=0", ("eval.val_every", "greater than or equal to 1")),
])
def test_bad_selection_values_exit_2_naming_the_field(tmp_path, capsys, command, override, needles):
    err = refused(capsys, tmp_path, command, write_spec(tmp_path), override)
    assert all(n in err for n in needles), err


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_a_training_split_too_small_to_carve_from_exits_2(tmp_path, capsys, command):
    # 8 training cases: a validation fraction of 0.95 takes all 8 and leaves none to train on.
    # The case count is the data's: `run` writes the synthetic data (and today the spec
    # record) before it can know it; no trial runs and no result is written.
    spec = write_spec(tmp_path)
    args = [*command, str(spec), "--set", "eval.selection=best_val", "--set", "eval.val_fraction=0.95"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if command != ("run",):
        assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]  # nothing written
    else:
        written = [p.relative_to(tmp_path / "results").parts[0] for p in (tmp_path / "results").rglob("*")
                   if p.is_file()]
        assert set(written) <= {"_experiments"}, written  # no trials, epochs or cases
    assert "eval.selection best_val: the trial's training split has 8 case(s)" in err, err
    assert "at least 2 training cases" in err and "eval.selection: last" in err


def test_best_val_with_enough_training_cases_is_valid(tmp_path, capsys):
    assert main(["validate", str(write_spec(tmp_path)), "--set", "eval.selection=best_val",
                 "--set", "eval.val_fraction=0.25"]) == 0, capsys.readouterr().err
