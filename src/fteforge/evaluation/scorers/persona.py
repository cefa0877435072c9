"""The persona scorer for evaluation cases: PersonaScorer's /10 plus the case's expectations."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from fteforge.data.records import EvalCase
from fteforge.errors import FteforgeError
from fteforge.evaluation.persona_scorer import NEGATIVITY, PersonaScorer
from fteforge.evaluation.scorers import SCORERS
from fteforge.specs.persona import PersonaSpec

GENERIC_AI = "generic_ai_phrases"  # the not_expected label for the spec's avoided vocabulary
TRAIT_SHOWN = 1.5  # a trait scoring at least this (/2) counts as shown


@dataclass
class PersonaCaseScore:
    """One reply's persona score against its case: `score` is total / 10, `passed` the per-case verdict."""

    case_id: str | None
    total: float
    score: float
    traits: dict[str, float]
    pattern: dict[str, bool]
    violations: list[str]
    avoided_hits: list[str]
    not_expected_hits: list[str] = field(default_factory=list)
    expected_traits: list[str] = field(default_factory=list)
    expected_traits_shown: float | None = None
    passed: bool = False
    reason: str = ""
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@SCORERS.register("persona")
class PersonaCaseScorer:
    """PersonaScorer /10 per reply; passes with total >= min_total (default the spec's quality_filter_min),
    no boundary violation and none of the case's not_expected labels triggered. Reports the share of the
    case's expected traits scoring >= 1.5/2."""

    def __init__(self, spec: PersonaSpec, min_total: float | None = None):
        self.spec = spec
        self.scorer = PersonaScorer(spec)
        self.min_total = spec.quality_filter_min if min_total is None else float(min_total)
        self.trait_names = {t.name for t in spec.traits}
        boundaries = {b.name for b in spec.boundaries}
        # label -> the violation names that trigger it: `never_X` boundaries, plus VADER negativity matching
        self.label_violations: dict[str, set[str]] = {
            name.removeprefix("never_"): {name} for name in boundaries
        }
        self.label_violations.setdefault(NEGATIVITY, set()).add(NEGATIVITY)

    @property
    def labels(self) -> list[str]:
        return sorted([*self.label_violations, GENERIC_AI])

    def triggered(self, labels: list[str], violations: list[str], avoided_hits: list[str]) -> list[str]:
        """Which of `labels` the scored reply triggered; an unknown label is an error, not a silent pass."""
        unknown = [lab for lab in labels if lab != GENERIC_AI and lab not in self.label_violations]
        if unknown:
            raise FteforgeError(f"not_expected labels {unknown} are unknown; known labels: {self.labels}")
        hits = []
        for lab in labels:
            if lab == GENERIC_AI:
                if avoided_hits:
                    hits.append(lab)
            elif self.label_violations[lab] & set(violations):
                hits.append(lab)
        return hits

    def score(self, case: EvalCase | None, reply: str, user: str | None = None) -> PersonaCaseScore:
        """Score `reply`; `user` defaults to the case's user text (needed for negativity matching)."""
        if user is None and case is not None:
            user = case.user_text
        s = self.scorer.score(reply, user)
        not_expected = case.not_expected if case is not None else []
        hits = self.triggered(not_expected, s.violations, s.avoided_hits)
        wanted = [t for t in (case.expected_traits if case is not None else []) if t in self.trait_names]
        shown = (sum(s.traits.get(t, 0.0) >= TRAIT_SHOWN for t in wanted) / len(wanted)) if wanted else None

        problems = []
        if s.total < self.min_total:
            problems.append(f"total {s.total:g} < {self.min_total:g}")
        if s.violations:
            problems.append("violations: " + ", ".join(s.violations))
        extra = [h for h in hits if h == GENERIC_AI]
        if extra:
            problems.append("generic AI phrases: " + ", ".join(repr(a) for a in s.avoided_hits))
        if problems and s.reasons:
            problems.append("(" + "; ".join(s.reasons) + ")")
        return PersonaCaseScore(
            case_id=case.id if case is not None else None, total=s.total, score=s.total / 10, traits=s.traits,
            pattern=s.pattern, violations=s.violations, avoided_hits=s.avoided_hits, not_expected_hits=hits,
            expected_traits=wanted, expected_traits_shown=shown,
            passed=s.total >= self.min_total and not s.violations and not hits,
            reason="; ".join(problems), reasons=s.reasons,
        )
