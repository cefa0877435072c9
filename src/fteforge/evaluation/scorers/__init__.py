"""Evaluation scorers: plugins that turn one generated reply for one EvalCase into a scored record.

Registered (`SCORERS.get(name)`):

* ``tool_call``: the call in an assistant turn against the case's expected tool and argument regexes
  (JSON validity, schema validity, hallucinated tools, no-call cases).
* ``persona``: the PersonaScorer's /10 total, traits and boundaries for one reply, plus the case's
  ``not_expected`` labels and ``expected_traits``.
* ``combined``: the agent loop: the tool score of the call turn and the persona score of the final reply
  written after the REAL tool result, weighted (tool 0.6, persona 0.4 by default).
* ``style_probe``: a learned tone probe (logistic regression on sentence embeddings), trained on
  persona vs neutral replies and measured on held-out topics.

`validation.validate_persona_scorer` measures the persona scorer against a hand-labelled set.
"""

from __future__ import annotations

from fteforge.registry import Registry

SCORERS = Registry("scorer")

from fteforge.evaluation.scorers import combined, persona, style_probe, tool_call  # noqa: E402,F401  (registers)
