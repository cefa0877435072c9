"""Spec kinds, loading and cross-checks.

Every spec file has a top-level `kind:` that picks its model. `load_spec_set(dir)` loads all of
them, checks the references between them and reports every problem at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fteforge.errors import SpecError
from fteforge.specs.agentic import AgenticSpec
from fteforge.specs.base import SpecModel, load_model, read_yaml
from fteforge.specs.common import Gate
from fteforge.specs.persona import PersonaSpec
from fteforge.specs.tools import ToolsSpec
from fteforge.specs.unified import UnifiedModelSpec

SPEC_KINDS: dict[str, type[SpecModel]] = {
    "PersonaSpec": PersonaSpec,
    "ToolsSpec": ToolsSpec,
    "AgenticSpec": AgenticSpec,
    "UnifiedModelSpec": UnifiedModelSpec,
}

__all__ = [
    "SPEC_KINDS", "AgenticSpec", "Gate", "PersonaSpec", "SpecSet", "ToolsSpec", "UnifiedModelSpec",
    "load_spec", "load_spec_set",
]


def load_spec(path: Path | str) -> SpecModel:
    """Load one spec file, choosing the model from its `kind:` key."""
    path = Path(path)
    data, _ = read_yaml(path)
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind not in SPEC_KINDS:
        raise SpecError([f"{path}: kind: expected one of {sorted(SPEC_KINDS)}, got {kind!r}"])
    return load_model(SPEC_KINDS[kind], path)


def _peek_kind(path: Path) -> str | None:
    try:
        data, _ = read_yaml(path)
    except SpecError:
        return None
    return data.get("kind") if isinstance(data, dict) else None


@dataclass(frozen=True)
class SpecSet:
    """The specs one build uses, already cross-checked."""

    root: Path
    persona: PersonaSpec
    agentic: AgenticSpec
    tools: ToolsSpec
    unified: UnifiedModelSpec
    files: dict[str, Path]

    def adapter_spec(self, adapter: str) -> PersonaSpec | AgenticSpec:
        for spec in (self.persona, self.agentic):
            if spec.adapter == adapter:
                return spec
        raise KeyError(adapter)

    @property
    def adapters(self) -> list[str]:
        return [self.persona.adapter, self.agentic.adapter]


def load_spec_set(root: Path | str = "specs") -> SpecSet:
    """Load every `*.yaml` under `root` and check the references between them."""
    root = Path(root)
    if not root.is_dir():
        raise SpecError([f"{root}: spec folder not found - run from the project root or pass --specs DIR"])
    problems: list[str] = []
    loaded: dict[str, list[tuple[Path, SpecModel]]] = {k: [] for k in SPEC_KINDS}
    broken_kinds: set[str] = set()
    for path in sorted(root.glob("*.yaml")):
        try:
            spec = load_spec(path)
        except SpecError as err:
            problems.extend(err.problems)
            broken_kinds.add(_peek_kind(path))
            continue
        loaded[spec.kind].append((path, spec))

    picked: dict[str, tuple[Path, SpecModel]] = {}
    for kind in ("PersonaSpec", "AgenticSpec", "UnifiedModelSpec"):
        found = loaded[kind]
        if len(found) == 1:
            picked[kind] = found[0]
        elif len(found) > 1:
            problems.append(f"{root}: found {len(found)} {kind} files ({', '.join(p.name for p, _ in found)}); keep one")
        elif kind not in broken_kinds:
            problems.append(f"{root}: no {kind} file (a YAML file with `kind: {kind}`) - add one")

    tools: ToolsSpec | None = None
    if "AgenticSpec" in picked:
        apath, agentic = picked["AgenticSpec"]
        tpath = (apath.parent / agentic.tools_file)
        if not tpath.is_file():
            problems.append(f"{apath}: tools_file: {agentic.tools_file!r} does not exist next to the spec - fix the path")
        else:
            try:
                tspec = load_spec(tpath)
            except SpecError as err:
                problems.extend(p for p in err.problems if p not in problems)
            else:
                if not isinstance(tspec, ToolsSpec):
                    problems.append(f"{apath}: tools_file: {tpath.name} is a {tspec.kind}, expected a ToolsSpec")
                else:
                    tools = tspec
                    for cname, cat in agentic.scenario_matrix.categories.items():
                        for tool in cat.tools:
                            if tool not in tools.names:
                                problems.append(
                                    f"{apath}: scenario_matrix.categories.{cname}.tools: unknown tool {tool!r}; "
                                    f"{tpath.name} defines {tools.names}"
                                )

    if {"PersonaSpec", "AgenticSpec", "UnifiedModelSpec"} <= picked.keys():
        ppath, persona = picked["PersonaSpec"]
        apath, agentic = picked["AgenticSpec"]
        upath, unified = picked["UnifiedModelSpec"]
        known = {persona.adapter: ppath, agentic.adapter: apath}
        for i, name in enumerate(unified.source_adapters):
            if name not in known:
                problems.append(
                    f"{upath}: source_adapters.{i}: adapter {name!r} is not defined; "
                    f"specs define {sorted(known)} (the `adapter:` key of the persona and agentic specs)"
                )
        if persona.adapter == agentic.adapter:
            problems.append(f"{apath}: adapter: {agentic.adapter!r} is also the persona adapter's name - pick another")
        bases = {
            f"{ppath}: deployment_target.base_model": persona.deployment_target.base_model,
            f"{apath}: base_model": agentic.base_model,
        }
        for where, base in bases.items():
            if base != unified.base_model:
                problems.append(f"{where}: {base!r} differs from {upath.name} base_model {unified.base_model!r}")

    if problems:
        raise SpecError(problems)
    return SpecSet(
        root=root,
        persona=picked["PersonaSpec"][1],
        agentic=picked["AgenticSpec"][1],
        tools=tools,
        unified=picked["UnifiedModelSpec"][1],
        files={k: p for k, (p, _) in picked.items()} | {"ToolsSpec": picked["AgenticSpec"][0].parent / picked["AgenticSpec"][1].tools_file},
    )
