"""Markdown for dataset statistics (the agentic card; the persona card lives with its builder)."""

from __future__ import annotations

from typing import Any


def render_stats_card(title: str, stats: dict[str, Any]) -> str:
    lines = [f"# {title}", ""]
    for key, value in stats.items():
        if isinstance(value, dict):
            lines += [f"## {key}", "", "| key | value |", "|---|---|"]
            lines += [f"| {k} | {v} |" for k, v in value.items()]
            lines.append("")
        else:
            lines.append(f"- **{key}**: {value}")
    return "\n".join(lines).rstrip() + "\n"
