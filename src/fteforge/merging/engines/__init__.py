"""Merge engines, by name: `mergekit` (full-weight merge of base+adapter models) and `peft` (LoRA space).

Importing this package registers both; neither imports torch, mergekit or PEFT until it runs.
"""

from __future__ import annotations

from fteforge.registry import Registry

MERGE_ENGINES = Registry("merge engine")

from fteforge.merging.engines import mergekit_engine, peft_engine  # noqa: E402,F401  (registers them)
