"""The combined scorer: the whole agent loop, tool call first, then the reply after the real result."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from fteforge.data.records import EvalCase
from fteforge.errors import FteforgeError
from fteforge.evaluation.scorers import SCORERS
from fteforge.evaluation.scorers.persona import PersonaCaseScore, PersonaCaseScorer
from fteforge.evaluation.scorers.tool_call import ToolCallScore, ToolCallScorer
from fteforge.specs.persona import PersonaSpec
from fteforge.specs.tools import ToolsSpec
from fteforge.toolformat import parse_reply


@dataclass
class CombinedScore:
    case_id: str
    score: float
    passed: bool
    tool: ToolCallScore
    persona: PersonaCaseScore
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@SCORERS.register("combined")
class CombinedScorer:
    """score = (tool_weight * tool score + persona_weight * persona total/10) / (tool_weight + persona_weight),
    the persona part on the FINAL reply written after the real tool result; passes when both parts pass.
    Defaults tool 0.6, persona 0.4."""

    def __init__(self, tools: ToolsSpec, persona_spec: PersonaSpec, tool_weight: float = 0.6,
                 persona_weight: float = 0.4, min_total: float | None = None):
        if tool_weight < 0 or persona_weight < 0 or tool_weight + persona_weight <= 0:
            raise FteforgeError(
                f"combined scorer weights must be >= 0 with a positive sum, got tool_weight={tool_weight}, "
                f"persona_weight={persona_weight}"
            )
        self.tool_weight, self.persona_weight = float(tool_weight), float(persona_weight)
        self.tools = ToolCallScorer(tools)
        self.persona = PersonaCaseScorer(persona_spec, min_total=min_total)

    def score(self, case: EvalCase, call_turn: str, final_reply: str | None) -> CombinedScore:
        """`call_turn`: the model's first assistant turn; `final_reply`: its turn after the tool result, or
        None when the loop ended at the first turn (no call made), whose prose is then the final reply."""
        tool = self.tools.score(case, call_turn)
        reply = final_reply if final_reply is not None else parse_reply(call_turn).text
        persona = self.persona.score(case, reply)
        total = (self.tool_weight * tool.score + self.persona_weight * persona.score) / (
            self.tool_weight + self.persona_weight)
        reasons = []
        if not tool.passed:
            reasons.append(f"tool: {tool.reason}")
        if not persona.passed:
            reasons.append(f"persona: {persona.reason}")
        return CombinedScore(case_id=case.id, score=total, passed=tool.passed and persona.passed, tool=tool,
                             persona=persona, reason="; ".join(reasons))
