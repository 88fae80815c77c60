"""Store backends for the platform tests: a local folder, and two REAL S3 endpoints in
subprocesses on 127.0.0.1, one each per test session, stopped by their PIDs: ``moto_server``
and SeaweedFS (a real object store); no mocks of s3fs or boto."""

from __future__ import annotations

import uuid

import pytest

from .s3_server import create_bucket, s3_environment, start_moto, start_seaweedfs, stop

# Variables of the AWS chain that could point the store elsewhere than the test endpoint.
_FOREIGN_AWS = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN",
                "AWS_SECURITY_TOKEN", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE")


@pytest.fixture(scope="session")
def s3_endpoint():
    """URL of a moto_server started for this session (about 0.5 s to answer)."""
    proc, endpoint = start_moto()
    try:
        yield endpoint
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def seaweed_endpoint():
    """URL of the S3 gateway of a SeaweedFS started for this session (~3.5 s to answer, ~15 s
    to stop), bound to 127.0.0.1 only, telemetry off, AWS_* cleared from its environment."""
    server = start_seaweedfs()
    try:
        yield server.endpoint
    finally:
        server.stop()


def _bucket_url(endpoint: str, monkeypatch) -> str:
    bucket = f"dragsaw-{uuid.uuid4().hex[:12]}"
    create_bucket(endpoint, bucket)
    for name in _FOREIGN_AWS:
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_environment(endpoint).items():
        monkeypatch.setenv(name, value)
    return f"s3://{bucket}/results"


@pytest.fixture
def s3_store_url(s3_endpoint, monkeypatch) -> str:
    """``s3://<fresh bucket>/results`` with the environment pointing ResultStore at moto."""
    return _bucket_url(s3_endpoint, monkeypatch)


@pytest.fixture
def seaweed_store_url(seaweed_endpoint, monkeypatch) -> str:
    """``s3://<fresh bucket>/results`` with the environment pointing ResultStore at SeaweedFS."""
    return _bucket_url(seaweed_endpoint, monkeypatch)


@pytest.fixture
def local_store_url(tmp_path) -> str:
    return str(tmp_path / "results")


@pytest.fixture(params=["local", "s3", pytest.param("seaweed", marks=pytest.mark.integration)])
def store_url(request) -> str:
    """Each backend in turn, for contract tests: a folder, moto, SeaweedFS."""
    return request.getfixturevalue(f"{request.param}_store_url")
