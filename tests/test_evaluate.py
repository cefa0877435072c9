"""The evaluation runner, the results and comparison reports, the evaluate stages and `fteforge evaluate`.

Models are the tiny random Llama from conftest and tiny LoRA adapters on it: their words are noise, so
these tests check the machinery (the loop, the fields, the gates, the exit codes), not the scores.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from fteforge import paths
from fteforge.cli import main as cli_main
from fteforge.data.records import EvalCase, write_jsonl
from fteforge.errors import FteforgeError
from fteforge.evaluation.report import (
    build_comparison,
    build_results,
    flat_metrics,
    gate_rows,
    gate_summary,
    preservation,
    unified_metrics,
)
from fteforge.evaluation.runner import (
    LATENCY_PROMPTS,
    evaluate_model,
    run_agent_loop,
    run_suites,
    win_rate,
)
from fteforge.params import EvalTokenCaps, EvaluateParams, LatencyParams
from fteforge.specs import load_spec_set
from fteforge.toolformat import format_tool_call

REPO = Path(__file__).resolve().parents[1]
SPECS = load_spec_set(REPO / "specs")
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
TINY = EvaluateParams(threads=1, batch_size=4, max_new_tokens=EvalTokenCaps(persona=6, agentic=6, combined=6),
                      latency=LatencyParams(runs=30, warmup=1, max_new_tokens=2), bootstrap_samples=200)

SETUP = [{"title": "Clean out the fridge", "priority": "low"}, {"title": "Pay the water bill", "due_date": "2026-11-30"}]
CASE_ROWS = [
    {"id": "p-1", "kind": "persona", "input": "Could you note down that I have to water the plants?",
     "expected_tool": "create_task", "today": "2026-11-23", "setup_tasks": SETUP,
     "not_expected": ["condescending", "generic_ai_phrases"]},
    {"id": "p-2", "kind": "persona", "input": "I feel like I'm failing at everything.", "today": "2026-11-23"},
    {"id": "a-1", "kind": "agentic", "input": "Create a task to review the budget by Friday",
     "expected_tool": "create_task", "expected_args": {"title": "(?i)review the budget", "due_date": "^2026-11-27$"},
     "today": "2026-11-23"},
    {"id": "a-2", "kind": "agentic", "input": "Hi! How are you today?", "expected_tool": None, "today": "2026-11-23"},
    {"id": "c-1", "kind": "combined", "input": "\"Clean out the fridge\" is finished, please tick it off.",
     "expected_tool": "complete_task", "expected_args": {"task_id": "(?i)clean out the fridge"},
     "today": "2026-11-23", "setup_tasks": SETUP, "not_expected": ["condescending"]},
    {"id": "c-2", "kind": "combined", "input": "What's on my list?", "expected_tool": "list_tasks",
     "today": "2026-11-23", "setup_tasks": SETUP},
]
CASES = [EvalCase.model_validate(r) for r in CASE_ROWS]


def _make_adapter(base_dir: Path, out: Path, seed: int) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, lora_dropout=0.0))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:  # B starts at zero: without values the adapter would be the base
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny_adapter(tiny_llama_dir, tmp_path_factory) -> Path:
    return _make_adapter(tiny_llama_dir, tmp_path_factory.mktemp("eval_adapter") / "a", 1)


@pytest.fixture(scope="module")
def tiny_model(tiny_llama_dir):
    from fteforge.evaluation.runner import load_model

    return load_model(tiny_llama_dir)


# -- generation and the loop ----------------------------------------------------------------------------

def test_copy_free_gqa_attention_gives_the_stock_logits(tiny_model, tiny_llama_dir):
    """The evaluation loader switches a grouped-query model to mask + enable_gqa SDPA on CPU: same logits."""
    import torch
    from transformers import AutoModelForCausalLM

    from fteforge.models.attention import NAME

    assert tiny_model.model.config._attn_implementation == NAME
    stock = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).eval()
    assert stock.config._attn_implementation == "sdpa"
    ids = torch.randint(5, 200, (3, 12), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0  # left padding: the case that made the stock path copy the cache
    with torch.inference_mode():
        ours = tiny_model.model(input_ids=ids, attention_mask=mask).logits
        ref = stock(input_ids=ids, attention_mask=mask).logits
    assert torch.allclose(ours[mask.bool()], ref[mask.bool()], atol=1e-5)


def test_prefix_cached_batches_equal_single_stream(tiny_model):
    """The shared system prompt computed once, suffixes left-padded behind it: same tokens as one by one."""
    from fteforge.agent import conversation, render
    from fteforge.evaluation.generation import generate_one
    from fteforge.evaluation.shared_prefix import PrefixCachedGenerator, common_prefix_len

    tok = tiny_model.tokenizer
    users = [*LATENCY_PROMPTS[:4], "Move the dentist appointment to next Tuesday afternoon, and make it urgent please"]
    prompts = [render(tok, conversation(SPECS.agentic, u), SPECS.tools, "2026-11-23", add_generation_prompt=True)
               for u in users]
    gen = PrefixCachedGenerator(tiny_model.model, tok, batch_size=3)
    assert common_prefix_len([tok(p, add_special_tokens=False)["input_ids"] for p in prompts]) > 100
    batched = gen(prompts, 12)
    assert batched == [generate_one(tiny_model.model, tok, p, 12) for p in prompts]
    assert len(gen.last_new_tokens) == len(prompts) and all(0 < n <= 12 for n in gen.last_new_tokens)
    assert gen(prompts[:2], 12) == batched[:2]  # the cached prefix is reused, not corrupted, by a second call


def test_group_prefixes_of_several_dates_equal_single_stream(tiny_model):
    """Prompts of three dates: each date's system turn cached once, rows prefilled unpadded, same tokens."""
    from fteforge.agent import conversation, render
    from fteforge.evaluation.generation import generate_one
    from fteforge.evaluation.shared_prefix import PrefixCachedGenerator, common_prefix_len, group_prefix_lens

    tok = tiny_model.tokenizer
    dates = ["2026-11-23"] * 3 + ["2027-01-15"] * 3 + ["2026-06-17"]
    users = [*LATENCY_PROMPTS, "Push every task due tomorrow to Monday and tell me what is left for this week"]
    prompts = [render(tok, conversation(SPECS.agentic, u), SPECS.tools, d, add_generation_prompt=True)
               for u, d in zip(users, dates, strict=False)]
    encoded = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    n = common_prefix_len(encoded)
    lens = group_prefix_lens(encoded, n, min_group=3)
    # the two dates with three prompts share their date lines; the lone date only the year of one of them
    assert lens[0] == lens[1] == lens[2] > n and lens[3] == lens[4] == lens[5] > n
    assert n <= lens[6] < min(lens[0], lens[3])
    assert all(m < len(e) for m, e in zip(lens, encoded, strict=True))
    gen = PrefixCachedGenerator(tiny_model.model, tok, batch_size=4, min_group=3)
    out = gen(prompts, 10)
    assert out == [generate_one(tiny_model.model, tok, p, 10) for p in prompts]
    assert {len(p) for p in gen._caches} == {n, *lens}
    assert gen(prompts[::-1], 10) == out[::-1]  # the kept caches serve a second call unchanged
    small = PrefixCachedGenerator(tiny_model.model, tok, batch_size=4, min_group=3, max_cached=2)
    assert small(prompts, 10) == out and len(small._caches) == 2


class Scripted:
    """A stand-in model: answers each prompt by what it contains, and records every prompt it was given."""

    def __init__(self, first: dict[str, str], reply: str):
        self.first, self.reply, self.prompts = first, reply, []

    def __call__(self, prompts, max_new_tokens):
        self.prompts.append(list(prompts))
        out = []
        for p in prompts:
            if "<tool_response>" in p:
                out.append(self.reply)
            else:
                out.append(next(v for k, v in self.first.items() if k in p))
        return out


GOOD = ("Nice work! I've marked \"Clean out the fridge\" as done, so your list is lighter. "
        "Want to look at what's next?")


def test_agent_loop_executes_the_call_and_feeds_back_the_real_result(tiny_model):
    combined = [c for c in CASES if c.kind == "combined"]
    model = Scripted({
        "tick it off": format_tool_call("complete_task", {"task_id": "Clean out the fridge"}),
        "my list": format_tool_call("list_tasks", {"priority": "soon"}),  # not in the schema's enum
    }, GOOD)
    turns = run_agent_loop(combined, model, tiny_model.tokenizer, SPECS, 32)
    done, bad = turns
    # the Task API really ran it: the seeded task is now completed, on the case's date
    assert done.tool_result["ok"] is True and done.tool_result["tool"] == "complete_task"
    assert done.tool_result["task"]["status"] == "completed" and done.tool_result["task"]["completed_on"] == "2026-11-23"
    # an invalid call is validated before anything runs, and the error is what the model reads next
    assert bad.tool_result["ok"] is False and bad.tool_result["error"]["code"] == "invalid_arguments"
    second = model.prompts[1]
    assert len(second) == 2 and '"status": "completed"' in second[0] and "invalid_arguments" in second[1]
    assert done.final_reply == GOOD

    records = run_suites(combined, model, tiny_model.tokenizer, SPECS, {"combined": 32})
    assert records[0].passed and records[0].details["tool"]["passed"] and records[0].score == pytest.approx(
        0.6 + 0.4 * records[0].details["persona"]["score"])
    assert not records[1].passed and "tool" in records[1].reason


def test_no_call_ends_the_loop_at_the_first_turn(tiny_model):
    model = Scripted({"failing": GOOD}, "unused")
    (turn,) = run_agent_loop([CASES[1]], model, tiny_model.tokenizer, SPECS, 32)
    assert turn.call is None and turn.final_reply is None and len(model.prompts) == 2 and model.prompts[1] == []


# -- a whole model ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def adapter_eval(tiny_llama_dir, tiny_adapter):
    return evaluate_model(tiny_adapter, CASES, SPECS, TINY, base_dir=tiny_llama_dir)


def test_evaluate_model_runs_every_kind(adapter_eval):
    ev = adapter_eval
    assert ev.kind == "adapter" and [r.id for r in ev.records] == [c.id for c in CASES]
    m = ev.metrics
    for key in ("persona.overall_score", "persona.min_trait_score", "persona.boundary_violations", "agentic.score",
                "agentic.no_call_accuracy", "combined.score", "latency.p50_ms", "latency.p95_ms", "memory.peak_rss_gb"):
        assert key in m, key
    assert m["latency.runs"] == 30 and m["latency.p50_ms"] <= m["latency.p95_ms"]
    assert ev.system["device"] == "cpu" and ev.system["threads"] == 1
    assert ev.system["serving"] == "int8_weights"  # evaluate.serving auto, on a CPU
    assert all(r.kind != "agentic" or r.final_reply is None for r in ev.records)


def test_prepare_hook_evaluates_the_model_it_returns(tiny_llama_dir):
    """bench/serving_precision.py's path: the loaded model swapped for a bf16 copy before anything runs."""
    import torch

    seen = []

    def to_bf16(model):
        seen.append(model)
        return model.to(torch.bfloat16)

    ev = evaluate_model(tiny_llama_dir, CASES, SPECS, TINY, latency=False, prepare=to_bf16)
    assert len(seen) == 1 and next(seen[0].parameters()).dtype == torch.bfloat16
    assert [r.id for r in ev.records] == [c.id for c in CASES]


def test_results_json_has_every_section(adapter_eval, tiny_llama_dir):
    base = evaluate_model(tiny_llama_dir, CASES, SPECS, TINY, latency=False)
    base_results = build_results("base", "base", base, SPECS, suites={})
    from fteforge.evaluation.report import case_scores
    from fteforge.evaluation.runner import persona_case_scores

    ab = win_rate(persona_case_scores(adapter_eval.records), case_scores(base_results), 200, 0)
    adapters = {a: {"metrics": adapter_eval.metrics} for a in SPECS.adapters}
    r = build_results("merges/m", "merge", adapter_eval, SPECS, suites={"persona": {"cases": 2}}, ab=ab,
                      base_results=base_results, adapter_results=adapters,
                      merge_info={"merge.size_mb": 1.0, "merge.engine": "peft", "merge.method": "cat"})
    for key in ("scores", "preservation", "ab_vs_base", "boundary_violations", "latency", "memory", "system", "gates",
                "gates_summary", "failed_cases", "persona_case_scores"):
        assert key in r, key
    assert set(r["scores"]) == {"persona", "agentic", "combined"}
    assert r["system"]["tool_calls"] == "schema-constrained" and base_results["system"]["tool_calls"] == "schema-constrained"
    assert r["ab_vs_base"]["n"] == 2 and r["metrics"]["persona.ab_win_rate"] == ab["win_rate"]
    assert all(set(f) == {"id", "kind", "reason"} and f["reason"] for f in r["failed_cases"])
    for g in r["gates"]:
        assert {"metric", "value", "bound", "op", "status", "spec"} <= set(g)
        assert g["status"] in ("PASS", "FAIL", "not applicable")
    metrics = {g["metric"] for g in r["gates"]}
    assert "unified.persona_preservation" in metrics and "latency.p95_ms" in metrics
    assert not any(m.startswith(("train.", "adapter.")) for m in metrics)
    json.dumps(r)  # serialisable as is
    flat = flat_metrics(r)
    assert flat["eval.gates_passed"] + flat["eval.gates_failed"] <= len(r["gates"])
    assert "eval.persona_preservation" in flat


# -- gates, A/B, preservation ---------------------------------------------------------------------------

def test_gates_pass_fail_and_not_applicable():
    metrics = {"persona.cases": 5, "persona.overall_score": 8.0, "persona.min_trait_score": 1.0,
               "persona.boundary_violations": 0, "agentic.cases": 5, "agentic.score": 0.95,
               "agentic.calls_emitted": 0, "agentic.json_validity": None, "agentic.schema_validity": None,
               "agentic.no_call_accuracy": 1.0, "combined.cases": 2, "combined.score": 0.5,
               "agentic.no_call_cases": 2, "latency.runs": 30, "latency.p95_ms": 900.0, "memory.peak_rss_gb": 1.2}
    rows = {g["metric"]: g for g in gate_rows(SPECS, metrics, "base")}
    assert rows["persona.overall_score"]["status"] == "PASS" and rows["persona.overall_score"]["bound"] == 7.5
    assert rows["persona.min_trait_score"]["status"] == "FAIL"
    assert rows["latency.p95_ms"]["status"] == "FAIL" and rows["memory.peak_rss_gb"]["status"] == "PASS"
    # no call emitted: the validity shares are undefined, which fails instead of passing
    assert rows["agentic.json_validity"]["status"] == "FAIL" and "no tool call" in rows["agentic.json_validity"]["note"]
    assert rows["persona.ab_win_rate"]["status"] == "not applicable"
    assert rows["unified.persona_preservation"]["status"] == "not applicable"
    assert "train.final_loss" not in rows and "adapter.size_mb" not in rows
    # a merge with an undefined preservation ratio fails the gate, it is not waved through
    merge_rows = {g["metric"]: g for g in gate_rows(SPECS, metrics | {"unified.persona_preservation": None}, "merge")}
    assert merge_rows["unified.persona_preservation"]["status"] == "FAIL"
    s = gate_summary(list(rows.values()))
    assert s["passed"] + s["failed"] + s["not_applicable"] == len(rows) and not s["all_passed"]
    # a suite without agentic cases: agentic gates cannot apply
    only_persona = {k: v for k, v in metrics.items() if not k.startswith(("agentic.", "combined."))}
    only_persona.pop("latency.runs")
    rows = {g["metric"]: g for g in gate_rows(SPECS, only_persona, "model")}
    assert rows["agentic.score"]["status"] == "not applicable"
    assert rows["latency.p95_ms"]["status"] == "not applicable"  # skipped latency is never a pass


def test_win_rate_ties_count_half_and_the_interval_is_seeded():
    model = {f"c{i}": s for i, s in enumerate([8, 7, 5, 6, 9, 3, 7, 7, 6, 8])}
    base = {f"c{i}": s for i, s in enumerate([6, 7, 6, 5, 4, 3, 2, 8, 6, 5])}
    r = win_rate(model, base, samples=1000, seed=3)
    assert (r["wins"], r["ties"], r["losses"]) == (5, 3, 2)
    assert r["win_rate"] == pytest.approx((5 + 1.5) / 10)
    assert r["ci_low"] <= r["win_rate"] <= r["ci_high"] and 0 <= r["ci_low"] < r["ci_high"] <= 1
    assert win_rate(model, base, samples=1000, seed=3) == r
    assert win_rate({"x": 1.0}, {"y": 1.0})["win_rate"] is None


def test_preservation_arithmetic():
    p = preservation(merged=6.0, adapter=8.0, base=4.0)
    assert p["ratio"] == pytest.approx(0.75) and p["gain_retained"] == pytest.approx(0.5)
    assert preservation(0.5, 0.0, 0.0)["ratio"] is None and preservation(0.5, 0.0, 0.0)["gain_retained"] is None
    assert preservation(None, 8.0, 4.0)["ratio"] is None
    base = {"persona.overall_score": 4.0, "agentic.score": 0.1, "combined.score": 0.3}
    adapters = {"task_api_persona": {"persona.overall_score": 8.0, "agentic.score": 0.0, "combined.score": 0.4},
                "task_api_agentic": {"persona.overall_score": 3.0, "agentic.score": 0.9, "combined.score": 0.6}}
    merged = {"persona.overall_score": 7.0, "agentic.score": 0.81, "combined.score": 0.55}
    m, detail = unified_metrics(merged, base, adapters, "task_api_persona", "task_api_agentic")
    assert m["unified.persona_preservation"] == pytest.approx(7 / 8)
    assert m["unified.agentic_preservation"] == pytest.approx(0.9)
    assert m["unified.persona_gain_retained"] == pytest.approx(3 / 4)
    assert m["unified.agentic_gain_retained"] == pytest.approx(0.71 / 0.8)
    assert m["unified.combined_regression"] == pytest.approx(-0.05)
    assert detail["combined"]["best_single_adapter"] == 0.6


def test_a_tie_with_the_best_adapter_is_no_regression():
    """The same case scores averaged in another order differ in the last bits; a tie must pass the gate."""
    cases = [0.28, 0.28, 0.6, 0.56, 0.92, 0.64, 0.28, 0.56, 0.64, 0.88, 0.96, 0.92, 0.52, 0.56, 0.52, 1.0, 0.56,
             0.92, 0.52, 0.56, 1.0, 1.0, 0.88, 0.64]
    one, other = sum(cases) / len(cases), sum(reversed(cases)) / len(cases)
    assert one != other  # the float artifact this guards against is real for these scores
    adapters = {"task_api_persona": {"combined.score": one}, "task_api_agentic": {"combined.score": 0.5}}
    m, _ = unified_metrics({"combined.score": other}, {}, adapters, "task_api_persona", "task_api_agentic")
    assert m["unified.combined_regression"] == 0.0
    row = next(r for r in gate_rows(SPECS, m, "merge") if r["metric"] == "unified.combined_regression")
    assert row["status"] == "PASS"
    m, _ = unified_metrics({"combined.score": one - 0.001}, {}, adapters, "task_api_persona", "task_api_agentic")
    assert m["unified.combined_regression"] == pytest.approx(-0.001)


def test_comparison_table_and_pareto():
    def res(role, combined, size=None, passed=False):
        return {"model": {"role": role, "merge": {"merge.size_mb": size, "merge.engine": "mergekit",
                                                  "merge.method": "ties"} if size else None},
                "headline": {"persona": 7.0, "agentic": 0.8, "combined": combined},
                "metrics": {"persona.ab_win_rate": 0.6},
                "gates_summary": {"passed": 3, "failed": 0 if passed else 2, "all_passed": passed,
                                  "failed_metrics": [] if passed else ["agentic.score", "latency.p95_ms"]}}

    data, md = build_comparison({"base": res("base", 0.2), "merges/a": res("merge", 0.6, 500.0, True),
                                 "merges/b": res("merge", 0.5, 20.0), "merges/c": res("merge", 0.4, 500.0)})
    status = {v["model"]: v["status"] for v in data["versions"]}
    assert status["base"] == "reference" and status["merges/a"] == "PASS" and status["merges/b"].startswith("FAIL (2")
    front = {d["candidate"]: d["pareto"] for d in data["decision_matrix"]}
    assert front == {"a": True, "b": True, "c": False}
    assert "| merges/a |" in md and "Decision matrix" in md


# -- the stages and the CLI ---------------------------------------------------------------------------

def _run_stage(name: str, *args: str) -> None:
    spec = importlib.util.spec_from_file_location(f"stage_{name}", REPO / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(*args)


def test_stages_write_their_declared_outputs(tmp_path, monkeypatch, tiny_llama_dir, tiny_adapter):
    """evaluate_base -> evaluate_adapter -> evaluate_merge -> compare_candidates in a scratch project."""
    shutil.copytree(REPO / "specs", tmp_path / "specs")
    shutil.copytree(tiny_llama_dir, tmp_path / paths.BASE_DIR)
    for a in SPECS.adapters:
        shutil.copytree(tiny_adapter, tmp_path / paths.adapter_dir(a))
    shutil.copytree(tiny_adapter, tmp_path / paths.merge_dir("m1"))
    (tmp_path / paths.merge_dir("m1") / "merge_sources.json").write_text(json.dumps({"engine": "peft"}))
    (tmp_path / paths.merge_metrics("m1")).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / paths.merge_metrics("m1")).write_text(json.dumps(
        {"merge.engine": "peft", "merge.method": "cat", "merge.size_mb": 0.2}))
    for kind, path in paths.EVAL_SUITES.items():
        write_jsonl(tmp_path / path, [r for r in CASE_ROWS if r["kind"] == kind])
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["evaluate"] = json.loads(TINY.model_dump_json())
    params["merge"]["candidates"] = {"m1": {"engine": "peft", "method": "cat",
                                            "weights": dict.fromkeys(SPECS.adapters, 0.5)}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(tmp_path)

    # the latency turn guesses tokens from the build_draft table: without it, a clear error
    with pytest.raises(FteforgeError, match=r"data/draft/ngrams\.json: not found - run `dvc repro build_draft`"):
        _run_stage("evaluate_base")
    from transformers import AutoTokenizer

    from fteforge.evaluation.draft import NgramDraft, vocab_digest

    NgramDraft.build([[1, 2, 3, 4]], 2, vocab_digest(AutoTokenizer.from_pretrained(tiny_llama_dir))).save(
        paths.DRAFT_TABLE)
    _run_stage("evaluate_base")
    for a in SPECS.adapters:
        _run_stage("evaluate_adapter", a)
    _run_stage("evaluate_merge", "m1")
    _run_stage("compare_candidates")

    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for model_id, stage_name in [("base", "evaluate_base"), (paths.adapter_model_id("${key}"), "evaluate_adapter"),
                                 (paths.merge_model_id("${key}"), "evaluate_merge")]:
        declared = dvc[stage_name].get("do", dvc[stage_name])
        outs = {next(iter(o)) if isinstance(o, dict) else o for o in declared["outs"]}
        assert {str(paths.evaluation_cases(model_id))} == outs
        # the full results are a DVC metrics file too, so `dvc exp show` can list any of their numbers
        assert [next(iter(m)) for m in declared["metrics"]] == [str(paths.evaluation_results(model_id)),
                                                                 str(paths.eval_metrics(model_id))]
    merged = json.loads(paths.evaluation_results(paths.merge_model_id("m1")).read_text())
    assert merged["model"]["merge"]["merge.size_mb"] == 0.2 and merged["ab_vs_base"]["n"] == 2
    assert merged["preservation"]["persona"]["adapter_name"] == SPECS.persona.adapter
    # the merge IS the adapter here, so it keeps exactly what the adapter scored
    assert merged["preservation"]["agentic"]["merged"] == merged["preservation"]["agentic"]["adapter"]
    assert merged["scorer_validation"]["persona_scorer_accuracy"] > 0.5
    flat = json.loads(paths.eval_metrics(paths.merge_model_id("m1")).read_text())
    assert {"eval.persona", "eval.agentic", "eval.combined", "eval.gates_passed"} <= set(flat)
    assert {f"gate.{g['metric']}" for g in merged["gates"]} <= set(flat)
    assert all(set(row) == {"id", "score"} for row in merged["persona_case_scores"])
    assert len(paths.evaluation_cases("base").read_text().splitlines()) == len(CASES)
    comparison = json.loads(paths.COMPARISON_JSON.read_text())
    assert [v["model"] for v in comparison["versions"]] == ["base", *map(paths.adapter_model_id, params["train"]["adapters"]),
                                                          "merges/m1"]
    assert paths.COMPARISON_MD.read_text().startswith("# Evaluation")


def test_merge_stage_without_base_results_names_the_stage_to_run(tmp_path, monkeypatch):
    from fteforge.errors import FteforgeError
    from fteforge.evaluation.pipeline import read_results

    monkeypatch.chdir(tmp_path)
    with pytest.raises(FteforgeError, match="dvc repro evaluate_adapter@x"):
        read_results(paths.adapter_model_id("x"), "evaluating merges/m")


def test_cli_exit_codes(tmp_path, tiny_llama_dir, tiny_adapter, capsys):
    out = tmp_path / "results.json"
    missing = tmp_path / "nope.jsonl"
    assert cli_main(["evaluate", "--model", str(tiny_llama_dir), "--suite", str(missing), "--out", str(out)]) == 2
    assert str(missing) in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "kind": "persona"}\n')
    assert cli_main(["evaluate", "--model", str(tiny_llama_dir), "--suite", str(bad), "--out", str(out)]) == 2
    assert "bad.jsonl" in capsys.readouterr().err
    assert cli_main(["evaluate", "--model", str(tmp_path), "--suite", str(bad), "--out", str(out)]) == 2

    suite = tmp_path / "suite.jsonl"
    write_jsonl(suite, CASE_ROWS[:4])
    args = ["evaluate", "--model", str(tiny_adapter), "--suite", str(suite), "--out", str(out), "--threads", "1",
            "--batch-size", "4", "--no-latency", "--base", str(tiny_llama_dir)]
    assert cli_main(args) == 0
    r = json.loads(out.read_text())
    assert r["model"]["format"] == "adapter" and r["ab_vs_base"]["n"] == 2
    statuses = {g["metric"]: g["status"] for g in r["gates"]}
    assert statuses["persona.overall_score"] in ("PASS", "FAIL") and statuses["latency.p95_ms"] == "not applicable"
    assert out.with_suffix(".cases.jsonl").is_file()
    assert "gates:" in capsys.readouterr().err


def test_shipped_evaluate_params_validate():
    from fteforge.params import load_params

    p = load_params("evaluate", EvaluateParams, REPO / "params.yaml")
    assert p.latency.runs >= 30 and p.max_cases is None
