"""Turn training examples into token ids with labels on the assistant turns an adapter learns.

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


def learned_spans(example: Example, tokenizer, tools: ToolsSpec, learn_turns: str = "marked") -> list[tuple[str, bool]]:
    """The conversation up to its train_turn as consecutive (text, learned) pieces.

    `marked` learns the train_turn only; `all_assistant` learns every assistant turn up to it, each
    piece cut exactly where generation would start and stop at serving time.
    """
    k = example.train_turn
    turns = [k] if learn_turns == "marked" else [
        i for i, m in enumerate(example.messages[: k + 1]) if m["role"] == "assistant"]
    pieces: list[tuple[str, bool]] = []
    done = 0
    for i in turns:
        prompt = render(tokenizer, example.messages[:i], tools, example.today, add_generation_prompt=True)
        full = render(tokenizer, example.messages[: i + 1], tools, example.today)
        if not full.startswith(prompt) or not prompt.startswith("".join(t for t, _ in pieces)):
            raise FteforgeError(f"example {example.id}: the chat template does not extend the prompt prefix")
        # The turn ends at the end-of-turn token; the newline after it belongs to the next turn.
        completion = full[len(prompt):].rstrip("\n")
        pieces += [(prompt[done:], False), (completion, True)]
        done = len(prompt) + len(completion)
    return pieces


def tokenize_examples(examples: list[Example], tokenizer, tools: ToolsSpec, max_length: int,
                      learn_turns: str = "marked") -> list[dict[str, Any]]:
    rows = []
    for ex in examples:
        ids: list[int] = []
        labels: list[int] = []
        for text, learned in learned_spans(ex, tokenizer, tools, learn_turns):
            piece = tokenizer(text, add_special_tokens=False)["input_ids"]
            ids += piece
            labels += piece if learned else [IGNORE] * len(piece)
        if len(ids) > max_length:
            raise FteforgeError(
                f"example {ex.id} is {len(ids)} tokens, over train max_length {max_length}: "
                "raise max_length in params.yaml or shorten the data"
            )
        # Rows of one group render the same system turn (its date lines are the only part that varies).
        rows.append({"input_ids": ids, "labels": labels, "length": len(ids), "group": ex.today})
    return rows
