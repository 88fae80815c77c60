"""Where the results came from: the saved spec and its hash, code commits, package versions,
hardware, nodes, and when the trials ran, as stored with the experiment and its trials."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import yaml

from dragsaw.platform.report.collect import Experiment
from dragsaw.platform.report.document import Cell, Code, Table, Text


def _counted(values) -> str:
    counts = Counter(v for v in values if v not in (None, ""))
    if not counts:
        return "—"
    return "; ".join(f"{v} ({n} attempts)" if len(counts) > 1 else str(v) for v, n in counts.most_common())


def _time(value) -> str:
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def provenance_blocks(exp: Experiment) -> list:
    """A table of provenance facts and the spec as YAML."""
    attempts, record = exp.attempts, exp.record or {}
    status = Counter(a["status"] for a in attempts)
    versions = Counter(json.dumps(json.loads(a["versions_json"]), sort_keys=True) for a in attempts)
    started = min((a["started_at"] for a in attempts), default=None)
    ended = max((a["ended_at"] for a in attempts), default=None)
    hours = sum(a["duration_s"] for a in attempts) / 3600
    facts = [
        ("experiment", exp.name),
        ("store", exp.store.url),
        ("spec hash (saved record)", record.get("spec_hash") or "—"),
        ("spec hash (trials)", _counted(a["spec_hash"] for a in attempts)),
        ("git commit at launch", record.get("git_commit") or "—"),
        ("git commit (trials)", _counted(a["git_commit"] for a in attempts)),
        ("versions at launch", _versions(record.get("versions"))),
        ("versions (trials)", "; ".join(_versions(json.loads(v)) + (f" ({n} attempts)" if len(versions) > 1 else "")
                                        for v, n in versions.most_common()) or "—"),
        ("hardware", _counted(a["hardware"] for a in attempts)),
        ("nodes", _counted(a["node"] for a in attempts)),
        ("first trial started", _time(started)),
        ("last trial ended", _time(ended)),
        ("trial time, all attempts", f"{hours:.2f} h"),
        ("attempts", ", ".join(f"{n} {s}" for s, n in sorted(status.items())) or "none"),
        ("completed trials", str(len(exp.trials))),
        ("model selection", _selection(exp)),
    ]
    blocks: list = [Table(["", "value"], [[Cell(k), Cell(v)] for k, v in facts], "Provenance", numeric=False)]
    failed = [a for a in attempts if a["status"] == "failed" and a.get("error")]
    if failed:
        last = failed[-1]
        blocks.append(Text(f"Last failure ({last['trial_id']} attempt {last['attempt']}): "
                           f"{last['error'].strip().splitlines()[-1][:300]}"))
    if exp.record is None:
        blocks.append(Text(f"No saved spec: the store has no _experiments/{exp.name}/spec.json "
                           "(results written without `dragsaw run`)."))
    else:
        blocks.append(Text("The experiment's spec, as saved by `dragsaw run` (defaults written out):"))
        blocks.append(Code(yaml.safe_dump(exp.spec, sort_keys=False, allow_unicode=True), "yaml"))
    return blocks


def _selection(exp: Experiment) -> str:
    """Which epoch's weights the completed trials were evaluated with (their configs'
    ``eval.selection``): "last epoch", or "best validation Dice (epoch k, val fraction f)"
    with the selected epochs from the trials' metrics; counted when trials differ."""
    metrics = {(a["trial_id"], a["attempt"]): a.get("metrics_json") for a in exp.attempts}
    groups: dict[str, list] = {}
    for t in exp.trials:
        ev = t.config.get("eval") or {}
        if ev.get("selection", "last") != "best_val":
            groups.setdefault("last epoch", [])
            groups["last epoch"].append(None)
            continue
        key = f"val fraction {float(ev.get('val_fraction', 0.1)):g}"
        epoch = json.loads(metrics.get((t.trial_id, t.attempt)) or "{}").get("selected_epoch")
        groups.setdefault(key, []).append(epoch)
    parts = []
    for key, epochs in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):  # most trials first
        n = f" ({len(epochs)} trial{'s' if len(epochs) > 1 else ''})" if len(groups) > 1 else ""
        if key == "last epoch":
            parts.append(key + n)
            continue
        shown = sorted({e for e in epochs if e is not None})
        text = ", ".join(map(str, shown[:10])) + (", ..." if len(shown) > 10 else "") or "?"
        parts.append(f"best validation Dice (epoch{'s' if len(shown) > 1 else ''} {text}, {key}){n}")
    return "; ".join(parts) or "—"


def _versions(versions) -> str:
    if not versions:
        return "—"
    return ", ".join(f"{k} {v}" for k, v in versions.items())


__all__ = ["provenance_blocks"]
