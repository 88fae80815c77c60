"""One canonical JSON text and config hash: equal data, equal text, whatever the key order."""

from __future__ import annotations

import pytest

from dragsaw.workloads.canonical import canonical_json, config_hash, digest
from dragsaw.workloads.recipe import TrialConfig

CONFIG = {"data": {"name": "isic2016", "root": "/data/isic2016"}, "model": {"name": "unet", "width": 0.5},
          "plugins": {"uafr": {"layers": ["encoder.2"], "num_maps": 2}, "pdcr": {"sites": [{"layers": ["encoder.2"], "n": 8}]}},
          "train": {"epochs": 2, "lr": 0.01}}


def _reversed(value):
    """The same data with every mapping's keys in reverse order."""
    if isinstance(value, dict):
        return {k: _reversed(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reversed(v) for v in value]
    return value


def test_canonical_text_is_sorted_compact_and_ascii():
    assert canonical_json({"b": 1, "a": {"d": [1, 2], "c": "é"}}) == '{"a":{"c":"\\u00e9","d":[1,2]},"b":1}'
    assert canonical_json(_reversed(CONFIG)) == canonical_json(CONFIG)
    assert digest(CONFIG, 8) == digest(_reversed(CONFIG), 8) and len(digest(CONFIG, 8)) == 8
    with pytest.raises(ValueError, match="`1 <= length <= 64` must hold, but got length=65"):
        digest(CONFIG, 65)


def test_config_hash_names_the_config_not_its_spelling():
    """A config written in another key order, read back from the store as JSON, or validated
    into a TrialConfig: one hash. A changed value: another."""
    model = TrialConfig.model_validate(CONFIG)
    stored = model.model_dump(mode="json")
    assert config_hash(model) == config_hash(TrialConfig.model_validate(_reversed(CONFIG)))
    assert config_hash(model) == config_hash(stored) == config_hash(_reversed(stored))
    changed = TrialConfig.model_validate({**CONFIG, "seed": 1})
    assert config_hash(changed) != config_hash(model)


def test_no_plugins_written_as_empty_mapping_or_null_is_one_trial():
    bare = {k: v for k, v in CONFIG.items() if k != "plugins"}
    empty, null = TrialConfig.model_validate({**bare, "plugins": {}}), TrialConfig.model_validate(bare)
    assert empty.plugins is None and config_hash(empty) == config_hash(null)
