"""Shared machinery for spec models: strict pydantic base, YAML loading with line numbers."""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from fteforge.errors import SpecError


class SpecModel(BaseModel):
    """Base for every spec model: unknown keys are errors, values are frozen once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers where each mapping key and sequence item starts."""


def _compose_lines(text: str) -> yaml.Node | None:
    return yaml.compose(text, Loader=_LineLoader)


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at pydantic location `loc`, or of its nearest parent."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == part:
                    line = key_node.start_mark.line + 1
                    node = value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def field_names(model_cls: type[BaseModel]) -> set[str]:
    """Every field name of a model and the models nested in it (for 'did you mean' hints)."""
    names: set[str] = set()
    todo, seen = [model_cls], set()
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        for name, info in cls.model_fields.items():
            names.add(name)
            for arg in _types_in(info.annotation):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    todo.append(arg)
    return names


def _types_in(annotation: Any) -> list[Any]:
    args = typing.get_args(annotation)
    return [annotation] + [t for a in args for t in _types_in(a)]


def format_validation_error(
    path: Path | str, err: ValidationError, node: yaml.Node | None = None, loc_prefix: tuple[str, ...] = (),
    known_fields: set[str] = frozenset(),
) -> list[str]:
    """One line per problem: `file:line: field.path: message (got: value)`."""
    problems = []
    for e in err.errors():
        loc = loc_prefix + tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        field = ".".join(str(p) for p in loc) or "<top level>"
        line = _line_of(node, loc) if node is not None else None
        where = f"{path}:{line}" if line else str(path)
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(loc[-1]), sorted(known_fields), n=1, cutoff=0.75)
            hint = f"did you mean {close[0]!r}?" if close else "remove it or check the spelling (fteforge schema)"
            msg = f"unknown key - {hint}"
        elif e["type"] == "missing":
            msg = "required field is missing - add it"
        got = ""
        if e["type"] not in ("missing", "extra_forbidden") and "input" in e and not isinstance(e["input"], dict | list):
            got = f" (got: {e['input']!r})"
        problems.append(f"{where}: {field}: {msg}{got}")
    return problems


def read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """Parse a YAML file; syntax errors become a SpecError naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise SpecError([f"{path}: file not found - check the path (specs live under specs/)"])
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
        node = _compose_lines(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise SpecError([f"{path}{line}: invalid YAML: {getattr(exc, 'problem', exc)}"]) from exc
    return data, node


def load_model(model_cls: type[SpecModel], path: Path | str) -> SpecModel:
    """Load one YAML file into `model_cls`, raising SpecError with every problem found."""
    path = Path(path)
    data, node = read_yaml(path)
    if not isinstance(data, dict):
        raise SpecError([f"{path}: expected a mapping at the top level, got {type(data).__name__}"])
    try:
        return model_cls.model_validate(data, context={"spec_path": path})
    except ValidationError as err:
        raise SpecError(format_validation_error(path, err, node, known_fields=field_names(model_cls))) from err
