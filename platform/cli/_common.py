"""What every ``dragsaw`` command shares: the input-error type (exit status 2), the
default store, and parent parsers for options that several commands take, so that an
option is spelled and explained once."""

from __future__ import annotations

import argparse

DEFAULT_STORE = "./results"


class UsageError(Exception):
    """Bad input from the user: printed without a traceback, exit status 2."""


def input_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the input is wrong" (exit 2), imported lazily."""
    from dragsaw.platform.experiment.errors import SpecError
    from dragsaw.platform.launch.run import LaunchError
    from dragsaw.platform.report.collect import ReportError
    from dragsaw.platform.store import StoreError
    from dragsaw.workloads.data import DatasetError

    return UsageError, SpecError, LaunchError, ReportError, StoreError, DatasetError


def store_parent() -> argparse.ArgumentParser:
    """``--store URL``: where results live."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--store", default=None, metavar="URL",
                        help=f"results URL: a folder or s3://bucket/prefix (default: {DEFAULT_STORE}, "
                             "or the spec's `store` for commands that read a spec)")
    return parent


def address_parent() -> argparse.ArgumentParser:
    """``--address ADDR``: which Ray cluster runs the trials."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--address", metavar="ADDR",
                        help="Ray cluster to run on: HOST:6379, or `auto` inside a cluster "
                             "(default: start Ray in this process)")
    return parent


def spec_parent() -> argparse.ArgumentParser:
    """A spec file and how it is changed before use: ``SPEC``, ``--set``, ``--smoke``."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("spec", metavar="SPEC", help="experiment YAML, e.g. configs/experiments/quickstart.yaml")
    parent.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a spec field (dotted path, YAML value), e.g. --set train.epochs=3; repeatable")
    parent.add_argument("--smoke", action="store_true",
                        help="apply the spec's `smoke:` overrides first: its tiny version (CI, synthetic data, CPU)")
    return parent


def store_url(args: argparse.Namespace) -> str:
    """The ``--store`` value, or the default store."""
    return args.store or DEFAULT_STORE
