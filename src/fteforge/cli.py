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


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate any model folder on any suite file; exit 0 when the run completed, whatever the gates say."""

    def run() -> None:
        from fteforge.console import quiet_libraries, stage

        quiet_libraries()
        from fteforge.data.records import load_suite, write_jsonl, write_text
        from fteforge.evaluation.report import build_results, summary_lines
        from fteforge.evaluation.runner import evaluate_model, model_kind, persona_case_scores, win_rate
        from fteforge.params import EvaluateParams
        from fteforge.specs import load_spec_set

        suite = Path(args.suite)
        if not suite.is_file():
            raise FteforgeError(f"{suite}: suite file not found - pass a JSON Lines file in the format of "
                                "docs/eval_suite_format.md (e.g. data/eval/agentic.jsonl)")
        cases = load_suite(suite)[: args.max_cases]
        model_kind(Path(args.model))  # a clear error for a wrong folder before anything loads
        if args.base is not None and model_kind(Path(args.base)) != "model":
            raise FteforgeError(f"{args.base}: --base must be a full model folder (config.json + safetensors)")
        specs = load_spec_set(args.specs)
        params = EvaluateParams(batch_size=args.batch_size, threads=args.threads, device=args.device)
        kinds = sorted({c.kind for c in cases})
        with stage(f"evaluate {args.model} on {suite.name}") as step:
            ev = evaluate_model(args.model, cases, specs, params, base_dir=args.base, latency=not args.no_latency,
                                progress=step)
            ab = None
            persona_cases = [c for c in cases if c.kind == "persona"]
            if args.base is not None and persona_cases:
                step("A/B: the base on the persona cases")
                ref = evaluate_model(args.base, persona_cases, specs, params, latency=False)
                ab = win_rate(persona_case_scores(ev.records), persona_case_scores(ref.records),
                              params.bootstrap_samples, params.seed)
            results = build_results(Path(args.model).name, "model", ev, specs, ab=ab,
                                    suites={k: {"file": str(suite), "cases": sum(c.kind == k for c in cases)}
                                            for k in kinds})
            out = Path(args.out)
            write_text(out, json.dumps(results, indent=2, sort_keys=True) + "\n")
            write_jsonl(out.with_suffix(".cases.jsonl"), [r.to_dict() for r in ev.records])
        console.print("\n".join(summary_lines(results)), markup=False)
        console.print(f"wrote {out} and {out.with_suffix('.cases.jsonl')}")

    return run_stage(run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fteforge", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check every spec and the references between them")
    p.add_argument("--specs", default="specs", help="folder of spec YAML files (default: specs)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("schema", help="write the JSON Schema of each spec kind (for editor autocompletion)")
    p.add_argument("--out", default="schemas", help="output folder (default: schemas)")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("evaluate", help="evaluate a model or adapter folder on a suite file (JSON Lines)")
    p.add_argument("--model", required=True, help="full model folder or PEFT LoRA adapter folder")
    p.add_argument("--suite", required=True, help="suite file, format in docs/eval_suite_format.md")
    p.add_argument("--base", help="base model folder: the base of an adapter, and the A/B reference")
    p.add_argument("--out", required=True, help="results JSON to write (cases go to <out>.cases.jsonl)")
    p.add_argument("--specs", default="specs", help="folder of spec YAML files (default: specs)")
    p.add_argument("--batch-size", type=int, default=16, help="prompts per generate call (default: 16)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads, 0 = torch's default (default: 2)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--max-cases", type=int, default=None, help="evaluate only the first N cases")
    p.add_argument("--no-latency", action="store_true", help="skip the 30-run latency measurement")
    p.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
