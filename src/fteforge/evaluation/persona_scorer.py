"""Rule-based persona scorer: how well one reply shows a PersonaSpec's traits, /10.

Used by the dataset quality filter (examples below `quality_filter_min` are dropped) and by
evaluation, so it is deterministic, fast (compiled regexes plus VADER) and takes every signal from
the spec itself; the only fixed knowledge here is which response-pattern step carries which trait.

Scoring, in order (each trait is 0, 1 or 2; `total` is always the sum of the trait scores):

1. Empty or too short (< MIN_WORDS words): every trait 0. A two-word "Task created." shows no
   persona at all, whatever it matches.
2. Per trait: 0 if any of its `violation_signals` matches (a violation outweighs any signal);
   2 if one of its `signals` matches; otherwise 1 ("weakly present") when the reply follows the
   whole ACKNOWLEDGE/DELIVER/PROPEL pattern, since the pattern itself carries a little of every
   trait, and 0 when it does not (no evidence either way means the trait is absent).
3. Each missing pattern step takes 1 off the traits it carries (STEP_TRAITS): ACKNOWLEDGE carries
   encouraging and professional_friendly (recognising the user is the warmth), DELIVER carries
   productivity_focused, PROPEL carries action_oriented. A reply can say "next" in passing and still
   not end by moving the user on; the step check catches that.
4. Each avoided phrase or avoided pattern takes 1 off professional_friendly: the avoided vocabulary
   ("As an AI", "You should", "!!") is all about tone, not content, so it lands on the tone trait
   rather than on the total (which keeps `total == sum(traits)`).
5. Any boundary violation, or matching the user's negativity (user's VADER compound below
   USER_NEGATIVE while the reply's is below REPLY_NEGATIVE), caps the total at VIOLATION_CAP,
   well under the 6/10 filter, so a violating reply can never pass. The cap scales every trait by
   the same factor and rounds down to 0.5 steps: the trait profile stays readable in failure
   reports and the total stays the trait sum. This is the only source of half points.

Preferred vocabulary is reported (`preferred_hits`) but does not add points: the preferred phrases
overlap the trait signals, and counting them twice would reward stock phrases over real persona.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache

from fteforge.specs.persona import PersonaSpec

MIN_WORDS = 3
USER_NEGATIVE = -0.3  # user's VADER compound below this counts as a negative message
REPLY_NEGATIVE = -0.05  # ...and a reply below this then matches the user's negativity
VIOLATION_CAP = 3.0
NEGATIVITY = "matches_negativity"
# Which traits each response-pattern step carries (trait names absent from a spec are ignored).
STEP_TRAITS: dict[str, tuple[str, ...]] = {
    "ACKNOWLEDGE": ("encouraging", "professional_friendly"),
    "DELIVER": ("productivity_focused",),
    "PROPEL": ("action_oriented",),
}
TONE_TRAIT = "professional_friendly"  # takes the avoided-vocabulary deductions
_WORD = re.compile(r"\b\w+\b")
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})


@dataclass
class PersonaScore:
    total: float
    traits: dict[str, float]
    pattern: dict[str, bool]
    preferred_hits: list[str] = field(default_factory=list)
    avoided_hits: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def passed_boundaries(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict:
        return asdict(self)


def _compile(patterns: list[str]) -> list[re.Pattern[str]]:
    return [re.compile(p, re.IGNORECASE) for p in patterns]


def _phrase(text: str) -> re.Pattern[str]:
    """A vocabulary phrase as a whole-word, case-insensitive regex; trailing !?. are optional."""
    core = text.translate(_QUOTES).strip().rstrip("!?.").strip()
    return re.compile(r"(?<!\w)" + re.escape(core) + r"(?!\w)", re.IGNORECASE)


def _first(patterns: list[re.Pattern[str]], text: str) -> str | None:
    for p in patterns:
        m = p.search(text)
        if m:
            return m.group(0)
    return None


@lru_cache(maxsize=1)
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def compound(text: str) -> float:
    """VADER compound sentiment of `text`, -1 (negative) to 1 (positive)."""
    return float(_vader().polarity_scores(text)["compound"])


class PersonaScorer:
    """Scores replies against one PersonaSpec; regexes are compiled once here."""

    def __init__(self, spec: PersonaSpec):
        self.spec = spec
        self.traits = [(t.name, _compile(t.signals), _compile(t.violation_signals)) for t in spec.traits]
        self.steps = [(s.name, _compile(s.signals)) for s in spec.response_pattern]
        self.boundaries = [(b.name, _compile(b.signals)) for b in spec.boundaries]
        self.preferred = [(p, _phrase(p)) for p in spec.vocabulary.preferred]
        # Avoided phrases report the spec's phrase; avoided patterns report the text they matched.
        self.avoided = [(a, _phrase(a)) for a in spec.vocabulary.avoided]
        self.avoided += [(None, re.compile(p, re.IGNORECASE)) for p in spec.vocabulary.avoided_patterns]

    def score(self, reply: str, user: str | None = None) -> PersonaScore:
        text = (reply or "").translate(_QUOTES).strip()
        reasons: list[str] = []
        pattern = {name: bool(text) and _first(pats, text) is not None for name, pats in self.steps}
        preferred = [p for p, rx in self.preferred if rx.search(text)]
        avoided: list[str] = []
        for phrase, rx in self.avoided:
            m = rx.search(text)
            if m and (phrase or m.group(0)) not in avoided:
                avoided.append(phrase or m.group(0))
        violations: list[str] = []
        for name, pats in self.boundaries:
            hit = _first(pats, text)
            if hit is not None:
                violations.append(name)
                reasons.append(f"boundary {name}: {hit!r}")
        if user and text and compound(user.translate(_QUOTES)) < USER_NEGATIVE:
            c = compound(text)
            if c < REPLY_NEGATIVE:
                violations.append(NEGATIVITY)
                reasons.append(f"matches the user's negativity (reply sentiment {c:+.2f})")

        traits: dict[str, float] = {}
        if len(_WORD.findall(text)) < MIN_WORDS:
            traits = {name: 0.0 for name, _, _ in self.traits}
            reasons.append("empty or too short" if not text else f"too short (< {MIN_WORDS} words)")
        else:
            full_pattern = all(pattern.values())
            for name, signals, bad in self.traits:
                hit = _first(bad, text)
                if hit is not None:
                    traits[name] = 0.0
                    reasons.append(f"{name}: violation {hit!r}")
                elif _first(signals, text) is not None:
                    traits[name] = 2.0
                elif full_pattern:
                    traits[name] = 1.0
                    reasons.append(f"{name}: no signal, only carried by the response pattern")
                else:
                    traits[name] = 0.0
                    reasons.append(f"{name}: no signal")
            for step, present in pattern.items():
                if present:
                    continue
                affected = [t for t in STEP_TRAITS.get(step, ()) if traits.get(t, 0.0) > 0]
                for t in affected:
                    traits[t] -= 1.0
                reasons.append(f"missing {step} step" + (f" (-1 {', '.join(affected)})" if affected else ""))
            for a in avoided:
                cut = traits.get(TONE_TRAIT, 0.0) > 0
                if cut:
                    traits[TONE_TRAIT] -= 1.0
                reasons.append(f"avoided vocabulary {a!r}" + (f" (-1 {TONE_TRAIT})" if cut else ""))

        total = sum(traits.values())
        if violations and total > VIOLATION_CAP:
            factor = VIOLATION_CAP / total
            traits = {k: math.floor(v * factor * 2 + 1e-9) / 2 for k, v in traits.items()}
            reasons.append(f"violation caps the total at {VIOLATION_CAP:g}")
            total = sum(traits.values())
        return PersonaScore(
            total=total,
            traits=traits,
            pattern=pattern,
            preferred_hits=preferred,
            avoided_hits=avoided,
            violations=violations,
            reasons=reasons,
        )
