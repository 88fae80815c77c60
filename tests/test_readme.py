"""The README names only what exists: every repository path it writes in backticks is a file
or folder here, and every experiment it reports on is a shipped spec's name."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
TOP = ("platform/", "workloads/", "configs/", "docs/", "tests/", "benchmarks/", "infra/", "dragsaw/", "../")


def test_every_path_in_the_readme_exists():
    paths = {m.split("::")[0].rstrip(".,") for m in re.findall(r"`([^`\s]+)`", README) if m.startswith(TOP)}
    paths = {p for p in paths if not any(c in p for c in "<>*{")}  # patterns, not paths
    assert paths, "the README names no repository path"
    missing = sorted(p for p in paths if not (REPO / p).exists())
    assert missing == []


def test_every_experiment_the_readme_reports_on_is_shipped():
    names = {yaml.safe_load(p.read_text()).get("name") for p in (REPO / "configs").rglob("*.yaml")}
    named = set(re.findall(r"--experiment ([a-z][\w.-]*)", README))  # not placeholders (NAME, E)
    assert named and named <= names | {"quickstart", "new_dataset"}, sorted(named - names)
