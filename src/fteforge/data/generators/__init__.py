"""Persona data generators: plugins that write TaskMaster's side of a conversation.

A generator is a class registered in GENERATORS with a docstring (shown by `fteforge list`), a
pydantic `Params` model (unknown keys are errors) and one method:

    generate(spec, agentic_spec, tools, category, scenario, n, rng) -> list[dict]

which returns up to `n` raw candidates for one scenario of the persona's scenario_matrix:

    {"user": str, "call": (tool_name, args) | None, "result": dict | None, "reply": str,
     "today": "YYYY-MM-DD", "setup_tasks": [...], "template": str (optional, for audits)}

`call`/`result` are set for task scenarios: the conversation is the agent loop (user -> tool call ->
REAL tool result -> reply), and the reply must agree with the result. `build_persona_dataset`
re-executes every call against a fresh Task API and rejects a candidate whose result differs, so a
generator can never put an invented result into training data. Scoring, the quality filter and the
balancing across scenarios all happen in the builder, not here: a generator only proposes.

Built in: `template` (offline, deterministic, the default) and `openai_compatible` (a teacher model
behind an OpenAI-style /chat/completions endpoint; only used when params.yaml configures it).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from fteforge.errors import FteforgeError
from fteforge.registry import Registry

GENERATORS = Registry("persona generator")
PARAMS_KEY = "persona_data.generator_params"


def parse_params(model: type[BaseModel], params: dict[str, Any] | None, generator: str) -> BaseModel:
    """Validate a generator's params; errors name the params.yaml key and the field to fix."""
    try:
        return model.model_validate(params or {})
    except ValidationError as err:
        lines = []
        for e in err.errors():
            field = ".".join(str(p) for p in e["loc"]) or "<params>"
            lines.append(f"{PARAMS_KEY}.{field}: {e['msg']}")
        known = ", ".join(model.model_fields) or "(none)"
        raise FteforgeError(
            f"bad params for persona generator {generator!r}:\n  " + "\n  ".join(lines)
            + f"\n  (fields of {generator!r}: {known})"
        ) from None


def make_generator(name: str, params: dict[str, Any] | None = None) -> Any:
    """An instance of the generator registered as `name`, with validated params."""
    return GENERATORS.get(name)(params)


from fteforge.data.generators import openai_compatible, template  # noqa: E402,F401  (registers plugins)
