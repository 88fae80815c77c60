"""A real S3 endpoint for tests and benchmarks: ``moto_server`` on 127.0.0.1 in a subprocess
(the executable next to the running Python), stopped by its PID."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

#: Dummy keys for the local endpoint (moto accepts any).
ACCESS_KEY = "dragsaw-test-key"
SECRET_KEY = "dragsaw-test-secret-Zq93xLw0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def create_bucket(endpoint: str, bucket: str) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY,
                          aws_secret_access_key=SECRET_KEY, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)


def s3_environment(endpoint: str) -> dict[str, str]:
    """Environment variables that point ResultStore("s3://...") at the endpoint."""
    return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "DRAGSAW_S3_ENDPOINT": endpoint, "AWS_DEFAULT_REGION": "us-east-1"}
