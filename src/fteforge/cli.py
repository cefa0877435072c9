"""The `fteforge` command: validate specs, export their JSON Schemas, run pipeline pieces by hand, chat."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fteforge.console import console
from fteforge.errors import FteforgeError, SpecError

if TYPE_CHECKING:
    from rich.console import Console

    from fteforge.chat import ChatSession, Exchange

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


def iso_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date as YYYY-MM-DD") from None


def cmd_chat(args: argparse.Namespace) -> int:
    """Talk to a model folder as the TaskMaster agent, its tool calls run against a SQLite Task API file.

    The conversation goes to stdout (with --once --json: one JSON object); loading and errors to stderr.
    """

    def run() -> None:
        from fteforge.console import quiet_libraries

        quiet_libraries()
        from rich.console import Console

        from fteforge.chat import (
            ChatSession,
            resolve_draft,
            resolve_serving,
            resolve_specs_dir,
            resolve_tool_calls,
        )
        from fteforge.evaluation.runner import load_model, model_kind
        from fteforge.evaluation.serving import serve_as
        from fteforge.specs import load_spec_set

        if args.json and args.once is None:
            raise FteforgeError("--json goes with --once MESSAGE (the interactive session prints text)")
        model_dir = Path(args.model)
        model_kind(model_dir)  # a clear error for a wrong folder before anything loads
        if args.base is not None and model_kind(Path(args.base)) != "model":
            raise FteforgeError(f"{args.base}: --base must be a full model folder (config.json + safetensors)")
        specs = load_spec_set(resolve_specs_dir(model_dir, args.specs))
        if args.max_new_tokens < 1 or args.max_context < 1:
            raise FteforgeError("--max-new-tokens and --max-context must be at least 1")
        if args.draft_tokens < 0:
            raise FteforgeError("--draft-tokens must be 0 or more")
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        if args.device == "cuda" and not torch.cuda.is_available():
            raise FteforgeError("--device cuda, but torch sees no CUDA device - use auto or cpu")
        device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        today = args.today or dt.date.today()
        if not args.json:
            console.print(f"loading {model_dir} on {device}", markup=False, style="dim")
        loaded = load_model(model_dir, args.base, device)
        serving = resolve_serving(model_dir, args.serving)
        try:
            serve_as(loaded.model, serving)
        except ValueError as err:
            raise FteforgeError(f"--serving {serving}: {err}") from None
        out = Console(highlight=False, soft_wrap=True)
        constrain = resolve_tool_calls(model_dir, args.tool_calls)
        draft = resolve_draft(model_dir, args.draft, loaded.tokenizer)
        with ChatSession(loaded.tokenizer, specs, args.db, today=today, model=loaded.model,
                         max_new_tokens=args.max_new_tokens, max_context=args.max_context,
                         constrain_tool_calls=constrain, draft=draft, draft_tokens=args.draft_tokens) as session:
            if args.once is not None:
                exchange = session.send(args.once)
                if args.json:
                    sys.stdout.write(json.dumps(exchange.to_dict(), ensure_ascii=False) + "\n")
                else:
                    out.print(f"you> {args.once}", markup=False)
                    print_exchange(out, exchange)
                return
            chat_loop(out, session, model_dir)

    return run_stage(run)


def print_exchange(out: Console, exchange: Exchange) -> None:
    """The call (or its refusal), the result in a line, then the reply."""
    from fteforge.chat import format_call, summarize_result, task_line

    call, result = exchange.call, exchange.tool_result
    if call is not None and not call.executed:
        shown = format_call(call.name, call.arguments) if call.name is not None else "tool call"
        out.print(f"✗ refused {shown}: {call.refused_reason}", markup=False, style="red")
    elif call is not None and result is not None:
        out.print(f"→ {format_call(call.name, call.arguments)}", markup=False, style="cyan")
        ok = result.get("ok")
        out.print(f"  {'✓' if ok else '✗'} {summarize_result(result)}", markup=False,
                  style="green" if ok else "yellow")
        for task in result.get("tasks", []) if ok else []:
            out.print(f"    {task_line(task)}", markup=False)
    out.print(f"taskmaster> {exchange.reply or '(no reply)'}", markup=False)


def chat_loop(out: Console, session: ChatSession, model_dir: Path) -> None:
    """Read messages from stdin until /quit or end of input; /tasks and /reset are handled here."""
    from rich.markup import escape

    from fteforge.chat import task_line

    out.print(f"[bold]fteforge chat[/] model {escape(str(model_dir))} | db {escape(str(session.db_path))} | "
              f"today {session.today.isoformat()}")
    out.print("[dim]/tasks lists the tasks, /reset forgets the conversation, /quit (or end of input) exits[/]")
    try:
        while True:
            try:
                text = input("you> ").strip()
            except EOFError:
                out.print()
                return
            if not text:
                continue
            if text in ("/quit", "/exit"):
                return
            if text == "/reset":
                session.reset()
                out.print("[dim]conversation cleared (the tasks stay in the database)[/]")
            elif text == "/tasks":
                tasks = session.tasks()
                out.print(f"{len(tasks)} task(s) in {session.db_path}", markup=False)
                for task in tasks:
                    out.print(f"  {task_line(task)}", markup=False)
            elif text.startswith("/"):
                out.print(f"unknown command {text.split()[0]} - use /tasks, /reset or /quit", markup=False)
            else:
                dropped = session.dropped
                exchange = session.send(text)
                if session.dropped > dropped:
                    out.print(f"[dim](dropped the {session.dropped - dropped} oldest exchange(s) to stay within "
                              "--max-context)[/]")
                print_exchange(out, exchange)
    except KeyboardInterrupt:  # Ctrl-C ends the session like /quit, without a traceback
        out.print()


def cmd_merge_search(args: argparse.Namespace) -> int:
    from fteforge.merging.search import render_table, search

    def run() -> None:
        dvc = str(Path(sys.executable).parent / "dvc")
        report = search(Path.cwd(), Path(args.grid), dvc=dvc if Path(dvc).exists() else "dvc", dry_run=args.dry_run,
                        baseline=args.baseline, validation_seed=args.validation_seed,
                        validation_cache=not args.no_validation_cache, progress=lambda msg: console.print(msg, markup=False))
        if args.dry_run:
            for command in report["commands"].values():
                print(command)
            return
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        print(render_table(report), end="")
        console.print(f"report: {args.out}; every variant is an experiment: dvc exp show", markup=False)
        if not report["ranking"] or any(r["headline"] is None for r in report["runs"]):
            raise FteforgeError(f"{sum(r['headline'] is None for r in report['runs'])} variant(s) failed; see {args.out}")

    return run_stage(run)


def build_parser() -> argparse.ArgumentParser:
    from fteforge.evaluation.draft import DEFAULT_DRAFT_TOKENS
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

    p = sub.add_parser("merge-search", help="try merge variants from a grid file as DVC experiments, ranked by the "
                       "gates (run in the repository root)")
    p.add_argument("grid", help="YAML file: `variants: {name: candidate}`, each like a params.yaml merge candidate")
    p.add_argument("--out", default="bench/results/merge_search.json", help="report JSON (default: %(default)s)")
    p.add_argument("--dry-run", action="store_true", help="validate the grid and print the dvc commands only")
    p.add_argument("--baseline", default="HEAD", help="commit whose experiments are reused: a variant that already "
                   "ran there is read, not rerun (default: HEAD)")
    p.add_argument("--validation-seed", type=int, default=None, metavar="SEED",
                   help="rank on another draw of the eval suites (eval_suites.seed SEED, held-out inputs dropped) "
                   "instead of the held-out suites, which then only report (default: rank on the held-out suites)")
    p.add_argument("--no-validation-cache", action="store_true",
                   help="evaluate every model on the validation draw afresh instead of reading results kept in "
                   ".cache/validation (they are rewritten)")
    p.set_defaults(func=cmd_merge_search)

    p = sub.add_parser("chat", help="talk to a model folder as the TaskMaster agent (tools run on a SQLite file)")
    p.add_argument("model", metavar="MODEL_DIR", help="full model folder (a release) or PEFT LoRA adapter folder")
    p.add_argument("--base", help="base model folder of an adapter")
    p.add_argument("--db", default="taskmaster.db", help="SQLite Task API file, created if missing "
                   "(default: taskmaster.db)")
    p.add_argument("--once", metavar="MESSAGE", help="send one message, print the exchange and exit")
    p.add_argument("--json", action="store_true", help="with --once: print the exchange as one JSON object")
    p.add_argument("--today", type=iso_date, help="the date the agent and the Task API see (default: today)")
    p.add_argument("--specs", help="folder of spec YAML files (default: MODEL_DIR/specs if present, else specs)")
    p.add_argument("--max-new-tokens", type=int, default=96, help="cap on each model turn (default: 96)")
    p.add_argument("--tool-calls", choices=["auto", "constrained", "free"], default="auto",
                   help="decode tool calls against their JSON Schema (constrained) or freely; auto: as the "
                        "model's EVALUATION_RESULTS.json was measured, constrained when it has none")
    p.add_argument("--serving", choices=["auto", "fp32", "bf16", "int8_weights"], default="auto",
                   help="inference precision; auto: as the model's EVALUATION_RESULTS.json was measured, fp32 "
                        "when it has none")
    p.add_argument("--max-context", type=int, default=1536,
                   help="prompt token budget; the oldest exchanges are dropped beyond it (default: 1536)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads, 0 = torch's default (default: 2)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--draft", metavar="FILE", help="n-gram table to guess tokens from (default: MODEL_DIR/"
                   "draft_ngrams.json if the release ships one; none: no guessing); the text is the same, "
                   "only the number of forward passes changes")
    p.add_argument("--draft-tokens", type=int, default=DEFAULT_DRAFT_TOKENS,
                   help=f"tokens guessed per step (default: {DEFAULT_DRAFT_TOKENS})")
    p.set_defaults(func=cmd_chat)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
