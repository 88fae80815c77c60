"""Datasets on object storage: a root that is an S3 URL is staged once per node into its local
cache (atomic, locked across processes, verified against the store's listing) and read
locally; a spec naming one that does not exist exits 2. On moto and SeaweedFS."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dragsaw.platform.datasets.staging import MANIFEST, listing, local_path, stage
from dragsaw.platform.store._location import filesystem
from dragsaw.workloads.data import load_dataset
from dragsaw.workloads.data.synthetic import write_isic2016

from .test_cli import assert_usage_error, dragsaw


@pytest.fixture(params=["s3", pytest.param("seaweed", marks=pytest.mark.integration)])
def dataset_url(request, tmp_path, monkeypatch) -> str:
    """``s3://<fresh bucket>/ISIC2016``: a synthetic ISIC 2016 uploaded to moto or SeaweedFS;
    $DRAGSAW_CACHE points at this test's own folder."""
    bucket = request.getfixturevalue(f"{request.param}_store_url").split("/")[2]
    local = tmp_path / "upload"
    write_isic2016(local, n_train=6, n_test=3, size=(48, 64), seed=0)
    url = f"s3://{bucket}/ISIC2016"
    fs, root = filesystem(url)
    fs.put(str(local) + "/", root, recursive=True)
    monkeypatch.setenv("DRAGSAW_CACHE", str(tmp_path / "cache"))
    return url


def test_a_url_root_is_staged_once_verified_and_read_locally(dataset_url, tmp_path):
    first = stage(dataset_url)
    assert first.downloaded and first.path == local_path(dataset_url)
    assert str(first.path).startswith(str(tmp_path / "cache" / "datasets"))
    files = listing(dataset_url)
    assert first.files == len(files) >= 9 and all(etag for _, etag in files.values())  # sizes and ETags listed
    dataset = load_dataset("isic2016", first.path)
    assert len(dataset.splits["train"]) == 6 and len(dataset.splits["test"]) == 3
    again = stage(dataset_url)
    assert not again.downloaded and again.path == first.path
    # a file changed on the store: the copy is stale and staged again, whole
    fs, root = filesystem(dataset_url)
    name = next(iter(files))
    fs.pipe_file(f"{root}/{name}", b"changed")
    third = stage(dataset_url)
    assert third.downloaded and (third.path / name).read_bytes() == b"changed"
    # a local file damaged (size differs from the listing): staged again
    (third.path / name).write_bytes(b"x")
    assert stage(dataset_url).downloaded
    leftovers = [p.name for p in third.path.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == [], leftovers  # no temp or stale folders left beside the copy


STAGER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from dragsaw.platform.datasets.staging import stage
    go = Path(sys.argv[2])
    while not go.exists():
        time.sleep(0.01)
    print("downloaded" if stage(sys.argv[1]).downloaded else "found", flush=True)
""")


def test_two_processes_staging_at_once_download_once(dataset_url, tmp_path):
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", STAGER, dataset_url, str(go)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=dict(os.environ)) for _ in range(2)]
    try:
        time.sleep(3)  # both imported and waiting
        go.touch()
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    assert sorted(out.strip() for out, _ in outs) == ["downloaded", "found"]
    assert (local_path(dataset_url) / MANIFEST).exists()


def test_a_spec_whose_url_root_holds_nothing_exits_2(dataset_url, tmp_path):
    missing = dataset_url.replace("ISIC2016", "NOPE")
    spec = tmp_path / "s.yaml"
    spec.write_text(f"""\
name: remote
store: {tmp_path / "results"}
datasets:
  - {{name: isic2016, root: "{missing}"}}
model: {{name: unet, width: 0.125}}
train: {{epochs: 1, batch_size: 4, image_size: [64, 64]}}
""")
    out = dragsaw("validate", spec)
    assert_usage_error(out, "datasets[0].root", missing, "holds no files")
    spec.write_text(spec.read_text().replace(missing, dataset_url))
    out = dragsaw("run", "--dry-run", spec)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "on object storage: each node stages it" in out.stdout
    assert not Path(local_path(dataset_url)).exists()  # a dry run stages nothing
