"""An experiment's identity is what it runs, never where its results, data or working
directory are: `dragsaw resume NAME` and a re-run of `dragsaw run SPEC` continue it from a
relative, absolute, copied, moved or s3:// store, from any working directory."""

import shutil
import textwrap

import pytest

from dragsaw.platform.experiment.grid import identity, spec_hash
from dragsaw.platform.experiment.loading import load_spec
from dragsaw.platform.store import ResultStore, filesystem

from .test_cli import TINY, dragsaw


def _spec(tmp_path, text, name="spec.yaml", overrides=()):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return load_spec(path, list(overrides))


def test_where_and_how_a_run_happens_is_not_identity(tmp_path):
    base = TINY.format(store="./results", root="isic", layer="encoder.2")
    a = _spec(tmp_path, base)
    moved = _spec(tmp_path, base.replace("store: ./results", f"store: {tmp_path}/elsewhere")
                  .replace("root: isic", f"root: {tmp_path}/data/isic"), "b.yaml",
                  ["cache_dir=/tmp/cache", "resources.cpus=2", "concurrency=1", "failure.max_failures=3",
                   "description=moved"])
    s3 = _spec(tmp_path, base.replace("store: ./results", "store: s3://bucket/prefix"), "c.yaml")
    assert spec_hash(a) == spec_hash(moved) == spec_hash(s3)
    for change in ("train.epochs=2", "seeds=[0, 1]", "model.width=0.25", "datasets[0].fraction=[0.5]"):
        changed = _spec(tmp_path, base, "d.yaml", [change])
        assert spec_hash(changed) != spec_hash(a), change
    assert "store" not in identity(a) and "root" not in identity(a)["datasets"][0]


def _drop_trial_row(store_url: str, experiment: str) -> str:
    """Remove one completed trial's rows (as if it had not finished); returns its trial_id."""
    fs, root = filesystem(store_url)
    rows = [p for p in fs.find(f"{root}/trials/experiment={experiment}") if p.endswith(".parquet")]
    victim = sorted(p for p in rows if "/_" not in p)[0]
    for path in rows:  # the compacted cache holds it too
        if "/_compact" in path:
            fs.rm_file(path)
    fs.rm_file(victim)
    return victim.rsplit("/", 1)[1].split("-a")[0]


@pytest.mark.integration
@pytest.mark.slow
def test_resume_and_rerun_from_relative_absolute_copied_and_moved_stores(tmp_path):
    work, other = tmp_path / "work", tmp_path / "other"
    work.mkdir()
    other.mkdir()
    (work / "tiny.yaml").write_text(TINY.format(store="./results", root="isic", layer="encoder.2"))
    first = dragsaw("run", "tiny.yaml", cwd=work)  # the default ./results, relative
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]

    out = dragsaw("resume", "tiny", cwd=work)  # the default store again
    assert out.returncode == 0 and "2 already complete" in out.stdout, out.stdout + out.stderr
    out = dragsaw("resume", "tiny", "--store", work / "results", cwd=other)  # absolute, elsewhere
    assert out.returncode == 0 and "2 already complete" in out.stdout, out.stdout + out.stderr

    shutil.copytree(work / "results", other / "copy")  # a copy, resumed by a relative path
    missing = _drop_trial_row(str(other / "copy"), "tiny")
    out = dragsaw("resume", "tiny", "--store", "copy", cwd=other)
    assert out.returncode == 0 and "1 already complete" in out.stdout, out.stdout + out.stderr
    assert missing in ResultStore(str(other / "copy")).completed("tiny")

    (work / "results").rename(work / "moved")  # moved; the spec re-run from another folder
    out = dragsaw("run", work / "tiny.yaml", "--store", work / "moved", cwd=other)
    assert out.returncode == 0 and "2 already complete" in out.stdout, out.stdout + out.stderr

    changed = dragsaw("run", work / "tiny.yaml", "--store", work / "moved", "--set", "train.epochs=2", cwd=other)
    assert changed.returncode == 2 and "different spec" in changed.stderr and "train.epochs" in changed.stderr


@pytest.mark.integration
@pytest.mark.slow
def test_resume_an_s3_store_from_another_directory(tmp_path, s3_store_url):
    work, other = tmp_path / "work", tmp_path / "other"
    work.mkdir()
    other.mkdir()
    (work / "tiny.yaml").write_text(TINY.format(store=s3_store_url, root="isic", layer="encoder.2"))
    first = dragsaw("run", "tiny.yaml", cwd=work)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    missing = _drop_trial_row(s3_store_url, "tiny")
    out = dragsaw("resume", "tiny", "--store", s3_store_url, cwd=other)
    assert out.returncode == 0 and "1 already complete" in out.stdout, out.stdout + out.stderr
    assert missing in ResultStore(s3_store_url).completed("tiny")
    assert not (other / "isic").exists()  # the recorded (absolute) data folder was used
