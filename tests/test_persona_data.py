"""Persona dataset: coverage, quality filter, balancing, real tool results, diversity, generators, eval suites."""

from __future__ import annotations

import collections
import json
import math
import random
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fteforge.data.generators import GENERATORS, make_generator
from fteforge.data.generators.template import NOCALL, TRAIN_USERS, TemplateGenerator
from fteforge.data.persona import (
    EVAL_NOCALL_USERS,
    EVAL_USERS,
    build_combined_eval_cases,
    build_persona_dataset,
    build_persona_eval_cases,
    distinct_n,
    no_call_reply,
    render_card,
    render_review_sample,
    scenario_quotas,
)
from fteforge.data.world import TITLES
from fteforge.errors import FteforgeError
from fteforge.evaluation.persona_scorer import PersonaScorer
from fteforge.specs import load_spec_set
from fteforge.specs.common import ScenarioCategory
from fteforge.taskapi import TaskAPI, dump_result, seed_tasks

SPECS = load_spec_set(Path(__file__).resolve().parents[1] / "specs")
PERSONA, AGENTIC, TOOLS = SPECS.persona, SPECS.agentic, SPECS.tools
MATRIX = PERSONA.scenario_matrix.categories
TASK_CATEGORIES = {"task_creation", "task_completion", "task_updates", "task_queries"}
BAD_REPLIES = [
    "Task created.",
    "Obviously you should have started earlier, it's not that hard.",
    "Certainly! As an AI language model, I hope this helps.",
]
SENTENCE = re.compile(r'(?<=[.!?])\s+(?=[A-Z"])')


@pytest.fixture(scope="module")
def built():
    return build_persona_dataset(PERSONA, AGENTIC, TOOLS)


def share(cat: str) -> int:
    return math.ceil(MATRIX[cat].target_count / len(MATRIX[cat].scenarios))


# -- coverage and quality ---------------------------------------------------------------------------------

def test_every_scenario_reaches_its_share_and_the_totals(built):
    examples, _, card = built
    counts = collections.Counter((e.category, e.scenario) for e in examples)
    for cat, c in MATRIX.items():
        for scen in c.scenarios:
            assert counts[(cat, scen)] >= share(cat), (cat, scen)
        assert sum(counts[(cat, s)] for s in c.scenarios) >= c.target_count, cat
    assert len(examples) >= 200
    assert card["total"] == len(examples)
    assert all(c["count"] >= c["target"] for c in card["categories"].values())
    assert len({e.id for e in examples}) == len(examples)
    assert all(re.fullmatch(rf"persona-{e.category}-\d{{4}}", e.id) for e in examples)


def test_quotas_top_up_evenly_to_min_total():
    quotas = scenario_quotas(PERSONA, 200)
    assert sum(quotas.values()) == max(200, sum(share(c) * len(MATRIX[c].scenarios) for c in MATRIX))
    assert max(quotas.values()) - min(quotas.values()) <= 1
    assert all(quotas[(c, s)] >= share(c) for c in MATRIX for s in MATRIX[c].scenarios)


def test_every_kept_example_passes_the_scorer_and_is_the_agent_loop(built):
    examples, _, _ = built
    scorer = PersonaScorer(PERSONA)
    for e in examples:
        score = scorer.score(e.target["content"], user=e.user)
        assert score.total >= PERSONA.quality_filter_min, (e.id, e.target["content"], score.reasons)
        assert score.total == e.meta["score"] and e.meta["generator"] == "template"
        assert e.messages[0] == {"role": "system", "content": AGENTIC.system_prompt}
        assert e.train_turn == len(e.messages) - 1 and e.adapter == PERSONA.adapter
        assert 1 <= len(SENTENCE.split(e.target["content"])) <= 3, e.target["content"]
        has_call = any(m.get("tool_calls") for m in e.messages)
        assert has_call == (e.category in TASK_CATEGORIES), e.id
        assert len(e.messages) == (5 if has_call else 3)


def test_avoided_phrases_never_appear(built):
    examples, _, _ = built
    avoided = [a.lower().rstrip("!") for a in PERSONA.vocabulary.avoided]
    for e in examples:
        reply = e.target["content"].lower()
        assert not [a for a in avoided if a in reply], (e.id, reply)


def test_task_examples_hold_real_tool_results_and_the_reply_names_the_task(built):
    examples, _, _ = built
    checked = collections.Counter()
    for e in examples:
        if e.category not in TASK_CATEGORIES:
            continue
        call = e.messages[2]["tool_calls"][0]["function"]
        with TaskAPI(":memory:", tools=TOOLS, today=e.today) as api:
            seed_tasks(api, e.setup_tasks)
            result = api.execute(call["name"], call["arguments"])
        assert result["ok"], (e.id, result)
        assert e.messages[3] == {"role": "tool", "content": dump_result(result)}, e.id
        reply = e.target["content"]
        if "task" in result:
            assert result["task"]["title"] in reply, (e.id, reply)
        elif result["count"]:
            assert result["tasks"][0]["title"] in reply, (e.id, reply)
        else:
            assert "no " in reply.lower() or "nothing" in reply.lower(), (e.id, reply)
        checked[e.category] += 1
    assert set(checked) == TASK_CATEGORIES


def test_a_quoted_title_with_a_creating_verb_makes_a_new_task(built):
    """Minimal pairs with the update phrasings, which also quote a title and add "make it ...": a creating
    verb (record, jot down, write down) means create_task, for a title the list does not hold yet."""
    rows = [e for e in built[0] if re.match(r"(Record|Jot down|Write down) ", e.user)]
    assert {e.category for e in rows} == {"task_creation"}
    assert any("make it" in e.user for e in rows)
    for e in rows:
        call = e.messages[2]["tool_calls"][0]["function"]
        assert call["name"] == "create_task", e.user
        assert call["arguments"]["title"] not in {t["title"] for t in e.setup_tasks}, e.user


def test_multiple_task_requests_make_one_call_and_offer_the_next(built):
    examples, _, _ = built
    multi = [e for e in examples if e.scenario in ("Create multiple tasks at once", "Complete multiple tasks")]
    assert multi
    for e in multi:
        assert sum(bool(m.get("tool_calls")) for m in e.messages) == 1
        first = json.loads(e.messages[3]["content"])["task"]["title"]
        quoted = re.findall(r'"([^"]+)"', e.target["content"])
        assert first in quoted and len(set(quoted)) == 2, e.target["content"]


def test_diversity_of_replies_and_users(built):
    examples, _, card = built
    replies = [e.target["content"] for e in examples]
    assert card["diversity"]["replies"]["distinct_2"] == distinct_n(replies, 2)
    # measured: distinct-2 of replies 0.38, of user texts 0.55 at the defaults
    assert card["diversity"]["replies"]["distinct_2"] > 0.3
    assert card["diversity"]["users"]["distinct_2"] > 0.4
    assert card["unique_replies"] >= 0.95 * len(examples)
    assert len({(e.user, e.target["content"]) for e in examples}) == len(examples)


def test_deterministic_for_a_seed():
    a, _, card_a = build_persona_dataset(PERSONA, AGENTIC, TOOLS, seed=7)
    b, _, card_b = build_persona_dataset(PERSONA, AGENTIC, TOOLS, seed=7)
    c, _, _ = build_persona_dataset(PERSONA, AGENTIC, TOOLS, seed=8)
    assert [e.model_dump() for e in a] == [e.model_dump() for e in b] and card_a == card_b
    assert [e.model_dump() for e in a] != [e.model_dump() for e in c]


# -- the filter and the balancing ---------------------------------------------------------------------------

class Planted:
    """Template candidates plus planted violating replies and one tampered tool result per call."""

    name = "planted"

    def __init__(self):
        self.inner = TemplateGenerator()
        self.calls = 0

    def generate(self, spec, agentic_spec, tools, category, scenario, n, rng):
        out = self.inner.generate(spec, agentic_spec, tools, category, scenario, n, rng)
        self.calls += 1
        planted = [dict(out[0], reply=bad) for bad in BAD_REPLIES]
        if out[0]["result"] is not None:
            fake = json.loads(json.dumps(out[0]["result"]))
            fake.setdefault("task", {})["title"] = "Invented title"
            planted.append(dict(out[0], result=fake))
        return planted + out


def test_filter_drops_planted_bad_replies_and_invented_results():
    gen = Planted()
    examples, rejected, card = build_persona_dataset(PERSONA, AGENTIC, TOOLS, generator=gen)
    kept = {e.target["content"] for e in examples}
    assert not kept & set(BAD_REPLIES)
    low = [r for r in rejected if r["reply"] in BAD_REPLIES]
    assert len(low) == len(BAD_REPLIES) * gen.calls
    assert all(r["reason"].startswith("score below quality_filter_min") and r["score"] < 6 for r in low)
    invented = [r for r in rejected if r["reason"] == "tool result differs from the real Task API result"]
    assert len(invented) == sum(len(MATRIX[c].scenarios) for c in TASK_CATEGORIES)
    assert card["rejected"] == len(rejected) and card["generator"] == "planted"
    assert sum(card["score_histogram"]["rejected"].values()) >= len(low)
    assert card["filter_pass_rate"] < 1
    assert all(e.meta["score"] >= 6 for e in examples)


class Stingy:
    """Only one usable candidate the first time `target` is asked for; never any when `never`."""

    name = "stingy"

    def __init__(self, target: str, never: bool = False):
        self.inner, self.target, self.never = TemplateGenerator(), target, never
        self.calls = collections.Counter()

    def generate(self, spec, agentic_spec, tools, category, scenario, n, rng):
        out = self.inner.generate(spec, agentic_spec, tools, category, scenario, n, rng)
        self.calls[scenario] += 1
        if scenario == self.target and (self.never or self.calls[scenario] == 1):
            keep = 0 if self.never else 1
            out = out[:keep] + [dict(c, reply="Task created.") for c in out[keep:]]
        return out


def test_balance_fills_a_gap_by_generating_more():
    gen = Stingy("Search by keyword")
    examples, rejected, card = build_persona_dataset(PERSONA, AGENTIC, TOOLS, generator=gen)
    count = sum(e.scenario == "Search by keyword" for e in examples)
    assert count == scenario_quotas(PERSONA, 200)[("task_queries", "Search by keyword")]
    assert gen.calls["Search by keyword"] >= 2
    assert card["fill_rounds"]["task_queries/Search by keyword"] >= 1
    assert any(r["scenario"] == "Search by keyword" for r in rejected)


def test_a_scenario_that_cannot_reach_its_share_is_named():
    with pytest.raises(FteforgeError, match=r"User is rude.*quality filter"):
        build_persona_dataset(PERSONA, AGENTIC, TOOLS, generator=Stingy("User is rude", never=True))


def test_unknown_category_is_a_clear_error():
    cats = dict(MATRIX) | {"time_travel": ScenarioCategory(priority="low", target_count=5, scenarios=["Undo yesterday"])}
    spec = PERSONA.model_copy(update={"scenario_matrix": PERSONA.scenario_matrix.model_copy(update={"categories": cats})})
    with pytest.raises(FteforgeError) as err:
        build_persona_dataset(spec, AGENTIC, TOOLS)
    msg = str(err.value)
    assert "time_travel" in msg and "task_creation" in msg and "openai_compatible" in msg and "template" in msg


def test_generator_registry_and_params():
    assert {"template", "openai_compatible"} <= set(GENERATORS.names())
    with pytest.raises(FteforgeError, match=r"persona_data\.generator_params\.bogus"):
        make_generator("template", {"bogus": 1})
    with pytest.raises(FteforgeError, match="unknown persona generator"):
        make_generator("nope")
    with pytest.raises(FteforgeError, match=r"generator_params\.base_url"):
        make_generator("openai_compatible", {})


# -- openai_compatible against a local stub -------------------------------------------------------------------

CANNED = ("Great choice! I've added that task to your list, and you're on track. "
          "Want me to add a due date next?")


class _Stub(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server API)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        status, payload = self.server.response
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def stub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    server.requests, server.response = [], (200, {"choices": [{"message": {"role": "assistant", "content": CANNED}}]})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _teacher(server, **extra):
    return make_generator("openai_compatible", {"base_url": f"http://127.0.0.1:{server.server_port}/v1",
                                                "model": "teacher-x", "timeout_s": 5, **extra})


def test_openai_compatible_round_trip(stub, monkeypatch):
    monkeypatch.setenv("TEACHER_KEY", "sekret")
    gen = _teacher(stub, api_key_env="TEACHER_KEY", temperature=0.3)
    out = gen.generate(PERSONA, AGENTIC, TOOLS, "task_creation", "Create task with due date", 2, random.Random(1))
    assert [c["reply"] for c in out] == [CANNED, CANNED]
    assert all(c["call"][0] == "create_task" and c["result"]["ok"] for c in out)
    req = stub.requests[0]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sekret"
    assert req["body"]["model"] == "teacher-x" and req["body"]["temperature"] == 0.3
    system, prompt = (m["content"] for m in req["body"]["messages"])
    assert "TaskMaster" in system and all(t.name in system for t in PERSONA.traits)
    assert "You should" in system and "ACKNOWLEDGE" in system
    assert out[0]["user"] in prompt and dump_result(out[0]["result"]) in prompt

    # a scenario the templates do not know: the teacher writes the user message too
    stub.response = (200, {"choices": [{"message": {"content": json.dumps({"user": "Can I undo yesterday?",
                                                                            "reply": CANNED})}}]})
    (cand,) = gen.generate(PERSONA, AGENTIC, TOOLS, "time_travel", "Undo yesterday", 1, random.Random(2))
    assert cand["user"] == "Can I undo yesterday?" and cand["reply"] == CANNED and cand["call"] is None


def test_openai_compatible_errors_name_the_url_and_the_key(stub):
    stub.response = (500, {"error": "boom"})
    with pytest.raises(FteforgeError, match=r"HTTP 500.*127\.0\.0\.1.*persona_data\.generator_params\.base_url"):
        _teacher(stub).generate(PERSONA, AGENTIC, TOOLS, "edge_cases", "User criticizes TaskMaster", 1, random.Random(0))
    stub.response = (200, b"not json")
    with pytest.raises(FteforgeError, match="unexpected response"):
        _teacher(stub).generate(PERSONA, AGENTIC, TOOLS, "boundary_testing", "User is rude", 1, random.Random(0))

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gen = make_generator("openai_compatible", {"base_url": f"http://127.0.0.1:{port}/v1", "model": "m", "timeout_s": 2})
    with pytest.raises(FteforgeError) as err:
        gen.generate(PERSONA, AGENTIC, TOOLS, "boundary_testing", "User is rude", 1, random.Random(0))
    msg = str(err.value)
    assert "unreachable" in msg and f"127.0.0.1:{port}" in msg and "persona_data.generator_params.base_url" in msg


# -- no-call replies for the agentic builder --------------------------------------------------------------------

@pytest.mark.parametrize("scenario,users", [
    ("Greetings and chit-chat", ["Hi!", "Good morning, TaskMaster.", "Thanks a lot!", "I finished my thesis!",
                                 "How's your day going?"]),
    ("Productivity coaching questions", ["How do I prioritize my week?", "I'm overwhelmed with work.",
                                         "I keep getting distracted by my phone.", "I can't get started on anything.",
                                         "How do I manage my time better?"]),
    ("Out-of-scope requests", ["What's the weather in Paris?", "Book me a taxi.", "Write me a poem about cats."]),
])
def test_no_call_reply_scores_well(scenario, users):
    scorer = PersonaScorer(PERSONA)
    rng = random.Random(0)
    for user in users:
        for _ in range(8):
            reply = no_call_reply(scenario, user, rng)
            score = scorer.score(reply, user=user)
            assert score.total >= 6 and not score.violations, (user, reply, score.reasons)
    with pytest.raises(FteforgeError, match="unknown no-call scenario"):
        no_call_reply("Delete things", "x", rng)


# -- rendering --------------------------------------------------------------------------------------------------

def test_card_and_review_sample_render(built):
    examples, _, card = built
    md = render_card(card)
    assert md.startswith("# Persona dataset card") and "distinct-2" in md and "User is rude" in md
    assert sum(card["score_histogram"]["kept"].values()) == len(examples)
    review = render_review_sample(examples, k=10, seed=3)
    assert review.count("\n## ") == 10 and "**TaskMaster:**" in review and "**Tool result:**" in review
    assert review == render_review_sample(examples, k=10, seed=3)


# -- held-out evaluation suites ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def suites():
    return build_persona_eval_cases(PERSONA), build_combined_eval_cases(PERSONA, AGENTIC, TOOLS)


def test_eval_suites_sizes_ids_and_coverage(suites):
    persona, combined = suites
    assert len(persona) >= 50 and len(combined) >= 20
    assert [c.id for c in persona] == [f"persona-eval-{i:03d}" for i in range(len(persona))]
    assert [c.id for c in combined] == [f"combined-eval-{i:03d}" for i in range(len(combined))]
    assert {c.category for c in persona} == set(MATRIX)
    inputs = [c.input for c in persona]
    assert len(set(inputs)) == len(inputs)
    assert {"Hello, TaskMaster!", "I just finished a big project!"} <= set(inputs)
    traits = {t.name for t in PERSONA.traits}
    for c in persona + combined:
        assert c.expected_traits and set(c.expected_traits) <= traits
        assert {"condescending", "defensive", "generic_ai_phrases"} <= set(c.not_expected)
        assert c.today
    for c in persona:
        assert (c.expected_tool is not None) == (c.category in TASK_CATEGORIES)
    assert {c.kind for c in persona} == {"persona"} and {c.kind for c in combined} == {"combined"}


def test_combined_cases_are_answerable_tool_requests(suites):
    _, combined = suites
    assert {c.category for c in combined} == TASK_CATEGORIES
    for c in combined:
        assert c.expected_tool in TOOLS.names and c.setup_tasks is not None
        with TaskAPI(":memory:", tools=TOOLS, today=c.today) as api:
            seed_tasks(api, c.setup_tasks)
            # the state rebuilds through the Task API, and a title the user spelled out matches its regex
            if "title" in c.expected_args:
                assert re.search(c.expected_args["title"], c.input), c.id


def test_eval_is_held_out_by_construction(built, suites):
    examples, _, _ = built
    persona, combined = suites
    train_templates = {t for ts in TRAIN_USERS.values() for t in ts}
    train_templates |= {u for sc in NOCALL.values() for vs in sc.values() for v in vs for u in v["users"]}
    eval_templates = {t for ts in EVAL_USERS.values() for t in ts} | {u for us in EVAL_NOCALL_USERS.values() for u in us}
    assert not train_templates & eval_templates
    train_users = {e.user for e in examples}
    train_titles = {t.casefold() for t in TITLES["train"]}
    for c in persona + combined:
        assert c.input not in train_users, c.input
        text = c.input.casefold()
        assert not [t for t in train_titles if t in text], c.input
        assert not {t["title"].casefold() for t in c.setup_tasks} & train_titles, c.id
