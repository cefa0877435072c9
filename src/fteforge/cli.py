"""The `fteforge` command: validate specs, export their JSON Schemas, and run pipeline pieces by hand."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from fteforge.console import console
from fteforge.errors import FteforgeError, SpecError

EXIT_USER_ERROR = 2


def run_stage(main: Callable[[], None]) -> int:
    """Run a stage's main(); turn fteforge errors into a clear message and a non-zero exit."""
    try:
        main()
    except SpecError as err:
        console.print(f"[red]✗ {len(err.problems)} problem(s) in the specs:[/]")
        for p in err.problems:
            console.print(f"  - {p}", markup=False)
        return EXIT_USER_ERROR
    except FteforgeError as err:
        console.print(f"✗ error: {err}", markup=False, style="red")
        return EXIT_USER_ERROR
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from fteforge.specs import load_spec_set

    def check() -> None:
        specs = load_spec_set(args.specs)
        for kind, path in specs.files.items():
            console.print(f"[green]✓[/] {path} ({kind})")
        p = specs.persona.scenario_matrix
        console.print(
            f"{len(specs.files)} specs valid: persona {len(p.categories)} categories / {p.n_scenarios} scenarios / "
            f"target {p.total_target}; tools {', '.join(specs.tools.names)}; adapters {', '.join(specs.adapters)}"
        )

    return run_stage(check)


def cmd_schema(args: argparse.Namespace) -> int:
    from fteforge.specs import SPEC_KINDS

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for kind, model in SPEC_KINDS.items():
        path = out / f"{kind}.schema.json"
        path.write_text(json.dumps(spec_json_schema(model), indent=2, sort_keys=True) + "\n")
        console.print(f"wrote {path}")
    return 0


def spec_json_schema(model) -> dict:
    schema = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fteforge", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check every spec and the references between them")
    p.add_argument("--specs", default="specs", help="folder of spec YAML files (default: specs)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("schema", help="write the JSON Schema of each spec kind (for editor autocompletion)")
    p.add_argument("--out", default="schemas", help="output folder (default: schemas)")
    p.set_defaults(func=cmd_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
