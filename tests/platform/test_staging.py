"""Datasets on object storage: a root that is an S3 URL is staged once per node into its local
cache (atomic, locked across processes, verified against the store's listing) and read
locally; a spec naming one that does not exist exits 2. On moto and SeaweedFS."""

import json
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


@pytest.mark.integration
@pytest.mark.slow
def test_a_grid_on_a_two_node_cluster_stages_its_s3_dataset_on_each_node(tmp_path, s3_store_url, monkeypatch):
    """No shared file system: the dataset is only on the store; each node (its own
    DRAGSAW_CACHE) and the driver stage it once, and both nodes run trials from their copies."""
    from ray.cluster_utils import Cluster

    from dragsaw.platform.store import ResultStore

    bucket = s3_store_url.split("/")[2]
    write_isic2016(tmp_path / "upload", n_train=8, n_test=4, size=(72, 96), seed=0)
    url = f"s3://{bucket}/ISIC2016"
    fs, root = filesystem(url)
    fs.put(str(tmp_path / "upload") + "/", root, recursive=True)
    caches = {"head": tmp_path / "cache-head", "worker": tmp_path / "cache-worker"}
    monkeypatch.setenv("DRAGSAW_CACHE", str(caches["head"]))  # the head node's
    spec = tmp_path / "remote.yaml"
    spec.write_text(f"""\
name: remote
store: {s3_store_url}
datasets:
  - {{name: isic2016, root: "{url}"}}
model: {{name: unet, width: 0.125}}
train: {{epochs: 1, batch_size: 4, image_size: [64, 64]}}
seeds: [0, 1, 2, 3]
resources: {{cpus: 1}}
concurrency: 2
variants:
  baseline: {{}}
""")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:  # a node's processes inherit the environment it was started in: each its own cache
        monkeypatch.setenv("DRAGSAW_CACHE", str(caches["worker"]))
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        # The driver forwards its DRAGSAW_CACHE to every worker (run.PASSED): here it has none
        # (its own copy goes under its HOME), so each node keeps the cache it was started with.
        monkeypatch.delenv("DRAGSAW_CACHE")
        (tmp_path / "driver-home").mkdir()
        ray_dir = Path("~/.ray").expanduser()  # Ray's auth token for the cluster started above
        if ray_dir.exists():
            (tmp_path / "driver-home" / ".ray").symlink_to(ray_dir)
        monkeypatch.setenv("HOME", str(tmp_path / "driver-home"))
        caches["driver"] = tmp_path / "driver-home" / ".cache" / "dragsaw"
        out = dragsaw("run", spec, "--address", cluster.address, cwd=tmp_path, timeout=600)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    finally:
        cluster.shutdown()
    trials = ResultStore(s3_store_url).trial_attempts("remote").to_pylist()
    assert len(trials) == 4 and {t["status"] for t in trials} == {"completed"}
    assert len({t["node"] for t in trials}) == 2, [t["node"] for t in trials]
    assert {json.loads(t["config_json"])["data"]["root"] for t in trials} == {url}  # the URL, not a node's path
    for where, cache in caches.items():
        staged = [p for p in (cache / "datasets").iterdir() if not p.name.endswith(".lock")]
        assert [p.name for p in staged] == [local_path(url).name], (where, staged)
        assert (staged[0] / MANIFEST).exists()
