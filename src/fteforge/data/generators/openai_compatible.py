"""A teacher model behind an OpenAI-compatible /chat/completions endpoint writes TaskMaster's replies.

Optional: used only when params.yaml sets `persona_data.generator: openai_compatible` with
`generator_params.base_url` (a vLLM/llama.cpp/Ollama server or a hosted API). The scenes are the
template generator's (train-pool entities, a seeded Task API, the real tool result), so the teacher
only writes the final reply and can never invent a tool result; the builder scores and filters its
replies exactly like the template ones. For a scenario the templates do not know, the teacher writes
the user message too (as JSON), which is how a new scenario_matrix category can be covered without
writing templates.

The prompt is built from the PersonaSpec (identity, traits with what they look like and what breaks
them, vocabulary, the ACKNOWLEDGE -> DELIVER -> PROPEL pattern, boundaries) plus the scenario and,
for task scenarios, the real result. Only `urllib.request` is used: no client library to install.
Any failure (unreachable endpoint, HTTP error, a body that is not the expected JSON) is an
FteforgeError naming the base_url and the params key to fix.
"""

from __future__ import annotations

import json
import os
import random
import urllib.error
import urllib.request
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fteforge.data.generators import GENERATORS, PARAMS_KEY, parse_params
from fteforge.data.generators.template import (
    NOCALL,
    TASK_SCENARIOS,
    plan_nocall,
    plan_task_scene,
    run_call,
)
from fteforge.data.world import TODAYS
from fteforge.errors import FteforgeError
from fteforge.specs import AgenticSpec, PersonaSpec, ToolsSpec
from fteforge.taskapi import dump_result


class OpenAICompatibleParams(BaseModel):
    """`persona_data.generator_params` for the openai_compatible generator."""

    model_config = ConfigDict(extra="forbid")
    base_url: str = Field(min_length=1, description="e.g. http://localhost:8000/v1 (POSTs to {base_url}/chat/completions)")
    model: str = Field(min_length=1, description="model name the endpoint serves")
    api_key_env: str | None = Field(default=None, description="environment variable holding the API key, if any")
    timeout_s: float = Field(default=60.0, gt=0, description="seconds to wait for one completion")
    temperature: float = Field(default=0.8, ge=0, le=2)
    max_tokens: int = Field(default=160, gt=0, description="upper bound on the reply's tokens")


def persona_prompt(spec: PersonaSpec) -> str:
    """The teacher's system prompt: the persona, in the spec's own words."""
    lines = [f"You write replies as {spec.display_name}. {spec.identity}", "", "Traits:"]
    for t in spec.traits:
        lines.append(f"- {t.name}: {t.summary}. Looks like: {'; '.join(t.looks_like)}. "
                     f"Never: {'; '.join(t.violated_by)}.")
    lines += ["", "Every reply follows this pattern:"]
    lines += [f"{i}. {s.name}: {s.description}" for i, s in enumerate(spec.response_pattern, 1)]
    lines += ["", f"Phrases you reach for naturally: {', '.join(spec.vocabulary.preferred)}",
              f"Phrases you never use: {', '.join(spec.vocabulary.avoided)}", "", "Boundaries:"]
    lines += [f"- {b.description}" for b in spec.boundaries]
    lines += ["", "Examples:"]
    lines += [f"User: {e.user}\n{spec.display_name}: {e.assistant}" for e in spec.examples[:3]]
    lines += ["", "Write 1 to 3 short sentences of plain text: no emoji, no lists, no markdown. Start by "
              "acknowledging the user and end with a clear next step or question."]
    return "\n".join(lines)


@GENERATORS.register("openai_compatible")
class OpenAICompatibleGenerator:
    """A teacher model at an OpenAI-compatible endpoint writes the replies (params: base_url, model,
    api_key_env, timeout_s, temperature); scenes and tool results are real, as in `template`."""

    name = "openai_compatible"
    Params = OpenAICompatibleParams

    def __init__(self, params: dict[str, Any] | None = None):
        if not params or "base_url" not in params:
            raise FteforgeError(
                f"persona generator 'openai_compatible' needs {PARAMS_KEY}.base_url (e.g. http://localhost:8000/v1) "
                f"and {PARAMS_KEY}.model in params.yaml"
            )
        self.params: OpenAICompatibleParams = parse_params(OpenAICompatibleParams, params, self.name)
        self.url = self.params.base_url.rstrip("/") + "/chat/completions"

    # -- HTTP --------------------------------------------------------------------------------------------

    def _fail(self, what: str) -> FteforgeError:
        return FteforgeError(
            f"persona generator openai_compatible: {what} (base_url {self.params.base_url!r}, POST {self.url}); "
            f"check {PARAMS_KEY}.base_url and {PARAMS_KEY}.model in params.yaml, or set "
            "persona_data.generator: template to build the data offline"
        )

    def complete(self, system: str, prompt: str) -> str:
        """One chat completion; returns the message text."""
        headers = {"Content-Type": "application/json"}
        if self.params.api_key_env:
            key = os.environ.get(self.params.api_key_env)
            if not key:
                raise FteforgeError(
                    f"persona generator openai_compatible: environment variable {self.params.api_key_env!r} "
                    f"({PARAMS_KEY}.api_key_env) is not set"
                )
            headers["Authorization"] = f"Bearer {key}"
        body = {"model": self.params.model, "temperature": self.params.temperature,
                "max_tokens": self.params.max_tokens,
                "messages": [{"role": "system", "content": system}, {"role": "user", "content": prompt}]}
        req = urllib.request.Request(self.url, data=json.dumps(body).encode("utf-8"), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.params.timeout_s) as resp:  # noqa: S310 (configured URL)
                raw = resp.read()
        except urllib.error.HTTPError as err:
            detail = err.read(300).decode("utf-8", "replace").strip()
            raise self._fail(f"HTTP {err.code} {err.reason}" + (f": {detail}" if detail else "")) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise self._fail(f"endpoint unreachable ({reason})") from None
        try:
            data = json.loads(raw)
            text = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise self._fail(f"unexpected response, not an OpenAI-style completion: {raw[:200]!r}") from None
        if not isinstance(text, str) or not text.strip():
            raise self._fail("the completion is empty")
        return _clean(text)

    # -- generation --------------------------------------------------------------------------------------

    def generate(self, spec: PersonaSpec, agentic_spec: AgenticSpec, tools: ToolsSpec, category: str,
                 scenario: str, n: int, rng: random.Random) -> list[dict[str, Any]]:
        system = persona_prompt(spec)
        out = []
        for _ in range(n):
            if scenario in TASK_SCENARIOS.get(category, {}):
                scene = plan_task_scene(category, scenario, rng, "train")
                result = run_call(tools, scene.today, scene.setup_tasks, scene.call)
                prompt = (
                    f"Scenario: {category} / {scenario}. Today is {scene.today}.\n"
                    f"User: {scene.user}\n"
                    f"You called the tool {scene.call[0]} with {json.dumps(scene.call[1], ensure_ascii=False)}; "
                    f"the Task API returned: {dump_result(result)}\n"
                    "Write your final reply to the user. It must agree with that result: name the task title(s), "
                    "dates and counts it contains and invent nothing. Reply with the reply text only."
                )
                out.append({"user": scene.user, "call": scene.call, "result": result,
                            "reply": self.complete(system, prompt), "today": scene.today,
                            "setup_tasks": scene.setup_tasks, "template": scene.template})
            elif scenario in NOCALL.get(category, {}):
                user, _, _, tpl = plan_nocall(category, scenario, rng)
                prompt = (f"Scenario: {category} / {scenario} (no tool is needed).\nUser: {user}\n"
                          "Write your reply to the user. Reply with the reply text only.")
                out.append({"user": user, "call": None, "result": None, "reply": self.complete(system, prompt),
                            "today": rng.choice(TODAYS["train"]), "setup_tasks": [], "template": tpl})
            else:
                prompt = (
                    f"Scenario: {category} / {scenario} (no tool is needed). Invent one realistic, specific message "
                    f"a user of a task app would send in this scenario (variation {rng.randint(1, 10**6)}), then "
                    f'write your reply. Answer with JSON only: {{"user": "...", "reply": "..."}}'
                )
                text = self.complete(system, prompt)
                try:
                    pair = json.loads(text[text.index("{"): text.rindex("}") + 1])
                    user, reply = str(pair["user"]).strip(), _clean(str(pair["reply"]))
                except (ValueError, KeyError, TypeError):
                    raise self._fail(f"expected JSON with 'user' and 'reply' for scenario {scenario!r}, got {text[:200]!r}") from None
                out.append({"user": user, "call": None, "result": None, "reply": reply,
                            "today": rng.choice(TODAYS["train"]), "setup_tasks": [], "template": "teacher"})
        return out


def _clean(text: str) -> str:
    """Strip whitespace, a 'TaskMaster:' prefix and wrapping quotes a teacher sometimes adds."""
    text = " ".join(text.strip().split())
    for prefix in ("TaskMaster:", "Assistant:"):
        if text.startswith(prefix):
            text = text[len(prefix):].strip()
    if len(text) > 1 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text

