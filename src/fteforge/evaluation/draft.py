"""Draft tokens for speculative greedy decoding: an n-gram table of what the adapters were trained to say.

Why: at batch 1 on a CPU a decode step reads every weight once whether it scores one token or five,
so checking a guess of four tokens costs little more than producing one. A 135M model trained on
templated replies and tool calls repeats its training text's phrasing ("Great, that's progress
already.", `{"name": "create_task", "arguments": {`), and a table of the token most often seen after
each recent context guesses most of it. The model still decides every token: the stream decoder keeps
a guessed token only where the model's own greedy choice (after the tool-call constraint) is that
token, so the text is the same with any draft, good or bad; only the number of forward passes moves.

The table is built once from the training datasets (stage `build_draft`) and never learns from the
model's output: a decoder that remembered its own answers would time a repeated prompt as a cache hit.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from fteforge.errors import FteforgeError

FORMAT = "fteforge-ngram-draft/1"
RELEASE_FILE = "draft_ngrams.json"  # its name in a release folder, where `fteforge chat` finds it
DEFAULT_DRAFT_TOKENS = 3  # params.yaml evaluate.latency.draft_tokens, and chat's default


def vocab_digest(tokenizer: Any) -> str:
    """A fingerprint of the token ids: a table built for another vocabulary guesses garbage."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode()).hexdigest()


class NgramDraft:
    """`propose(context, k)`: up to k tokens, each the one most often seen after the longest known context.

    `next` maps a context of 1..max_order token ids to the token that followed it most often in the
    corpus (ties: the one seen first). A guess needs a known context of at least `min_order` tokens:
    a wrong guess costs a row of compute, and a one-token context guesses wrong for a model that does
    not talk like the training data (the base model: p95 605 -> 734 ms with any context, 597 ms with
    three). Beyond the table, a context seen earlier in the conversation proposes what followed it
    there (copying a title or a date the user typed).
    """

    def __init__(self, next_token: dict[tuple[int, ...], int], max_order: int, vocab: str, corpus_tokens: int = 0,
                 source: str = "<memory>", min_order: int = 1):
        self.next, self.max_order, self.vocab, self.corpus_tokens = next_token, max_order, vocab, corpus_tokens
        self.source, self.min_order = source, min(min_order, max_order)

    def require_vocab(self, tokenizer: Any) -> NgramDraft:
        """Itself, when built for `tokenizer`'s token ids; otherwise a clear error."""
        if self.vocab != vocab_digest(tokenizer):
            raise FteforgeError(f"{self.source}: the draft table was built for another tokenizer (vocab_sha256 "
                                "differs); rebuild it with `dvc repro build_draft` for this model's base")
        return self

    @classmethod
    def build(cls, rows: Iterable[Sequence[int]], max_order: int, vocab: str, min_order: int = 1) -> NgramDraft:
        counts: dict[tuple[int, ...], Counter[int]] = defaultdict(Counter)
        total = 0
        for row in rows:
            row = list(row)
            total += len(row)
            for i in range(1, len(row)):
                for n in range(1, min(max_order, i) + 1):
                    counts[tuple(row[i - n:i])][row[i]] += 1
        table = {key: c.most_common(1)[0][0] for key, c in counts.items()}
        return cls(table, max_order, vocab, total, min_order=min_order)

    def propose(self, context: Sequence[int], k: int) -> list[int]:
        out: list[int] = []
        ctx = list(context[-(self.max_order + 1):])
        for _ in range(k):
            token = next((self.next[key] for n in range(min(self.max_order, len(ctx)), self.min_order - 1, -1)
                          if (key := tuple(ctx[-n:])) in self.next), None)
            if token is None:
                break
            out.append(token)
            ctx.append(token)
        if not out and k > 0:
            out = _lookup(list(context), k)
        return out

    # -- the file the `build_draft` stage writes and the release ships ---------------------------------

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "max_order": self.max_order, "min_order": self.min_order, "vocab_sha256": self.vocab,
                "corpus_tokens": self.corpus_tokens,
                "next": {" ".join(map(str, key)): token for key, token in sorted(self.next.items())}}

    def save(self, path: Path) -> None:
        from fteforge.data.records import write_text

        write_text(path, json.dumps(self.to_json(), separators=(",", ":")) + "\n")

    @classmethod
    def load(cls, path: Path | str, tokenizer: Any = None) -> NgramDraft:
        """The table at `path`; with `tokenizer`, refused unless it was built for that vocabulary."""
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
            if raw.get("format") != FORMAT:
                raise ValueError(f"format {raw.get('format')!r}, expected {FORMAT!r}")
            table = {tuple(int(t) for t in key.split()): int(token) for key, token in raw["next"].items()}
            draft = cls(table, int(raw["max_order"]), str(raw["vocab_sha256"]), int(raw.get("corpus_tokens", 0)),
                        str(path), int(raw.get("min_order", 1)))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise FteforgeError(f"{path}: not a draft table ({exc}); rebuild it with `dvc repro build_draft`") from exc
        return draft if tokenizer is None else draft.require_vocab(tokenizer)


def _lookup(context: list[int], k: int, order: int = 3) -> list[int]:
    """What followed the latest earlier occurrence of the last `order` tokens."""
    if len(context) <= order:
        return []
    key = context[-order:]
    for i in range(len(context) - order - 1, -1, -1):
        if context[i:i + order] == key:
            return context[i + order:i + order + k]
    return []
