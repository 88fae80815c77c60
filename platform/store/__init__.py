"""Results as Parquet on any fsspec URL: three tables (trials, epochs, cases) under one
root, hive-partitioned by experiment and dataset, every file written whole.

    store = ResultStore("s3://bucket/dragsaw")   # or a folder (default ./results), file://, gs://...
    store.check()                                # reachable and writable, else StoreError
    store.write_trial(trial, epochs, cases)      # one attempt; retries rewrite, never duplicate
    store.read("cases", experiment="table4")     # pyarrow.Table with schema SCHEMAS["cases"]
    store.scan("cases", "table4")                # the same rows as chunks of whole files (bounded memory)
    store.compact("table4")                      # one file per partition for fast reads (a cache)
    store.incomplete("table4")                   # completed trials whose data is missing or changed
    fs, root = filesystem(url)                   # the same filesystem, for files kept beside results
    with Lease(url, "table4"):                   # one driver per experiment (LeaseHeld names the holder)
"""

from dragsaw.platform.store._complete import IncompleteTrials
from dragsaw.platform.store._lease import Holder, Lease, LeaseHeld, lease_seconds
from dragsaw.platform.store._location import DEFAULT_URL, StoreError, filesystem
from dragsaw.platform.store._schema import (
    CASE_KEYS,
    NAME_PATTERN,
    SCHEMA_VERSION,
    SCHEMAS,
    TABLES,
    TRIAL_KEYS,
)
from dragsaw.platform.store._store import ResultStore

__all__ = [
    "CASE_KEYS",
    "DEFAULT_URL",
    "Holder",
    "IncompleteTrials",
    "Lease",
    "LeaseHeld",
    "NAME_PATTERN",
    "SCHEMAS",
    "SCHEMA_VERSION",
    "TABLES",
    "TRIAL_KEYS",
    "ResultStore",
    "StoreError",
    "filesystem",
    "lease_seconds",
]
