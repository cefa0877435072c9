"""Turn training examples into token ids with labels on the one assistant turn an adapter learns.

Tokenizing prompt and completion separately matches inference exactly: at serving time the prompt is
tokenized up to `<|im_start|>assistant\n` and the model generates the rest, so the boundary tokens
seen in training are the ones seen in use.
"""

from __future__ import annotations

from typing import Any

from fteforge.agent import render
from fteforge.data.records import Example
from fteforge.errors import FteforgeError
from fteforge.specs import ToolsSpec

IGNORE = -100


def prompt_and_completion(example: Example, tokenizer, tools: ToolsSpec) -> tuple[str, str]:
    """Text before the trained turn (ending with the assistant header) and the trained turn itself."""
    k = example.train_turn
    prompt = render(tokenizer, example.messages[:k], tools, example.today, add_generation_prompt=True)
    full = render(tokenizer, example.messages[: k + 1], tools, example.today)
    if not full.startswith(prompt):
        raise FteforgeError(f"example {example.id}: the chat template does not extend the prompt prefix")
    # The turn ends at the end-of-turn token; the newline after it belongs to the next turn.
    return prompt, full[len(prompt):].rstrip("\n")


def tokenize_examples(examples: list[Example], tokenizer, tools: ToolsSpec, max_length: int) -> list[dict[str, Any]]:
    rows = []
    for ex in examples:
        prompt, completion = prompt_and_completion(ex, tokenizer, tools)
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        c = tokenizer(completion, add_special_tokens=False)["input_ids"]
        if len(p) + len(c) > max_length:
            raise FteforgeError(
                f"example {ex.id} is {len(p) + len(c)} tokens, over train max_length {max_length}: "
                "raise max_length in params.yaml or shorten the data"
            )
        rows.append({"input_ids": p + c, "labels": [IGNORE] * len(p) + c, "length": len(p) + len(c)})
    return rows
