"""Jinja rendering of a release's documents: the model-card README and PERSONA_SPEC.md.

Templates live in `fteforge/templates/release/`; every figure comes from the metadata dict passed in,
so a README can never show a number that merge_metadata.json does not hold.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import jinja2


def _num(value: Any, digits: int | None = None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}" if digits is not None else f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


_SERVING = {
    "fp32": "in fp32 (the weights as merged)",
    "bf16": "in bf16",
    "int8_weights": "with int8 weights per output channel in the decoder layers, bf16 activations and "
                    "vocabulary projection, attention in fp32",
}


def _serving_phrase(precision: str) -> str:
    return _SERVING.get(precision, precision)


def _decoding_phrase(latency: dict[str, Any]) -> str:
    """How the timed turn was decoded, where it was not plain `generate`: a reader who times `generate`
    should know why the card's number is lower."""
    if not latency.get("draft_tokens"):
        return ""
    return (f", fteforge's stream decoder checking {latency['draft_tokens']} guessed tokens a step: "
            f"{_num(latency.get('tokens_per_forward'), 2)} tokens per forward pass, the same text as greedy `generate`")


def _environment() -> jinja2.Environment:
    folder = resources.files("fteforge").joinpath("templates/release")
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: folder.joinpath(name).read_text(encoding="utf-8")),
        undefined=jinja2.StrictUndefined,  # a missing metadata field is a bug, not an empty cell
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters.update(num=_num, pct=_pct, code=lambda s: f"`{s}`", serving_phrase=_serving_phrase,
                       decoding_phrase=_decoding_phrase)
    return env


def render(template: str, **context: Any) -> str:
    return _environment().get_template(template).render(**context)


def unified_readme(metadata: dict[str, Any]) -> str:
    return render("unified_README.md.j2", m=metadata)


def persona_readme(metadata: dict[str, Any]) -> str:
    return render("persona_README.md.j2", m=metadata)


def persona_spec_md(persona: Any, spec_file: str) -> str:
    return render("PERSONA_SPEC.md.j2", p=persona, spec_file=spec_file)
