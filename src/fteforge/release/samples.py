"""examples/sample_interactions.jsonl: what the released model really does on a fixed prompt set.

Each prompt is played through the same agent loop the evaluation uses (the call validated and run
against a Task API seeded with the prompt's tasks, the result fed back, the reply generated), so the
examples show tool calls and results as a user of the release will see them. Greedy decoding with a
fixed date and thread count makes the file the same on every rebuild.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fteforge.agent import today_label
from fteforge.data.records import EvalCase
from fteforge.specs import SpecSet


def sample_interactions(model_dir: Path, specs: SpecSet, prompts: list[Any], *, today: str, max_new_tokens: int,
                        threads: int, base_dir: Path | None = None,
                        constrain_tool_calls: bool = True, serving: str = "fp32") -> list[dict[str, Any]]:
    """`constrain_tool_calls`, `serving`: decode as the released evaluation did (toolgrammar,
    evaluation.serving)."""
    import torch

    from fteforge.evaluation.generation import tool_call_constraint
    from fteforge.evaluation.runner import load_model, run_agent_loop
    from fteforge.evaluation.serving import serve_as
    from fteforge.evaluation.shared_prefix import PrefixCachedGenerator

    torch.set_num_threads(threads)
    loaded = load_model(model_dir, base_dir, "cpu")
    serve_as(loaded.model, serving)
    cases = [EvalCase(id=f"sample-{i:02d}", kind="combined", input=p.user, setup_tasks=p.setup_tasks, today=today)
             for i, p in enumerate(prompts, 1)]
    constraint = tool_call_constraint(loaded.model, loaded.tokenizer, specs.tools) if constrain_tool_calls else None
    generator = PrefixCachedGenerator(loaded.model, loaded.tokenizer, batch_size=len(cases), constraint=constraint)
    turns = run_agent_loop(cases, generator, loaded.tokenizer, specs, max_new_tokens)
    return [{"id": t.case.id, "today": today_label(today), "setup_tasks": t.case.setup_tasks, "user": t.case.input,
             "assistant_turn": t.first_turn, "tool_call": t.call, "tool_result": t.tool_result,
             "reply": t.final_reply if t.call is not None else t.first_turn}
            for t in turns]
