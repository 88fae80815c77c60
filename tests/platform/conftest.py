"""Store backends for the platform tests: a local folder, and a REAL S3 endpoint
(``moto_server`` in a subprocess on 127.0.0.1, one per test session, stopped by its PID);
no mocks of s3fs or boto."""

from __future__ import annotations

import uuid

import pytest

from .s3_server import create_bucket, s3_environment, start_moto, stop

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


@pytest.fixture
def s3_store_url(s3_endpoint, monkeypatch) -> str:
    """``s3://<fresh bucket>/results`` with the environment pointing ResultStore at moto."""
    bucket = f"dragsaw-{uuid.uuid4().hex[:12]}"
    create_bucket(s3_endpoint, bucket)
    for name in _FOREIGN_AWS:
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_environment(s3_endpoint).items():
        monkeypatch.setenv(name, value)
    return f"s3://{bucket}/results"


@pytest.fixture
def local_store_url(tmp_path) -> str:
    return str(tmp_path / "results")


@pytest.fixture(params=["local", "s3"])
def store_url(request) -> str:
    """Each backend in turn, for contract tests."""
    return request.getfixturevalue(f"{request.param}_store_url")
