"""Byte-stable adapter_config.json.

PEFT keeps `target_modules` (and a few other fields) as Python sets and writes them with `list(set)`,
so their order follows the process's string-hash seed: two bitwise-identical trainings produced
adapter folders with different md5s, and every merge that hashes its sources inherited the
difference. Rewriting the file with sets sorted makes the folder a function of the weights and the
recipe alone.
"""

from __future__ import annotations

import json
from pathlib import Path

ADAPTER_CONFIG = "adapter_config.json"

# Fields PEFT's LoraConfig may hold as sets. Lists elsewhere in the file (layers_to_transform,
# modules_to_save) keep their order: it can carry meaning.
SET_FIELDS = ("target_modules", "exclude_modules", "target_parameters")


def canonicalize_adapter_config(folder: Path | str) -> dict:
    """Rewrite `folder`/adapter_config.json with set-valued fields sorted; return the config."""
    path = Path(folder) / ADAPTER_CONFIG
    config = json.loads(path.read_text())
    for field in SET_FIELDS:
        value = config.get(field)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            config[field] = sorted(value)
    path.write_text(json.dumps(config, indent=2, sort_keys=True))
    return config
