"""One canonical JSON text for configs and the hashes taken over it.

Everything that names a config by a hash uses these functions (trial ids and spec hashes on
the platform, study variant names, the config hash a trial checkpoint carries, the report
that rebuilds a trial from its checkpoint), so two places can never disagree about what
"the same config" means: equal data gives equal text whatever the key order of its
mappings, and the text never depends on whitespace or on non-ASCII escaping.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys, no whitespace and ASCII escapes: equal data, equal text.

    obj: JSON types only (dicts, lists, str, int, float, bool, None; anything else is a
    TypeError); a pydantic model is dumped in JSON mode first.
    """
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def digest(obj: Any, length: int = 64) -> str:
    """The first ``length`` hex digits (1-64) of sha256 over ``canonical_json(obj)``."""
    if not 1 <= length <= 64:
        raise ValueError(f"`1 <= length <= 64` must hold, but got length={length}")
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]


def config_hash(config: BaseModel | dict[str, Any]) -> str:
    """16 hex digits naming a trial config: a validated model (e.g. ``TrialConfig``) or the
    same config as a JSON dict (its ``model_dump(mode="json")``) give the same hash."""
    return digest(config, 16)


__all__ = ["canonical_json", "config_hash", "digest"]
