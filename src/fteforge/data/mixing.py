"""Agentic call examples lent to the persona dataset, so both adapters learn the same calls.

The persona adapter learns its tool calls too (`learn_turns: all_assistant`), but only from the persona
scenarios: a narrow set of requests next to the agentic dataset's. Where the two task vectors encode
different calls, TIES keeps the sign of the larger one (the persona's) and drops the other, and the
merge loses argument detail. A share of the agentic dataset's own call turns in the persona data points
both updates the same way on calls. A GPU probe (bench/results/gpu/merge_probe_h100.json) measured
the direction: with a third of the agentic examples mixed in, a LoRA-space TIES merge went from
persona 6.82 / agentic 0.457 / combined 0.457 to 7.96 / 0.500 / 0.580.
"""

from __future__ import annotations

from collections.abc import Sequence

from fteforge.data.records import Example


def pick_evenly(items: Sequence, share: float) -> list:
    """round(share * n) items spread evenly over the sequence (every category of a sorted file)."""
    n = len(items)
    k = round(share * n)
    return [items[(i * n) // k] for i in range(k)] if k else []


def lend_call_examples(agentic: Sequence[Example], share: float, adapter: str) -> list[Example]:
    """A share of the agentic examples, relabelled for `adapter`; ids keep their origin."""
    return [e.model_copy(update={"adapter": adapter}) for e in pick_evenly(agentic, share)]


def lent_card_section(lent: Sequence[Example], share: float, source: str) -> str:
    """The dataset card's account of the lent examples (empty when none were lent)."""
    if not lent:
        return ""
    return (f"\n## Lent call examples\n\n- {len(lent)} tool-call examples from `{source}` (share {share:g}), "
            f"appended after the persona examples so both adapters learn the same calls; they keep their `agentic-` ids\n")
