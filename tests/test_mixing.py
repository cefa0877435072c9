"""Call examples lent from the agentic dataset to the persona dataset (persona_data.agentic_call_share)."""

from __future__ import annotations

from fteforge.data.mixing import lend_call_examples, lent_card_section, pick_evenly
from fteforge.data.records import Example


def _example(i: int, category: str) -> Example:
    return Example(id=f"agentic-{category}-{i:04d}", adapter="task_api_agentic", category=category, scenario="s",
                   today="2026-11-23", train_turn=2,
                   messages=[{"role": "system", "content": "sys"}, {"role": "user", "content": f"do {i}"},
                             {"role": "assistant", "content": "", "tool_calls": []}])


def test_pick_evenly_spreads_over_a_sorted_file():
    items = [f"create-{i}" for i in range(30)] + [f"delete-{i}" for i in range(30)] + [f"list-{i}" for i in range(30)]
    picked = pick_evenly(items, 1 / 3)
    assert len(picked) == 30 and picked == items[::3]
    assert {p.split("-")[0] for p in picked} == {"create", "delete", "list"}
    assert pick_evenly(items, 0.0) == [] and pick_evenly(items, 1.0) == items
    assert len(pick_evenly(items[:7], 0.5)) == 4  # round(3.5) under Python's banker's rounding


def test_lent_examples_are_relabelled_but_keep_their_origin():
    agentic = [_example(i, c) for c in ("create", "no_call") for i in range(6)]
    lent = lend_call_examples(agentic, 0.5, "task_api_persona")
    assert len(lent) == 6 and {e.adapter for e in lent} == {"task_api_persona"}
    assert all(e.id.startswith("agentic-") for e in lent) and {e.category for e in lent} == {"create", "no_call"}
    assert all(a.adapter == "task_api_agentic" for a in agentic)  # copies: the agentic dataset is untouched


def test_the_card_accounts_for_the_lent_examples():
    agentic = [_example(i, c) for i, c in enumerate(["create", "list", "no_call", "update"])]
    lent = lend_call_examples(agentic, 0.5, "task_api_persona")
    section = lent_card_section(lent, 0.5, "data/agentic/train.jsonl")
    assert "## Lent call examples" in section and "2 tool-call examples from `data/agentic/train.jsonl` (share 0.5)" in section
    assert lent_card_section([], 0.0, "data/agentic/train.jsonl") == ""
