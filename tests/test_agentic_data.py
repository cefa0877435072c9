"""Agentic data: coverage of the scenario matrix, calls that really succeed, held-out eval cases."""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from fteforge.data import agentic
from fteforge.data.agentic import (
    SCENARIOS,
    TEMPLATES,
    build_agentic_dataset,
    build_agentic_eval_cases,
    eval_cases_with_reference,
)
from fteforge.data.leakage import find_leaks
from fteforge.data.world import TITLES, TODAYS
from fteforge.dates import arguments_validator, date_fields, resolve_date, resolve_dates
from fteforge.errors import FteforgeError
from fteforge.specs import AgenticSpec, load_spec_set
from fteforge.taskapi import TaskAPI, seed_tasks

SPECS = Path(__file__).resolve().parents[1] / "specs"


@pytest.fixture(scope="module")
def specs():
    return load_spec_set(SPECS)


@pytest.fixture(scope="module")
def built(specs):
    return build_agentic_dataset(specs.agentic, specs.tools, seed=0)


@pytest.fixture(scope="module")
def examples(built):
    return built[0]


@pytest.fixture(scope="module")
def with_ref(specs):
    return eval_cases_with_reference(specs.agentic, specs.tools)


def calls(examples):
    return [ex for ex in examples if ex.meta["tool"] is not None]


def as_string(value) -> str:
    return json.dumps(value) if isinstance(value, list) else str(value)


def replay(tools, today, setup, tool, args):
    with TaskAPI(":memory:", tools=tools, today=today) as api:
        seed_tasks(api, setup)
        return api.execute(tool, args)


def spec_with(spec: AgenticSpec, edit) -> AgenticSpec:
    data = spec.model_dump()
    edit(data["scenario_matrix"])
    return AgenticSpec.model_validate(data)


# -- training data ---------------------------------------------------------------------------------

def test_counts_meet_targets_and_spread_over_scenarios(specs, examples, built):
    matrix = specs.agentic.scenario_matrix
    stats = built[1]
    for name, cat in matrix.categories.items():
        assert stats["per_category"][name] >= cat.target_count
        for scenario in cat.scenarios:
            assert stats["per_scenario"][scenario] >= cat.target_count // len(cat.scenarios)
    ids = [ex.id for ex in examples]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(rf"agentic-{ex.category}-\d{{4}}", ex.id) for ex in examples)
    assert {ex.adapter for ex in examples} == {specs.agentic.adapter}
    assert all(ex.train_turn == 2 and len(ex.messages) == 3 for ex in examples)
    assert all(ex.today in TODAYS["train"] and len(ex.setup_tasks) == 5 for ex in examples)


def test_scale_scales_counts(specs):
    small, stats = build_agentic_dataset(specs.agentic, specs.tools, scale=0.1)
    for name, cat in specs.agentic.scenario_matrix.categories.items():
        assert stats["per_category"][name] >= -(-cat.target_count // 10)
    assert stats["no_call_fraction"] >= specs.agentic.scenario_matrix.min_no_call_fraction
    assert len(small) < 60


def test_every_tool_and_argument_is_used(specs, examples, built):
    used = {(ex.meta["tool"], arg) for ex in calls(examples) for arg in ex.meta["args"]}
    for tool in specs.tools.tools:
        for arg in tool.argument_names:
            assert (tool.name, arg) in used, f"{tool.name}.{arg} never used"
            assert built[1]["arg_coverage"][tool.name][arg] > 0
    assert built[1]["uncovered_args"] == []


def test_every_call_is_schema_valid_and_really_succeeds(specs, examples):
    validators = {t.name: arguments_validator(t.parameters) for t in specs.tools.tools}
    for ex in calls(examples):
        tool, args = ex.meta["tool"], ex.meta["args"]
        assert not list(validators[tool].iter_errors(args)), (ex.id, args)
        assert list(args) == [k for k in specs.tools.get(tool).argument_names if k in args]  # schema order
        call = ex.messages[2]["tool_calls"][0]["function"]
        assert call == {"name": tool, "arguments": args}
        assert ex.meta["tool_result"]["ok"] is True
    # Replaying a sample on a fresh Task API seeded with setup_tasks gives the stored result.
    for ex in calls(examples)[::7]:
        result = replay(specs.tools, ex.today, ex.setup_tasks, ex.meta["tool"], ex.meta["args"])
        assert result == ex.meta["tool_result"], ex.id


def test_agentic_examples_stop_at_the_call(examples):
    for ex in calls(examples):
        assert [m["role"] for m in ex.messages] == ["system", "user", "assistant"]
        assert ex.target["tool_calls"] and ex.target["content"] == ""


def test_generated_date_phrases_are_the_users_words_and_resolve_forward():
    rng = random.Random(0)
    for _ in range(300):
        today = dt.date.fromisoformat(rng.choice(TODAYS["train"]))
        for form in ("prep", "to", "due"):
            phrase, said = agentic._date_phrase(rng, today, "any", form)
            assert phrase.endswith(said)
            assert resolve_date(said, today) >= today.isoformat()
            if form == "to":
                assert not phrase.startswith("in ")


def test_date_arguments_are_copied_from_the_request(specs, examples):
    """The model copies the day as said; the Task API (not the model) turns it into a date."""
    dated = 0
    for ex in calls(examples):
        fields = date_fields(specs.tools.get(ex.meta["tool"]).parameters)
        for key in fields:
            said = ex.meta["args"].get(key)
            if said is None:
                continue
            dated += 1
            resolved = resolve_date(said, ex.today)
            fixed = {"yesterday", "today", "the end of the week"} | {f"in {n} days" for n in range(2, 15)}
            assert said.casefold() in ex.user.casefold() or said in fixed, (ex.user, key, said)
            if ex.meta["tool"] != "list_tasks":
                assert ex.meta["tool_result"]["task"]["due_date"] == resolved, ex.id
    assert dated > 30


def test_task_ids_are_numeric_ids_and_seeded_titles(examples):
    ids, titles = 0, 0
    for ex in calls(examples):
        task_id = ex.meta["args"].get("task_id")
        if task_id is None:
            continue
        seeded = [t["title"].casefold() for t in ex.setup_tasks]
        if task_id.isdigit():
            ids += 1
            assert 1 <= int(task_id) <= len(ex.setup_tasks)
        else:
            titles += 1
            assert task_id.casefold() in seeded
            assert task_id[0].isupper()  # titles in arguments are capitalised (module docstring)
    assert ids >= 20 and titles >= 20


def test_titles_follow_the_users_words(examples):
    for ex in calls(examples):
        title = ex.meta["args"].get("title")
        if title:
            assert title[0].isupper() and title[1:] in ex.user


def test_no_call_share_and_replies(specs, examples, built):
    no_call = [ex for ex in examples if ex.meta["tool"] is None]
    assert len(no_call) / len(examples) >= specs.agentic.scenario_matrix.min_no_call_fraction
    assert built[1]["no_call_fraction"] >= 0.2
    for ex in no_call:
        assert [m["role"] for m in ex.messages] == ["system", "user", "assistant"]
        reply = ex.target["content"]
        assert "tool_calls" not in ex.target and reply
        assert "you should" not in reply.lower() and reply.rstrip().endswith("?")
    assert {ex.scenario for ex in no_call} == set(specs.agentic.scenario_matrix.categories["no_call"].scenarios)


def test_no_call_replies_come_from_the_callback(specs):
    seen = []

    def reply(scenario, user, rng):
        seen.append((scenario, user))
        return f"Glad you asked ({scenario}). Want to look at your list?"

    examples, _ = build_agentic_dataset(specs.agentic, specs.tools, scale=0.2, no_call_replies=reply)
    no_call = [ex for ex in examples if ex.meta["tool"] is None]
    assert len(seen) == len(no_call)
    assert all(ex.target["content"].startswith("Glad you asked") for ex in no_call)
    assert {ex.meta["reply_source"] for ex in no_call} == {"custom"}


def test_no_call_share_is_topped_up_or_refused(specs):
    def shrink(matrix):
        matrix["categories"]["no_call"]["target_count"] = 5

    _, stats = build_agentic_dataset(spec_with(specs.agentic, shrink), specs.tools, scale=0.3)
    assert stats["no_call_fraction"] >= 0.2

    def drop(matrix):
        del matrix["categories"]["no_call"]

    with pytest.raises(FteforgeError, match="tools: \\[\\]"):
        build_agentic_dataset(spec_with(specs.agentic, drop), specs.tools)


def test_uncovered_arguments_are_named(specs):
    def no_recurrence(matrix):
        matrix["categories"]["update"]["scenarios"].remove("Change recurrence")

    with pytest.raises(FteforgeError, match=r"no example uses update_task\.recurrence"):
        build_agentic_dataset(spec_with(specs.agentic, no_recurrence), specs.tools)


def test_unknown_scenario_is_refused(specs):
    def unknown(matrix):
        matrix["categories"]["create"]["scenarios"].append("Create by interpretive dance")

    with pytest.raises(FteforgeError, match="interpretive dance"):
        build_agentic_dataset(spec_with(specs.agentic, unknown), specs.tools)


def test_deterministic_for_a_seed(specs, examples):
    again, _ = build_agentic_dataset(specs.agentic, specs.tools, seed=0)
    other, _ = build_agentic_dataset(specs.agentic, specs.tools, seed=1)
    assert [e.model_dump() for e in again] == [e.model_dump() for e in examples]
    assert [e.user for e in other] != [e.user for e in examples]


def test_phrasings_are_varied(examples, built):
    for name, scn in SCENARIOS.items():
        assert len(scn.train) >= 6, name
        assert len(scn.eval) >= 3, name
    by_scenario: dict[str, set[str]] = {}
    for ex in examples:
        by_scenario.setdefault(ex.scenario, set()).add(ex.meta["template"])
    counts = built[1]["per_scenario"]
    for scenario, templates in by_scenario.items():
        assert len(templates) >= min(6, counts[scenario]), scenario
    stats = built[1]
    assert stats["distinct_user_texts"] >= 0.9 * stats["n_examples"]
    assert 0 < stats["distinct_ngram_ratio"]["1"] < stats["distinct_ngram_ratio"]["3"] <= 1


def test_training_uses_train_entities_only(examples):
    for ex in examples:
        text = ex.user.casefold()
        assert not [t for t in TITLES["eval"] if t.casefold() in text], ex.user
        assert all(t["title"] in TITLES["train"] for t in ex.setup_tasks)


# -- held-out eval cases ---------------------------------------------------------------------------

def test_eval_cases_cover_every_tool_and_no_call(specs, with_ref):
    cases = [c for c, _ in with_ref]
    assert len(cases) >= 60
    assert sum(c.expected_tool is None for c in cases) >= 0.2 * len(cases)
    assert {c.expected_tool for c in cases} - {None} == set(specs.tools.names)
    assert [c.id for c in cases] == [f"agentic-eval-{i:03d}" for i in range(len(cases))]
    for c in cases:
        assert c.kind == "agentic" and c.category in specs.agentic.scenario_matrix.categories
        assert c.today in TODAYS["eval"]
        assert all(t["title"] in TITLES["eval"] for t in c.setup_tasks)
    every_scenario = {s for cat in specs.agentic.scenario_matrix.categories.values() for s in cat.scenarios}
    assert {c.notes for c in cases} == every_scenario  # notes holds the scenario name
    assert build_agentic_eval_cases(specs.agentic, specs.tools) == cases


def test_eval_is_held_out(examples, with_ref):
    cases = [c for c, _ in with_ref]
    train_texts = {ex.user.casefold() for ex in examples}
    assert not [c.input for c in cases if c.input.casefold() in train_texts]
    assert find_leaks([(c.id, c.input) for c in cases], [(ex.id, ex.user) for ex in examples]) == []
    for c in cases:
        text = c.input.casefold()
        assert not [t for t in TITLES["train"] if t.casefold() in text], c.input
    for ex in examples:
        text = ex.user.casefold()
        assert not [t for t in TITLES["eval"] if t.casefold() in text], ex.user


def test_eval_templates_share_nothing_with_training():
    train = {t if isinstance(t, str) else t[0] for tr, _ in TEMPLATES.values() for t in tr}
    held = {t if isinstance(t, str) else t[0] for _, ev in TEMPLATES.values() for t in ev}
    assert not train & held


def test_expected_args_match_the_intended_call(specs, with_ref):
    for case, args in with_ref:
        if case.expected_tool is None:
            assert args is None and case.expected_args == {}
            continue
        result = replay(specs.tools, case.today, case.setup_tasks, case.expected_tool, args)
        assert result["ok"], (case.id, result)
        # The regexes hold the day meant; the intended call names it in the user's words.
        meant = resolve_dates(args, date_fields(specs.tools.get(case.expected_tool).parameters), case.today)
        for arg, pattern in case.expected_args.items():
            assert re.search(pattern, as_string(meant[arg])), (case.id, arg, pattern, meant[arg])
        # Every intended argument is checked, bar the default status.
        assert set(args) - set(case.expected_args) <= {"status"}


def test_expected_args_accept_equivalent_answers_and_reject_wrong_ones(with_ref):
    for case, args in with_ref:
        exp = case.expected_args
        if "task_id" in exp:
            task = next(t for i, t in enumerate(case.setup_tasks, 1) if str(i) == args["task_id"]
                        or t["title"].casefold() == args["task_id"].casefold())
            task_no = case.setup_tasks.index(task) + 1
            assert re.search(exp["task_id"], str(task_no))
            assert re.search(exp["task_id"], task["title"].lower())
            assert not re.search(exp["task_id"], str(task_no + 10))
        if "title" in exp:
            assert re.search(exp["title"], args["title"].lower())
            assert not re.search(exp["title"], args["title"] + " tomorrow")
        if "tags" in exp:
            assert re.search(exp["tags"], json.dumps(list(reversed(args["tags"]))))
            assert not re.search(exp["tags"], json.dumps([*args["tags"], "extra"]))
        if "due_date" in exp:
            wrong = dt.date.fromisoformat(resolve_date(args["due_date"], case.today)) + dt.timedelta(days=1)
            assert not re.search(exp["due_date"], wrong.isoformat())


def test_eval_n_is_respected_and_validated(specs):
    cases = build_agentic_eval_cases(specs.agentic, specs.tools, n=100, seed=7)
    assert len(cases) == 100 and sum(c.expected_tool is None for c in cases) >= 20
    with pytest.raises(FteforgeError, match="cannot hold"):
        build_agentic_eval_cases(specs.agentic, specs.tools, n=5)


def test_framing_wraps_requests_and_changes_nothing_else(specs, examples):
    framed, _ = build_agentic_dataset(specs.agentic, specs.tools, seed=0, framing=0.5)
    assert len(framed) == len(examples)
    changed = 0
    for plain, wrapped in zip(examples, framed, strict=True):
        # the call, the Task API state and the date are the plain example's own
        assert (plain.id, plain.today, plain.setup_tasks, plain.meta["args"]) == \
            (wrapped.id, wrapped.today, wrapped.setup_tasks, wrapped.meta["args"])
        if plain.meta["tool"] is not None:
            assert plain.messages[2] == wrapped.messages[2]
        if wrapped.user != plain.user:
            changed += 1
            assert plain.user in wrapped.user
            head, tail = wrapped.user.split(plain.user, 1)
            assert head in ("", *agentic.FRAME_PREFIXES) and tail in ("", *agentic.FRAME_SUFFIXES)
    assert 0.4 < changed / len(examples) < 0.6
    again, _ = build_agentic_dataset(specs.agentic, specs.tools, seed=0, framing=0.5)
    assert [e.user for e in again] == [e.user for e in framed]


def test_frames_are_train_only(with_ref):
    for case, _ in with_ref:
        text = case.input.casefold()
        assert not [p for p in agentic.FRAME_PREFIXES if text.startswith(p.casefold())], case.input
        assert not [s for s in agentic.FRAME_SUFFIXES if text.endswith(s.casefold())], case.input


@pytest.mark.parametrize("framing", [-0.1, 1.5])
def test_framing_out_of_range_is_refused(specs, framing):
    with pytest.raises(FteforgeError, match="agentic_data.framing"):
        build_agentic_dataset(specs.agentic, specs.tools, scale=0.1, framing=framing)


# -- requests in the persona builder's words -------------------------------------------------------


@pytest.fixture(scope="module")
def with_persona_phrasings(specs):
    return build_agentic_dataset(specs.agentic, specs.tools, seed=0, persona_phrasings=36)


def test_persona_phrasings_append_valid_executed_calls_and_keep_the_rest(specs, examples, with_persona_phrasings):
    from fteforge.data.generators.template import TRAIN_USERS, run_call
    from fteforge.data.persona import EVAL_USERS

    extended, stats = with_persona_phrasings
    assert extended[:len(examples)] == examples  # the matrix examples (and so the persona data's lent ones) stay
    added = extended[len(examples):]
    assert stats["persona_phrased"] == len(added)
    assert all(e.meta["source"] == agentic.PERSONA_PHRASED_SOURCE for e in added)
    added_calls = calls(added)
    assert len(added_calls) == 36
    validators = {t.name: arguments_validator(t.parameters) for t in specs.tools.tools}
    train_templates = {t for ts in TRAIN_USERS.values() for t in ts}
    eval_templates = {t for ts in EVAL_USERS.values() for t in ts}
    for ex in added_calls:
        tool, args = ex.meta["tool"], ex.meta["args"]
        assert not list(validators[tool].iter_errors(args))
        assert run_call(specs.tools, ex.today, ex.setup_tasks, (tool, args))["ok"], ex.user
        assert ex.meta["template"] in train_templates and ex.meta["template"] not in eval_templates
        assert ex.scenario not in agentic.PERSONA_PHRASED_SKIP
        assert ex.category in specs.agentic.scenario_matrix.categories
        assert ex.messages[2] == agentic.conversation(specs.agentic, ex.user, call=(tool, args))[2]
    # round-robin: every single-call persona scenario, none more than once ahead of another
    from fteforge.data.generators.template import TASK_SCENARIOS

    single = {n for names in TASK_SCENARIOS.values() for n in names} - agentic.PERSONA_PHRASED_SKIP
    per_scenario = Counter(e.scenario for e in added_calls)
    assert set(per_scenario) == single and max(per_scenario.values()) - min(per_scenario.values()) <= 1
    assert stats["no_call_fraction"] >= specs.agentic.scenario_matrix.min_no_call_fraction
    assert len(added) - len(added_calls) == 9  # ceil(36 * 0.2 / 0.8)


def test_persona_phrased_requests_use_train_entities_and_miss_the_eval_suites(specs, with_persona_phrasings,
                                                                             with_ref):
    added = [e for e in with_persona_phrasings[0] if e.meta.get("source") == agentic.PERSONA_PHRASED_SOURCE]
    eval_titles = {t.lower() for t in TITLES["eval"]}
    for ex in added:
        assert not [t for t in eval_titles if t in ex.user.lower()], ex.user
    from fteforge.data.persona import build_combined_eval_cases

    cases = [c for c, _ in with_ref] + build_combined_eval_cases(specs.persona, specs.agentic, specs.tools)
    assert find_leaks([(c.id, c.input) for c in cases], [(ex.id, ex.user) for ex in added]) == []


def test_persona_phrasings_are_not_lent_back_to_the_persona_data(specs, with_persona_phrasings, tmp_path,
                                                                monkeypatch):
    import importlib.util

    from fteforge import paths
    from fteforge.data.records import write_jsonl

    spec = importlib.util.spec_from_file_location("build_persona_stage",
                                                  Path(__file__).resolve().parents[1] / "stages/build_persona_dataset.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    monkeypatch.setattr(paths, "AGENTIC_TRAIN", tmp_path / "train.jsonl")
    write_jsonl(tmp_path / "train.jsonl", [e.model_dump() for e in with_persona_phrasings[0]])
    lendable = stage.load_lendable(0.25)
    assert len(lendable) == len(with_persona_phrasings[0]) - with_persona_phrasings[1]["persona_phrased"]
    assert not [e for e in lendable if e.meta.get("source") == agentic.PERSONA_PHRASED_SOURCE]


def test_negative_persona_phrasings_are_refused(specs):
    with pytest.raises(FteforgeError, match="agentic_data.persona_phrasings"):
        build_agentic_dataset(specs.agentic, specs.tools, scale=0.1, persona_phrasings=-1)


def test_a_status_word_in_an_update_frame_is_a_completion(examples):
    """Minimal pairs: "set X to high" changes a field, "set X to done" completes X (update_task has no
    status field). Both halves of each pair are training templates, and the data labels them apart."""
    status = re.compile(r"\b(done|finished)\b")
    update_train = {t for name, (train, _) in TEMPLATES.items() if SCENARIOS[name].tool == "update_task"
                    for t in train if isinstance(t, str)}
    pairs = {"set {ref} to done": "set {ref} to {p}", "change {ref} to finished please": "change {ref} to {p} please",
             "hey, {ref} is finished now": "hey, {ref} is {p} now", "update {ref}: status done": "update {ref}: priority {pv}"}
    for completion, update in pairs.items():
        assert completion in agentic.COMPLETE_TRAIN and update in update_train
    for ex in calls(examples):
        if ex.meta["tool"] == "update_task":
            assert not status.search(" ".join(str(v) for k, v in ex.meta["args"].items() if k != "task_id")), ex.user
    completions = [ex for ex in calls(examples) if ex.meta["template"] in pairs]
    assert completions and {ex.meta["tool"] for ex in completions} == {"complete_task"}
    assert all(status.search(ex.user) for ex in completions)


def test_an_everything_request_naming_a_status_lists_all(specs):
    scale = yaml.safe_load((SPECS.parent / "params.yaml").read_text())["agentic_data"]["scale"]
    examples, _ = build_agentic_dataset(specs.agentic, specs.tools, seed=0, scale=scale)
    rows = [ex for ex in calls(examples) if ex.scenario.lower() == "list by status" and ex.meta["args"].get("status") == "all"]
    assert any(re.search(r"\b(done|finished)\b", ex.user) for ex in rows)


def test_a_quoted_title_after_a_creating_verb_is_a_new_task(examples):
    """Update frames quote existing titles ('set "X" to high'); these templates quote a new one, with the
    same kind of attribute clause after it, and the call is always create_task for a title not yet listed."""
    quoted = [t for t in agentic.CREATE_TRAIN if '"{title}"' in t and not t.startswith(("please put", "real quick"))]
    assert len(quoted) >= 4
    rows = [ex for ex in calls(examples) if ex.meta["template"] in quoted]
    assert rows and {ex.meta["tool"] for ex in rows} == {"create_task"}
    for ex in rows:
        title = re.search(r'"([^"]+)"', ex.user)[1]
        assert ex.meta["args"]["title"].lower() == title.lower(), ex.user
        assert title.lower() not in {t["title"].lower() for t in ex.setup_tasks}, ex.user
    assert any(set(ex.meta["args"]) - {"title"} for ex in rows)  # an attribute clause follows the title
