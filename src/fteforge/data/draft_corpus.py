"""The corpus of the stream decoder's draft table (evaluation/draft.py): what the adapters learn to say.

Apart from the table itself so that the evaluation stages, which only read a built table, do not
depend on the training code that cuts the turns.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fteforge.training.data import learned_spans


def training_rows(examples: Iterable[Any], tokenizer: Any, tools: Any, context: int) -> Iterable[list[int]]:
    """Token ids of every assistant turn an adapter learns, each after the last `context` prompt tokens.

    Prompt and turn are tokenized apart, as in training and serving, so the turn's tokens are the ones
    the model generates; the prompt's tail (the assistant header) lets the table guess a reply's start.
    """
    for example in examples:
        prompt: list[int] = []
        for text, learned in learned_spans(example, tokenizer, tools, "all_assistant"):
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            if learned:
                yield prompt[-context:] + ids
            else:
                prompt = ids
