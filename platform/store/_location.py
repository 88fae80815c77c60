"""Where a store lives: a URL -> an fsspec filesystem and a root path, with credentials
taken only from the environment and kept out of every message.

- a plain path (default ``results``) or ``file://``: the local filesystem;
- ``s3://bucket/prefix``: s3fs, with keys from the standard AWS chain (AWS_ACCESS_KEY_ID /
  AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, profiles, instance roles) and a custom endpoint
  (MinIO, moto) from ``DRAGSAW_S3_ENDPOINT``, else ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``;
- anything else fsspec knows (``gs://``, ``az://``, ``memory://``...): ``fsspec.url_to_fs``.

Credentials are never accepted in the URL itself (``s3://key:secret@bucket``): they would
end up in specs, logs and Ray's experiment state.
"""

from __future__ import annotations

import hashlib
import os
import re
from urllib.parse import urlsplit

import fsspec
from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import AbstractFileSystem

#: Where results go when no URL is given.
DEFAULT_URL = "results"

#: Environment variables whose values must never appear in a message.
SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                    "GOOGLE_APPLICATION_CREDENTIALS_JSON", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN")

ENDPOINT_VARIABLES = ("DRAGSAW_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")

# What the AWS chain reads from the environment: a change makes a new S3 client.
_CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                         "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE")
_S3_CLIENTS: dict[tuple, AbstractFileSystem] = {}


class StoreError(Exception):
    """The store cannot be used: the message names the URL and what is wrong, never a credential."""

    def __init__(self, message: str):
        super().__init__(redact(message))


def redact(text: str) -> str:
    """``text`` with the values of secret environment variables and URL user-info replaced by ***."""
    for name in SECRET_VARIABLES:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return re.sub(r"(\b[a-z][a-z0-9+.-]*://)[^/@\s]*@", r"\1***@", text)


def is_local(fs: AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def filesystem(url: str) -> tuple[AbstractFileSystem, str]:
    """(fsspec filesystem, root path without protocol) of a store URL, with credentials from the
    environment only; StoreError if the URL is unusable. Also for files kept beside the
    results (checkpoints, experiment records)."""
    if not isinstance(url, str) or not url.strip():
        raise StoreError(f"store URL must be a non-empty str (a folder, file://..., s3://bucket/prefix), "
                         f"but got {url!r}")
    scheme = urlsplit(url).scheme if "://" in url else ""
    if scheme and "@" in urlsplit(url).netloc:
        raise StoreError(f"store URL {redact(url)} must not carry credentials: set them in the environment "
                         f"(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or a profile) instead")
    if scheme in ("", "file", "local"):
        path = url.split("://", 1)[1] if scheme else url
        return LocalFileSystem(), os.path.abspath(os.path.expanduser(path))
    if scheme in ("s3", "s3a"):
        return _s3(url)
    try:
        fs, root = fsspec.url_to_fs(url)
    except (ImportError, ValueError) as err:
        raise StoreError(f"store URL {redact(url)} has no usable filesystem: {err}") from None
    return fs, root.rstrip("/")


def _s3(url: str) -> tuple[AbstractFileSystem, str]:
    try:
        import s3fs
    except ImportError:  # pragma: no cover - s3fs is a dependency
        raise StoreError(f"store URL {url} needs s3fs (pip install s3fs)") from None
    bucket_and_prefix = url.split("://", 1)[1].strip("/")
    if not bucket_and_prefix:
        raise StoreError(f"store URL {url} must name a bucket: s3://bucket/prefix")
    endpoint = next((os.environ[v] for v in ENDPOINT_VARIABLES if os.environ.get(v)), None)
    kwargs = {
        # Fresh instance and no listing cache: a store must see what other writers just put.
        "skip_instance_cache": True,
        "use_listings_cache": False,
        "config_kwargs": {"connect_timeout": 5, "read_timeout": 60},
    }
    if not (os.environ.get("AWS_MAX_ATTEMPTS") or os.environ.get("AWS_RETRY_MODE")):
        # Fail within seconds on a dead endpoint; AWS_MAX_ATTEMPTS / AWS_RETRY_MODE still rule.
        kwargs["config_kwargs"]["retries"] = {"max_attempts": 3, "mode": "standard"}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    # One client per process and configuration: creating one costs 0.3-1.5 s (botocore loads
    # its service model), more than a trial-start read. Listings are never cached, so a reused
    # client still sees what other writers just put; keys, endpoint and process are in the key.
    key = (os.getpid(), endpoint, repr(sorted(kwargs["config_kwargs"].items())),
           *(hashlib.sha256(os.environ.get(v, "").encode()).hexdigest() for v in _CREDENTIAL_VARIABLES))
    fs = _S3_CLIENTS.get(key)
    if fs is None:
        fs = _S3_CLIENTS[key] = s3fs.S3FileSystem(**kwargs)
    return fs, bucket_and_prefix
