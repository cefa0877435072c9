"""Leakage check: no evaluation input may equal or nearly equal a training input.

Near duplicates are measured as Jaccard similarity of character 4-gram sets of the normalised
text: robust to small edits (punctuation, casing, one swapped word) that exact matching misses, and
cheap enough to compare every eval case with every training example.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

_PUNCT = re.compile(r"[^\w\s]")
_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    return _SPACE.sub(" ", _PUNCT.sub(" ", text.lower())).strip()


def shingles(text: str, n: int = 4) -> frozenset[str]:
    t = f" {normalize(text)} "
    return frozenset(t[i : i + n] for i in range(max(1, len(t) - n + 1)))


@dataclass(frozen=True)
class Leak:
    eval_id: str
    train_id: str
    kind: str  # "exact" or "near"
    similarity: float
    eval_text: str
    train_text: str

    def to_dict(self) -> dict:
        return asdict(self)


def find_leaks(
    eval_texts: list[tuple[str, str]], train_texts: list[tuple[str, str]], threshold: float = 0.8
) -> list[Leak]:
    """Every (eval, train) pair that is identical after normalisation or at least `threshold` similar."""
    exact: dict[str, tuple[str, str]] = {}
    train_sh = []
    for tid, text in train_texts:
        exact.setdefault(normalize(text), (tid, text))
        train_sh.append((tid, text, shingles(text)))
    leaks = []
    for eid, text in eval_texts:
        norm = normalize(text)
        if norm in exact:
            tid, ttext = exact[norm]
            leaks.append(Leak(eid, tid, "exact", 1.0, text, ttext))
            continue
        sh = shingles(text)
        best = None
        for tid, ttext, tsh in train_sh:
            sim = len(sh & tsh) / len(sh | tsh)
            if sim >= threshold and (best is None or sim > best.similarity):
                best = Leak(eid, tid, "near", round(sim, 3), text, ttext)
        if best:
            leaks.append(best)
    return leaks
