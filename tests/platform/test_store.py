"""Contract tests of ResultStore, run against every backend: a local folder and S3 (a real
moto_server). Raw files are inspected with os / boto3, independently of the code under test."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import sys

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dragsaw.platform.store import SCHEMA_VERSION, SCHEMAS, ResultStore, StoreError

from .s3_server import ACCESS_KEY, SECRET_KEY, free_port

T0 = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


def make_trial(trial_id="t1", attempt=1, status="completed", experiment="exp1", dataset="isic2016",
               variant="baseline", fold="0", seed=0, **over) -> dict:
    trial = {"experiment": experiment, "trial_id": trial_id, "attempt": attempt, "status": status,
             "variant": variant, "dataset": dataset, "fold": fold, "seed": seed,
             "params": {"lr": 1e-3, "pdcr": {"n": [64, 32]}}, "config": {"model": "unet", "epochs": 2},
             "metrics": {"dice": 0.75, "jaccard": 0.6, "accuracy": 0.9, "dice_foreground": float("nan"),
                         "convention": "paper2d"},
             "spec_hash": "abc123", "git_commit": "deadbeef", "versions": {"dragsaw": "0.1.0", "torch": "2.13.0"},
             "hardware": "cpu x2", "node": "node-1", "started_at": T0,
             "ended_at": T0 + dt.timedelta(seconds=90.5), "error": None if status == "completed" else "boom"}
    trial.update(over)
    return trial


def make_epochs(n=2) -> list[dict]:
    return [{"epoch": e, "train_loss": 1.0 / e, "dice": 0.5 + 0.1 * e, "convention": "paper2d", "lr": 1e-3}
            for e in range(1, n + 1)]


def make_cases(n=3, scale=1) -> list[dict]:
    rows = []
    for i in range(n):
        for k, name in enumerate(("background", "lesion")):
            tp, fp, fn = (60 + i) * scale, 5 * scale, (3 + k) * scale
            rows.append({"case_id": f"case{i}", "class_index": k, "class_name": name, "tp": tp, "fp": fp,
                         "fn": fn, "tn": 100 - tp - fp - fn if scale == 1 else 0, "dice": 2 * tp / (2 * tp + fp + fn),
                         "jaccard": tp / (tp + fp + fn), "accuracy": 0.9, "empty": "nan"})
    return rows


# --- raw access to a backend, independent of ResultStore --------------------------------------


def _s3(url):
    bucket, prefix = url[len("s3://"):].split("/", 1)
    client = boto3.client("s3", endpoint_url=os.environ["DRAGSAW_S3_ENDPOINT"], aws_access_key_id=ACCESS_KEY,
                          aws_secret_access_key=SECRET_KEY, region_name="us-east-1")
    return client, bucket, prefix


def raw_files(url: str) -> dict[str, bytes]:
    """Every stored object under the store root: relative key -> bytes."""
    if url.startswith("s3://"):
        client, bucket, prefix = _s3(url)
        out = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
            for obj in page.get("Contents", []):
                out[obj["Key"][len(prefix) + 1:]] = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        return out
    out = {}
    for folder, _, names in os.walk(url):
        for name in names:
            with open(os.path.join(folder, name), "rb") as f:
                out[os.path.relpath(os.path.join(folder, name), url).replace(os.sep, "/")] = f.read()
    return out


def raw_put(url: str, key: str, data: bytes) -> None:
    if url.startswith("s3://"):
        client, bucket, prefix = _s3(url)
        client.put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=data)
        return
    path = os.path.join(url, key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def parquet_bytes(table: pa.Table, version: int, name: str) -> bytes:
    sink = pa.BufferOutputStream()
    meta = {b"dragsaw.schema_version": str(version).encode(), b"dragsaw.table": name.encode()}
    pq.write_table(table.replace_schema_metadata(meta), sink)
    return sink.getvalue().to_pybytes()


# --- round trip and layout --------------------------------------------------------------------


def test_round_trip_exact_schemas(store_url):
    store = ResultStore(store_url)
    store.check()
    store.write_trial(make_trial(), make_epochs(), make_cases())
    for name, schema in SCHEMAS.items():
        table = store.read(name)
        assert table.schema.equals(schema), name
    (trial,) = store.read("trials").to_pylist()
    assert trial["schema_version"] == SCHEMA_VERSION and trial["attempt"] == 1 and trial["seed"] == 0
    assert trial["started_at"] == T0 and str(store.read("trials").schema.field("ended_at").type) == "timestamp[us, tz=UTC]"
    assert trial["duration_s"] == 90.5 and trial["status"] == "completed" and trial["error"] is None
    assert (trial["dice"], trial["jaccard"], trial["accuracy"], trial["convention"]) == (0.75, 0.6, 0.9, "paper2d")
    assert json.loads(trial["params_json"]) == {"lr": 1e-3, "pdcr": {"n": [64, 32]}}
    assert json.loads(trial["metrics_json"])["dice_foreground"] is None  # NaN -> null: standard JSON
    assert json.loads(trial["versions_json"]) == {"dragsaw": "0.1.0", "torch": "2.13.0"}
    assert json.loads(trial["config_json"]) == {"model": "unet", "epochs": 2}
    epochs = store.read("epochs").to_pylist()
    assert sorted((r["epoch"], r["name"], r["value"]) for r in epochs) == sorted(
        (e["epoch"], k, v) for e in make_epochs() for k, v in e.items() if k not in ("epoch", "convention"))
    assert {(r["experiment"], r["trial_id"], r["variant"], r["fold"], r["seed"]) for r in epochs} == {
        ("exp1", "t1", "baseline", "0", 0)}
    cases = store.read("cases").to_pylist()
    keys = ("case_id", "class_index", "class_name", "tp", "fp", "fn", "tn", "dice", "jaccard", "accuracy", "empty")
    assert [{k: r[k] for k in keys} for r in cases] == make_cases()
    assert {r["dataset"] for r in cases} == {"isic2016"} and {r["schema_version"] for r in cases} == {1}
    sub = store.read("cases", columns=["trial_id", "tp"])
    assert sub.schema.names == ["trial_id", "tp"] and sub.num_rows == 6
    assert store.experiments() == ["exp1"]


def test_hive_partitions(store_url):
    store = ResultStore(store_url)
    store.write_trial(make_trial("t1"), make_epochs(), make_cases())
    store.write_trial(make_trial("t2", dataset="msd_brain", experiment="exp2"), make_epochs(), make_cases())
    assert sorted(raw_files(store_url)) == [
        "cases/experiment=exp1/dataset=isic2016/t1.parquet",
        "cases/experiment=exp2/dataset=msd_brain/t2.parquet",
        "epochs/experiment=exp1/dataset=isic2016/t1.parquet",
        "epochs/experiment=exp2/dataset=msd_brain/t2.parquet",
        "trials/experiment=exp1/dataset=isic2016/t1-a1.parquet",
        "trials/experiment=exp2/dataset=msd_brain/t2-a1.parquet",
    ]
    assert store.experiments() == ["exp1", "exp2"]
    assert store.read("cases", experiment="exp2").column("trial_id").unique().to_pylist() == ["t2"]
    assert store.read("cases", dataset="isic2016").column("trial_id").unique().to_pylist() == ["t1"]
    assert store.read("cases", experiment="exp1", dataset="msd_brain").num_rows == 0
    assert store.read("trials", experiment="nope").schema.equals(SCHEMAS["trials"])


def test_retry_and_resume_never_duplicate(store_url):
    store = ResultStore(store_url)
    store.write_trial(make_trial(attempt=1, status="failed"), make_epochs(1), [])
    assert store.completed("exp1") == set()
    store.write_trial(make_trial(attempt=2), make_epochs(3), make_cases())
    store.write_trial(make_trial(attempt=2), make_epochs(3), make_cases())  # a resume rewrites the same files
    assert store.read("cases").num_rows == 6 and set(store.read("cases").column("attempt").to_pylist()) == {2}
    assert store.read("epochs").num_rows == 3 * 3  # epochs 1..3, three numeric metrics each
    attempts = store.trial_attempts("exp1")
    assert attempts.column("attempt").to_pylist() == [1, 2]
    assert attempts.column("status").to_pylist() == ["failed", "completed"]
    assert store.completed("exp1") == {"t1"}
    latest = store.completed_trials("exp1")
    assert latest.num_rows == 1 and latest.column("attempt").to_pylist() == [2]


def test_invalid_rows_write_nothing(store_url):
    store = ResultStore(store_url)
    bad = make_cases()
    bad[3]["tp"] = "many"
    with pytest.raises(ValueError, match=r"cases\[3\]\['tp'\]"):
        store.write_trial(make_trial(), make_epochs(), bad)
    assert raw_files(store_url) == {}
    with pytest.raises(ValueError, match="missing.*'node'.*unknown.*'password'"):
        store.write_trial({**{k: v for k, v in make_trial().items() if k != "node"}, "password": "x"}, [], [])
    with pytest.raises(ValueError, match="trial `experiment` must be a name"):
        store.write_trial(make_trial(experiment="../escape"), [], [])
    with pytest.raises(ValueError, match="timezone-aware"):
        store.write_trial(make_trial(started_at=dt.datetime(2026, 1, 1)), [], [])
    with pytest.raises(ValueError, match=r"epochs\[0\]"):
        store.write_trial(make_trial(), [{"loss": 1.0}], [])
    assert raw_files(store_url) == {}


def test_writer_crash_midway_leaves_no_result(store_url, monkeypatch):
    """The cases write fails after the epochs file landed (a crash between two PUTs): no trials
    row, nothing counted; a killed writer's temp file and a half-written object are ignored."""
    store = ResultStore(store_url)
    real = store._files.put

    def crash_on_cases(path, data):
        if "/cases/" in path:
            raise OSError("simulated crash while writing cases")
        return real(path, data)

    monkeypatch.setattr(store._files, "put", crash_on_cases)
    with pytest.raises(StoreError, match=f"{store_url}.*cases.*simulated crash"):
        store.write_trial(make_trial(), make_epochs(), make_cases())
    assert sorted(raw_files(store_url)) == ["epochs/experiment=exp1/dataset=isic2016/t1.parquet"]
    assert store.read("trials").num_rows == 0 and store.completed("exp1") == set()
    assert store.completed_trials("exp1").num_rows == 0
    half = parquet_bytes(store.read("cases"), SCHEMA_VERSION, "cases")[:40]
    raw_put(store_url, "cases/experiment=exp1/dataset=isic2016/.t1.parquet.0123abcd.tmp", half)
    raw_put(store_url, "trials/experiment=exp1/dataset=isic2016/.t1-a1.parquet.0123abcd.tmp", half)
    assert store.read("cases").num_rows == 0 and store.read("trials").num_rows == 0
    monkeypatch.undo()
    store.write_trial(make_trial(), make_epochs(), make_cases())  # the retry completes it
    assert store.completed("exp1") == {"t1"} and store.read("cases").num_rows == 6


def test_local_rename_failure_leaves_no_file(local_store_url, monkeypatch):
    store = ResultStore(local_store_url)
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk gone")))
    with pytest.raises(StoreError, match="disk gone"):
        store.write_trial(make_trial(), make_epochs(), make_cases())
    assert raw_files(local_store_url) == {}  # the temp file was removed too


# --- errors -----------------------------------------------------------------------------------


def test_dead_s3_endpoint_is_a_store_error(s3_store_url, monkeypatch):
    monkeypatch.setenv("DRAGSAW_S3_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    store = ResultStore(s3_store_url)
    with pytest.raises(StoreError, match=f"result store {s3_store_url}: cannot write a probe") as err:
        store.check()
    assert SECRET_KEY not in str(err.value)
    with pytest.raises(StoreError, match=s3_store_url):
        store.write_trial(make_trial(), make_epochs(), make_cases())
    with pytest.raises(StoreError, match=s3_store_url):
        store.read("trials")
    with pytest.raises(StoreError, match=f"result store {s3_store_url}: cannot list it"):
        store.check_readable()


def test_missing_bucket_is_a_store_error(s3_store_url):
    url = "s3://dragsaw-no-such-bucket/results"
    with pytest.raises(StoreError, match=f"{url}.*(bucket|NoSuchBucket)"):
        ResultStore(url).check()
    for read in (lambda s: s.read("cases"), lambda s: s.experiments(), lambda s: s.completed("exp1")):
        with pytest.raises(StoreError, match=f"{url}.*bucket 'dragsaw-no-such-bucket' does not exist"):
            read(ResultStore(url))
    with pytest.raises(StoreError, match=f"{url}.*does not exist"):
        ResultStore(url).check_readable()
    assert ResultStore(s3_store_url).read("cases").num_rows == 0  # an empty prefix is an empty store
    ResultStore(s3_store_url).check_readable()


def test_unusable_local_paths(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    for url, reason in ((str(a_file), "is a file"), (str(a_file / "results"), "cannot write")):
        with pytest.raises(StoreError, match=f"{url}.*{reason}"):
            ResultStore(url).check()
    with pytest.raises(StoreError, match=str(a_file)):
        ResultStore(str(a_file / "results")).write_trial(make_trial(), make_epochs(), make_cases())
    with pytest.raises(StoreError, match=f"{a_file} is a file"):
        ResultStore(str(a_file)).check_readable()
    ResultStore(str(tmp_path / "not-yet")).check_readable()  # a new folder is an empty store
    if sys.platform.startswith("linux"):  # even root cannot create folders in /proc
        with pytest.raises(StoreError, match="/proc/dragsaw-results"):
            ResultStore("/proc/dragsaw-results").check()


def test_read_only_folder(tmp_path):
    """Run without the capabilities that let root ignore permissions (CI runs as root)."""
    import subprocess

    from .unprivileged import unprivileged

    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    code = ("from dragsaw.platform.store import ResultStore, StoreError\n"
            f"store = ResultStore({str(folder / 'results')!r})\n"
            "store.check_readable()\n"  # reading a read-only folder is fine
            "try:\n    store.check()\nexcept StoreError as err:\n    print(err)\nelse:\n    print('WROTE')\n")
    try:
        out = subprocess.run(unprivileged([sys.executable, "-c", code]), capture_output=True, text=True, timeout=120)
    finally:
        folder.chmod(0o700)
    assert out.returncode == 0, out.stderr
    assert str(folder / "results") in out.stdout and "cannot" in out.stdout and "WROTE" not in out.stdout
    assert not (folder / "results").exists()


def test_credentials_never_stored_or_shown(store_url, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)  # also for the local backend
    store = ResultStore(store_url)
    leaky = {"model": "unet", "optuna_storage": "postgresql://optuna:hunter22@db:5432/studies",
             "oops": f"key={SECRET_KEY}"}
    store.write_trial(make_trial(config=leaky, error=f"Traceback: signature {SECRET_KEY} rejected",
                                 status="failed"), make_epochs(), make_cases())
    store.compact()
    (row,) = store.read("trials").to_pylist()
    assert json.loads(row["config_json"]) == {"model": "unet", "optuna_storage": "postgresql://***@db:5432/studies",
                                              "oops": "key=***"}
    assert row["error"] == "Traceback: signature *** rejected"
    blobs = raw_files(store_url)
    assert blobs and not any(SECRET_KEY.encode() in b or b"hunter22" in b for b in blobs.values())
    assert SECRET_KEY not in repr(store) and SECRET_KEY not in str(store.read("trials").to_pylist())
    with pytest.raises(StoreError) as err:
        ResultStore(f"s3://{ACCESS_KEY}:{SECRET_KEY}@bucket/results")
    assert "must not carry credentials" in str(err.value) and SECRET_KEY not in str(err.value)
    # An error text that quotes the secret (as a misconfigured backend might) is redacted.
    assert SECRET_KEY not in str(StoreError(f"boom {SECRET_KEY}")) and "***" in str(StoreError(f"x {SECRET_KEY}"))


def test_newer_schema_version_refused(store_url):
    store = ResultStore(store_url)
    store.write_trial(make_trial(), make_epochs(), make_cases())
    newer = store.read("trials").append_column("new_column", pa.array(["x"]))
    raw_put(store_url, "trials/experiment=exp1/dataset=isic2016/t9-a1.parquet",
            parquet_bytes(newer, SCHEMA_VERSION + 1, "trials"))
    with pytest.raises(StoreError, match=rf"{store_url}.*t9-a1.parquet.*schema version {SCHEMA_VERSION + 1}.*upgrade"):
        store.read("trials")
    raw_put(store_url, "cases/experiment=exp1/dataset=isic2016/t8.parquet", b"PAR1 not parquet")
    with pytest.raises(StoreError, match="t8.parquet is not a readable Parquet file"):
        store.read("cases")


# --- compaction -------------------------------------------------------------------------------


def _sorted_rows(table: pa.Table) -> list[dict]:
    rows = table.to_pylist()
    return sorted(rows, key=lambda r: json.dumps(r, default=str, sort_keys=True))


def test_compaction_is_a_validated_cache(store_url):
    store = ResultStore(store_url)
    for i in range(3):
        store.write_trial(make_trial(f"t{i}", seed=i), make_epochs(), make_cases())
    before = {name: _sorted_rows(store.read(name)) for name in SCHEMAS}
    assert store.compact("exp1") == {"epochs": 1, "cases": 1, "trials": 1}
    assert store.compact("exp1") == {"epochs": 0, "cases": 0, "trials": 0}  # already current
    assert "cases/experiment=exp1/dataset=isic2016/_compact.parquet" in raw_files(store_url)
    assert {name: _sorted_rows(store.read(name)) for name in SCHEMAS} == before
    # After compaction: a retry rewrites t1 with other counts, and t3 is new.
    store.write_trial(make_trial("t1", seed=1, attempt=2), make_epochs(), make_cases(n=2, scale=2))
    store.write_trial(make_trial("t3", seed=3), make_epochs(), make_cases())
    cases = store.read("cases")
    by_trial = {t: cases.filter(pa.compute.equal(cases.column("trial_id"), t)) for t in ("t0", "t1", "t2", "t3")}
    assert {t: v.num_rows for t, v in by_trial.items()} == {"t0": 6, "t1": 4, "t2": 6, "t3": 6}
    assert set(by_trial["t1"].column("attempt").to_pylist()) == {2} and by_trial["t1"].column("tp")[0].as_py() == 120
    assert store.read("trials").num_rows == 5 and store.completed("exp1") == {"t0", "t1", "t2", "t3"}
    after = {name: _sorted_rows(store.read(name)) for name in SCHEMAS}
    store.compact()
    assert {name: _sorted_rows(store.read(name)) for name in SCHEMAS} == after
    assert math.isclose(store.read("trials").column("duration_s")[0].as_py(), 90.5)
