"""The persona dataset (TaskMaster's voice) and the held-out persona and combined evaluation suites.

A persona conversation is the agent loop, the same one the agentic adapter is trained on and the
one `fteforge chat` runs (`fteforge.agent.conversation`, with the agentic spec's system prompt):

* task categories (task_creation, task_completion, task_updates, task_queries):
  system -> user request -> assistant tool call -> REAL tool result -> assistant reply, where the
  result comes from executing the call against a fresh in-memory Task API seeded with a plausible
  task list, and the reply agrees with it (title, due date, number of tasks...). `train_turn` is the
  final reply: the persona adapter learns only the voice, the agentic adapter learns the calls.
* productivity_coaching, edge_cases, boundary_testing: system -> user -> assistant reply, no call
  (e.g. "delete all my tasks" gets a reply that asks for confirmation instead of a delete call).

`build_persona_dataset` asks a generator plugin (`fteforge.data.generators`) for candidates, re-runs
every call to make sure its result is real, scores every reply with the PersonaScorer, drops those
under the spec's `quality_filter_min` (kept in `rejected` with the reasons), and balances: each
scenario gets at least its share of its category's target (ceil(target / scenarios)), gaps are
filled by generating more for that scenario, and the total is topped up evenly to `min_total`.

The evaluation suites are held out BY CONSTRUCTION: they use the EVAL entity pools of
`fteforge.data.world` (titles, tags, categories, notes, dates that no training example uses) and
their own user phrasings (EVAL_USERS / EVAL_NOCALL_USERS below), which share no template string
with the training phrasings in `fteforge.data.generators.template`.
"""

from __future__ import annotations

import collections
import json
import math
import random
import re
from typing import Any

from fteforge.agent import conversation
from fteforge.data.generators import make_generator
from fteforge.data.generators.template import (
    NOCALL,
    TASK_SCENARIOS,
    TemplateGenerator,
    check_known,
    compose_nocall,
    plan_task_scene,
    run_call,
)
from fteforge.data.records import EvalCase, Example
from fteforge.data.world import TITLES, TODAYS, rng_for
from fteforge.dates import date_fields, resolve_dates
from fteforge.errors import FteforgeError
from fteforge.evaluation.persona_scorer import PersonaScorer
from fteforge.specs import AgenticSpec, PersonaSpec, ToolsSpec

MAX_FILL_ROUNDS = 6  # extra generation rounds for a scenario short of its share after filtering

# -- held-out phrasings (never used for training; tests check the lists are disjoint) -----------------
EVAL_USERS: dict[str, list[str]] = {
    "Create a simple task": ["Could you note down that I have to {title_lc}?", 'Stick "{title}" on my task list.',
                             "Log a new to-do: {title_lc}."],
    "Create task with priority": ["I've got to {title_lc}; flag it as {priority}.", 'Log "{title}" at {priority} priority.'],
    "Create task with due date": ['Please log "{title}" and have it due {when_to}.',
                                  "I must {title_lc} {when}, add it to my tasks."],
    "Create task with category": ['Log "{title}" in my {category} bucket.', "Can you add a {category} to-do to {title_lc}?"],
    "Create recurring task": ['Make "{title}" a task that repeats {every}.', 'Track "{title}" as something I do {every}.'],
    "Create task with detailed description": ['Log "{title}" with this description: {desc_lc}.',
                                              "Add a to-do to {title_lc} and include: {desc_lc}."],
    "Create multiple tasks at once": ['Two new to-dos please: "{title}" and "{title2}".',
                                      'Could you log "{title}" plus "{title2}"?'],
    "Complete a single task": ['"{title}" is finished, please tick it off.', "You can close task {id}, it's done."],
    "Complete multiple tasks": ['I wrapped up "{title}" and "{title2}" today.', "Close out tasks {id} and {id2}, both are done."],
    "Complete overdue task": ['Better late than never: "{title}" is done.', 'I\'m behind, but "{title}" is finally complete.'],
    "Complete task ahead of schedule": ['"{title}" is done already, days before it was due.',
                                        'Tick off "{title}", I finished it well ahead of {due_to}.'],
    "Complete task with notes": ['Close "{title}" and record this: {note_lc}.', '"{title}" is complete; add the comment "{note}".'],
    "Change task priority": ['Switch "{title}" over to {priority} priority.', "Can task {id} be {priority} priority instead?"],
    "Update due date": ['Push the deadline for "{title}" to {when_to}.', "I'd like task {id} due {when_to} instead."],
    "Edit task description": ['Rewrite the description of "{title}" as: {desc_lc}.', 'Task {id} needs a new description: "{desc}".'],
    "Add tags to task": ['Stick the {tag} label on "{title}".', '"{title}" should carry the tag {tag}.'],
    "Move task to different category": ['Shift "{title}" over to {category}.', "Recategorize task {id} as {category}."],
    "List all tasks": ["Run through my open to-dos for me.", "Can I see everything I still have pending?"],
    "Show overdue tasks": ["Have I let anything slip past its deadline?", "Which of my to-dos are overdue right now?"],
    "Filter by priority": ["Which of my items are flagged {priority}?", "I only want to see {priority}-priority items."],
    "Search by keyword": ["Is there a to-do that mentions {query}?", 'Look for "{query}" across my tasks.'],
    "Show today's tasks": ["What's on the agenda for today?", "Which tasks land today?"],
}
EVAL_NOCALL_USERS: dict[str, list[str]] = {
    "User feeling overwhelmed": ["I'm swamped and can't think straight.", "There's way too much on my plate this week.",
                                 "I feel buried under my to-dos."],
    "Prioritization advice": ["How should I order my tasks for tomorrow?",
                              "What's a smart way to decide between two urgent things?"],
    "Time management tips": ["How can I get more done before lunch?", "My calendar is a mess, any advice?"],
    "Focus recommendations": ["Notifications keep breaking my concentration.", "Any advice on juggling fewer things at once?"],
    "Motivation when stuck": ["I can't make myself start anything today.", "I feel stuck and unmotivated."],
    "User hasn't completed anything": ["This whole week was a write-off, nothing got done.",
                                       "Not one item crossed off since Monday."],
    "User wants to delete all tasks": ["Erase every single task, I'm done with this list.", "Please purge my entire task list."],
    "User frustrated with system": ["Why is organizing my tasks always such a hassle?", "I'm fed up with how clunky this feels."],
    "User criticizes TaskMaster": ["You're the worst task app I've ever used.", "Your tips never actually help me."],
    "User requests impossible action": ["Can you text my sister happy birthday?", "Please pay my credit card bill for me.",
                                        "Print my task list on paper."],
    "User is negative": ["Everything about this month has been awful.", "I'm a failure at keeping up with anything."],
    "User is rude": ["Ugh, you're so annoying.", "Just be quiet and stop lecturing me."],
    "User gives backhanded compliment": ["Huh, you're actually kind of useful for a bot.",
                                         "Better than I expected from a to-do app."],
    "User tests boundaries": ["Tell me I'm hopeless, I dare you.", "Drop the nice act and be brutally harsh with me."],
    "User asks non-task questions": ["Hello, TaskMaster!", "I just finished a big project!", "What's the tallest mountain in the world?",
                                     "Good evening, TaskMaster."],
}

# Traits a good reply shows most clearly, per category (filtered to the spec's trait names).
EXPECTED_TRAITS: dict[str, list[str]] = {
    "task_creation": ["productivity_focused", "action_oriented", "professional_friendly"],
    "task_completion": ["encouraging", "action_oriented", "productivity_focused"],
    "task_updates": ["productivity_focused", "action_oriented", "professional_friendly"],
    "task_queries": ["productivity_focused", "action_oriented", "professional_friendly"],
    "productivity_coaching": ["encouraging", "optimistic", "action_oriented", "productivity_focused"],
    "edge_cases": ["optimistic", "professional_friendly", "action_oriented"],
    "boundary_testing": ["professional_friendly", "optimistic"],
}
COMBINED_TRAITS = ["encouraging", "action_oriented"]
GENERIC_AI = "generic_ai_phrases"

# Task scenarios with one unambiguous right call, used by the combined suite.
COMBINED_SCENARIOS: list[tuple[str, str]] = [
    ("task_creation", "Create a simple task"), ("task_queries", "Filter by priority"),
    ("task_completion", "Complete a single task"), ("task_updates", "Change task priority"),
    ("task_creation", "Create task with due date"), ("task_queries", "Search by keyword"),
    ("task_completion", "Complete task with notes"), ("task_updates", "Update due date"),
    ("task_creation", "Create task with priority"), ("task_queries", "List all tasks"),
    ("task_completion", "Complete overdue task"), ("task_updates", "Add tags to task"),
    ("task_creation", "Create task with category"), ("task_queries", "Show overdue tasks"),
    ("task_completion", "Complete task ahead of schedule"), ("task_updates", "Move task to different category"),
    ("task_creation", "Create recurring task"), ("task_queries", "Show today's tasks"),
    ("task_updates", "Edit task description"), ("task_creation", "Create task with detailed description"),
]

# no_call_reply: which reply variant answers which agentic no-call request (first match wins).
_NOCALL_ROUTES: dict[str, list[tuple[str, str]]] = {
    "Greetings and chit-chat": [
        ("thanks", r"\b(thanks|thank you|thx|appreciate)"),
        ("farewell", r"\bbye\b|talk (to you )?later|see you|catch you|nice day|good night|signing off|that's all"),
        ("about", r"who are you|what can you do|your name|what are you|what do you do|who am i talking"),
        ("celebration", r"\b(finished|shipped|passed|promot|closed|nailed|did it|got the|won|launched)\b"),
        ("greeting", r"^(hi|hiya|hello|hey|yo|morning|evening|good (morning|afternoon|evening))\b|how are you"
                     r"|how's it going|how have you been|how's your day|what's up|nice to meet"),
        ("trivia", r"\?|joke|recommend|favou?rite|weather|who won|capital"),
        ("chitchat", r".*"),
    ],
    "Productivity coaching questions": [
        ("overwhelmed", r"overwhelm|too (much|many)|drown|swamp|buried|so much|out of control|can't keep up|keeps growing"),
        ("focus", r"focus|distract|concentrat|multitask|notification|phone|interrupt"),
        ("motivation", r"motivat|procrastinat|stuck|get started|start anything|lazy|get (myself )?moving|putting off|not making progress"),
        ("prioritize", r"priorit|\bfirst\b|important|matters most|\brank|\border\b|decide|choose|drop|say no"),
        ("time", r"\btime\b|hours|how long|late|deadline|schedule|calendar|plan my|week|\bday\b|lunch|morning"),
        ("prioritize", r".*"),
    ],
    "Out-of-scope requests": [
        ("impossible_do", r"\b(book|order|play|send|call|buy|pay|print|text|email|reserve|set an alarm|pick up)\b"),
        ("trivia", r"\?|^(what|who|how|when|where|why|which|is|are|can|will|do|does)\b"),
        ("out_of_scope", r".*"),
    ],
}


def _variant(intent: str) -> dict[str, Any]:
    for scenarios in NOCALL.values():
        for variants in scenarios.values():
            for v in variants:
                if v["intent"] == intent:
                    return v
    raise KeyError(intent)  # pragma: no cover - the routes only name existing intents


def no_call_reply(scenario: str, user_text: str, rng: random.Random) -> str:
    """TaskMaster's reply to a request that needs no tool, for the agentic builder's no-call scenarios.

    Both adapters are trained on these turns (the agentic one on its no-call examples, the persona
    one on the same phrase banks), so they agree on the tokens; every reply scores >= 6 with the
    persona scorer. Scenarios: "Greetings and chit-chat", "Productivity coaching questions",
    "Out-of-scope requests".
    """
    if scenario not in _NOCALL_ROUTES:
        raise FteforgeError(f"no_call_reply: unknown no-call scenario {scenario!r}; known: {sorted(_NOCALL_ROUTES)}")
    text = user_text.lower()
    intent = next(i for i, pattern in _NOCALL_ROUTES[scenario] if re.search(pattern, text))
    return compose_nocall(_variant(intent), rng, {})


# -- the dataset ---------------------------------------------------------------------------------------

def scenario_quotas(spec: PersonaSpec, min_total: int) -> dict[tuple[str, str], int]:
    """Examples to keep per (category, scenario): its share of the category target, topped up evenly
    (always the scenario with the fewest, in matrix order) until the total reaches `min_total`."""
    quotas = {}
    for cat, c in spec.scenario_matrix.categories.items():
        share = math.ceil(c.target_count / len(c.scenarios))
        for scen in c.scenarios:
            quotas[(cat, scen)] = share
    keys = list(quotas)
    while sum(quotas.values()) < min_total:
        quotas[min(keys, key=lambda k: quotas[k])] += 1
    return quotas


def build_persona_dataset(
    spec: PersonaSpec,
    agentic_spec: AgenticSpec,
    tools: ToolsSpec,
    generator: str | Any = "template",
    generator_params: dict[str, Any] | None = None,
    seed: int = 0,
    oversample: float = 1.3,
    min_total: int = 200,
) -> tuple[list[Example], list[dict[str, Any]], dict[str, Any]]:
    """Generate, verify, score, filter and balance the persona dataset: (examples, rejected, card).

    `generator` is a registered generator name (params from `generator_params`) or an object with
    the generator interface. Raises FteforgeError when the generator does not know a scenario or a
    scenario cannot reach its share within MAX_FILL_ROUNDS extra rounds.
    """
    if oversample < 1:
        raise FteforgeError(f"persona_data.oversample must be >= 1, got {oversample}")
    if isinstance(generator, str):
        gen, gen_name = make_generator(generator, generator_params), generator
    else:
        gen, gen_name = generator, getattr(generator, "name", type(generator).__name__)
    matrix = spec.scenario_matrix.categories
    if isinstance(gen, TemplateGenerator):
        for cat, c in matrix.items():  # fail before any work, naming the first unknown scenario
            for scen in c.scenarios:
                check_known(cat, scen)

    scorer = PersonaScorer(spec)
    quotas = scenario_quotas(spec, min_total)
    seen: set[tuple[str, str]] = set()
    rejected: list[dict[str, Any]] = []
    kept: dict[tuple[str, str], list[tuple[dict[str, Any], Any]]] = {}
    stats = {"candidates": 0, "surplus": 0, "fill_rounds": {}}

    for (cat, scen), quota in quotas.items():
        got: list[tuple[dict[str, Any], Any]] = []
        n = math.ceil(quota * oversample)
        for rnd in range(MAX_FILL_ROUNDS + 1):
            cands = gen.generate(spec, agentic_spec, tools, cat, scen, n, rng_for(seed, "persona", cat, scen, rnd))
            for cand in cands:
                stats["candidates"] += 1
                verdict = _check(cand, cat, scen, tools, scorer, spec.quality_filter_min, seen)
                if isinstance(verdict, dict):
                    rejected.append(verdict)
                elif len(got) < quota:
                    got.append(verdict)
                else:
                    stats["surplus"] += 1
            if len(got) >= quota:
                if rnd:
                    stats["fill_rounds"][f"{cat}/{scen}"] = rnd
                break
            n = max(4, 2 * (quota - len(got)))
        else:
            reasons = collections.Counter(r["reason"] for r in rejected if r["scenario"] == scen)
            raise FteforgeError(
                f"persona scenario {cat}/{scen!r}: only {len(got)} of the {quota} examples it needs passed the "
                f"quality filter (quality_filter_min {spec.quality_filter_min}) after {MAX_FILL_ROUNDS} extra rounds; "
                f"rejections: {dict(reasons)}. Improve the {gen_name!r} generator's replies for this scenario "
                "or lower the scenario's target_count"
            )
        kept[(cat, scen)] = got

    examples: list[Example] = []
    for cat in matrix:
        i = 0
        for scen in matrix[cat].scenarios:
            for cand, score in kept[(cat, scen)]:
                call = cand["call"]
                msgs = conversation(agentic_spec, cand["user"], call, cand["result"], cand["reply"])
                examples.append(Example(
                    id=f"persona-{cat}-{i:04d}", adapter=spec.adapter, category=cat, scenario=scen,
                    today=cand["today"], setup_tasks=cand["setup_tasks"], messages=msgs, train_turn=len(msgs) - 1,
                    meta={"score": score.total, "traits": score.traits, "generator": gen_name,
                          "tool": call[0] if call else None, "template": cand.get("template")},
                ))
                i += 1
    card = dataset_card(spec, examples, rejected, quotas, gen_name, seed, stats)
    return examples, rejected, card


def _check(cand: dict[str, Any], cat: str, scen: str, tools: ToolsSpec, scorer: PersonaScorer, minimum: float,
           seen: set[tuple[str, str]]) -> dict[str, Any] | tuple[dict[str, Any], Any]:
    """(normalised candidate, score) when it passes, else a rejection record with the reason."""
    user, reply = str(cand.get("user") or "").strip(), str(cand.get("reply") or "").strip()
    call = cand.get("call")
    record = {"category": cat, "scenario": scen, "user": user, "reply": reply,
              "call": list(call) if call else None, "score": None, "reason": "", "details": []}
    if not user:
        return record | {"reason": "empty user message"}
    today = str(cand.get("today") or TODAYS["train"][0])
    setup = json.loads(json.dumps(cand.get("setup_tasks") or []))
    result = None
    if call:
        name, args = call
        call = (name, dict(args))
        try:
            result = run_call(tools, today, setup, call)
        except ValueError as err:  # a setup task the Task API refuses
            return record | {"reason": "invalid setup_tasks", "details": [str(err)]}
        if cand.get("result") is not None and cand["result"] != result:
            return record | {"reason": "tool result differs from the real Task API result"}
        if not result.get("ok"):
            return record | {"reason": "tool call failed", "details": [result["error"]["message"]]}
    score = scorer.score(reply, user=user)
    record["score"] = score.total
    if score.total < minimum:
        return record | {"reason": f"score below quality_filter_min {minimum:g}",
                         "details": score.reasons, "violations": score.violations}
    if (user, reply) in seen:
        return record | {"reason": "duplicate"}
    seen.add((user, reply))
    return {"user": user, "reply": reply, "call": call, "result": result, "today": today, "setup_tasks": setup,
            "template": cand.get("template")}, score


# -- the dataset card ----------------------------------------------------------------------------------

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def distinct_n(texts: list[str], n: int) -> float:
    """Unique n-grams / total n-grams over `texts` (n-grams never cross a text boundary)."""
    grams = []
    for text in texts:
        toks = _TOKEN.findall(text.lower())
        grams.extend(tuple(toks[i:i + n]) for i in range(len(toks) - n + 1))
    return round(len(set(grams)) / len(grams), 4) if grams else 0.0


def _histogram(scores: list[float]) -> dict[str, int]:
    hist = {str(b): 0 for b in range(11)}
    for s in scores:
        hist[str(min(10, max(0, int(math.floor(s)))))] += 1
    return hist


def dataset_card(spec: PersonaSpec, examples: list[Example], rejected: list[dict[str, Any]],
                 quotas: dict[tuple[str, str], int], generator: str, seed: int, stats: dict[str, Any]) -> dict[str, Any]:
    """Counts vs targets, score histograms, diversity and the filter's work, as a JSON-able dict."""
    counts = collections.Counter((e.category, e.scenario) for e in examples)
    categories = {}
    for cat, c in spec.scenario_matrix.categories.items():
        share = math.ceil(c.target_count / len(c.scenarios))
        categories[cat] = {
            "count": sum(counts[(cat, s)] for s in c.scenarios), "target": c.target_count, "priority": c.priority,
            "scenarios": {s: {"count": counts[(cat, s)], "share": share, "quota": quotas[(cat, s)]} for s in c.scenarios},
        }
    replies = [e.target["content"] for e in examples]
    users = [e.user for e in examples]
    kept_scores = [e.meta["score"] for e in examples]
    trait_names = [t.name for t in spec.traits]
    scored_rejects = [r for r in rejected if r["score"] is not None]
    passed = len(examples) + stats["surplus"] + sum(r["reason"] == "duplicate" for r in rejected)
    return {
        "generator": generator, "seed": seed, "quality_filter_min": spec.quality_filter_min,
        "total": len(examples), "target_total": spec.scenario_matrix.total_target,
        "categories": categories,
        "tool_calls": dict(collections.Counter(e.meta["tool"] or "none" for e in examples)),
        "candidates": stats["candidates"], "kept": len(examples), "rejected": len(rejected),
        "rejected_by_reason": dict(collections.Counter(r["reason"] for r in rejected)),
        "surplus": stats["surplus"], "fill_rounds": stats["fill_rounds"],
        "filter_pass_rate": round(passed / stats["candidates"], 4) if stats["candidates"] else 0.0,
        "score_histogram": {"kept": _histogram(kept_scores), "rejected": _histogram([r["score"] for r in scored_rejects])},
        "mean_score": round(sum(kept_scores) / len(kept_scores), 3) if kept_scores else 0.0,
        "mean_trait_scores": {t: round(sum(e.meta["traits"].get(t, 0) for e in examples) / max(1, len(examples)), 3)
                              for t in trait_names},
        "diversity": {
            "replies": {f"distinct_{n}": distinct_n(replies, n) for n in (1, 2, 3)},
            "users": {f"distinct_{n}": distinct_n(users, n) for n in (1, 2, 3)},
        },
        "unique_replies": len(set(replies)), "unique_users": len(set(users)),
        "mean_reply_words": round(sum(len(r.split()) for r in replies) / max(1, len(replies)), 1),
    }


def render_card(card: dict[str, Any]) -> str:
    """The dataset card as markdown."""
    lines = [
        "# Persona dataset card", "",
        f"- generator: `{card['generator']}`, seed {card['seed']}",
        f"- examples: **{card['total']}** (spec target {card['target_total']}); "
        f"candidates {card['candidates']}, rejected {card['rejected']}, surplus {card['surplus']}",
        f"- quality filter: score >= {card['quality_filter_min']:g}/10, pass rate {card['filter_pass_rate']:.1%}",
        f"- mean score of kept examples: {card['mean_score']:.2f}/10; mean reply length {card['mean_reply_words']} words",
        f"- unique replies {card['unique_replies']}, unique user messages {card['unique_users']}",
        f"- tool calls: {', '.join(f'{k} {v}' for k, v in sorted(card['tool_calls'].items()))}", "",
        "## Coverage", "", "| category | scenario | count | share | ok |", "|---|---|---:|---:|:-:|",
    ]
    for cat, c in card["categories"].items():
        lines.append(f"| **{cat}** ({c['priority']}) | all | **{c['count']}** | {c['target']} | "
                     f"{'yes' if c['count'] >= c['target'] else 'NO'} |")
        for scen, s in c["scenarios"].items():
            lines.append(f"| | {scen} | {s['count']} | {s['share']} | {'yes' if s['count'] >= s['share'] else 'NO'} |")
    lines += ["", "## Scores", "", "| score | kept | rejected |", "|---:|---:|---:|"]
    for b in range(11):
        lines.append(f"| {b} | {card['score_histogram']['kept'][str(b)]} | {card['score_histogram']['rejected'][str(b)]} |")
    lines += ["", "Mean trait scores (0-2): " + ", ".join(f"{k} {v:.2f}" for k, v in card["mean_trait_scores"].items()),
              "", "## Diversity (distinct n-grams / all n-grams)", "", "| text | distinct-1 | distinct-2 | distinct-3 |",
              "|---|---:|---:|---:|"]
    for who, d in card["diversity"].items():
        lines.append(f"| {who} | {d['distinct_1']:.3f} | {d['distinct_2']:.3f} | {d['distinct_3']:.3f} |")
    if card["rejected_by_reason"]:
        lines += ["", "## Rejected", ""] + [f"- {r}: {n}" for r, n in sorted(card["rejected_by_reason"].items())]
    if card["fill_rounds"]:
        lines += ["", "## Gap filling", ""] + [f"- {s}: {n} extra round(s)" for s, n in card["fill_rounds"].items()]
    return "\n".join(lines) + "\n"


def render_review_sample(examples: list[Example], k: int = 10, seed: int = 0) -> str:
    """Markdown with `k` random examples for a human to read before training."""
    picked = random.Random(seed).sample(examples, min(k, len(examples)))
    lines = [f"# Persona data: {len(picked)} random examples for review (seed {seed})", ""]
    for n, ex in enumerate(picked, 1):
        lines += [f"## {n}. {ex.category} / {ex.scenario} (`{ex.id}`, score {ex.meta.get('score', '?')}/10)", "",
                  f"**User:** {ex.user}", ""]
        for m in ex.messages[:ex.train_turn]:
            if m.get("tool_calls"):
                fn = m["tool_calls"][0]["function"]
                lines += [f"**Tool call:** `{fn['name']} {json.dumps(fn['arguments'], ensure_ascii=False)}`", ""]
            elif m["role"] == "tool":
                content = m["content"] if len(m["content"]) <= 400 else m["content"][:400] + " ..."
                lines += [f"**Tool result:** `{content}`", ""]
        lines += [f"**TaskMaster:** {ex.target['content']}", ""]
    return "\n".join(lines)


# -- held-out evaluation suites --------------------------------------------------------------------------

def _traits(spec: PersonaSpec, wanted: list[str]) -> list[str]:
    names = [t.name for t in spec.traits]
    return [t for t in wanted if t in names] or names


def _not_expected(spec: PersonaSpec) -> list[str]:
    return [b.name.removeprefix("never_") for b in spec.boundaries] + [GENERIC_AI]


def _round_robin(items: list[str], n_rounds: int) -> list[tuple[str, int]]:
    """(item, round) pairs: every item once per round, alternate rounds in reverse order."""
    out = []
    for r in range(n_rounds):
        out += [(it, r) for it in (items if r % 2 == 0 else items[::-1])]
    return out


def build_persona_eval_cases(spec: PersonaSpec, seed: int = 2000, n: int = 56) -> list[EvalCase]:
    """The held-out persona suite: every category of the scenario matrix, EVAL entities and phrasings.

    Task-category cases carry the tool the agent loop needs (`expected_tool`), `today` and
    `setup_tasks`, so the evaluator can rebuild the Task API, run the call and score the final reply;
    the other categories expect no call. Cases are spread evenly over categories, then scenarios.
    """
    matrix = spec.scenario_matrix.categories
    for cat, c in matrix.items():
        for scen in c.scenarios:
            if scen not in EVAL_USERS and scen not in EVAL_NOCALL_USERS:
                raise FteforgeError(
                    f"persona eval suite: no held-out phrasings for {cat}/{scen!r}; add them to EVAL_USERS or "
                    "EVAL_NOCALL_USERS in fteforge/data/persona.py, or bring your own suite (docs/eval_suite_format.md)"
                )
    cats = list(matrix)
    per_cat = {cat: n // len(cats) + (1 if i < n % len(cats) else 0) for i, cat in enumerate(cats)}
    cases: list[EvalCase] = []
    for cat in cats:
        scenarios = matrix[cat].scenarios
        plan = _round_robin(scenarios, math.ceil(per_cat[cat] / len(scenarios)))[:per_cat[cat]]
        for scen, rnd in plan:
            i = len(cases)
            rng = rng_for(seed, "persona-eval", i)
            common = {"id": f"persona-eval-{i:03d}", "kind": "persona", "category": cat, "notes": scen,
                      "expected_traits": _traits(spec, EXPECTED_TRAITS.get(cat, [])), "not_expected": _not_expected(spec)}
            if scen in EVAL_USERS:
                templates = EVAL_USERS[scen]
                scene = plan_task_scene(cat, scen, rng, "eval", users={scen: [templates[rnd % len(templates)]]})
                cases.append(EvalCase(input=scene.user, expected_tool=scene.call[0], today=scene.today,
                                      setup_tasks=scene.setup_tasks, **common))
            else:
                templates = EVAL_NOCALL_USERS[scen]
                cases.append(EvalCase(input=templates[rnd % len(templates)], expected_tool=None,
                                      today=rng.choice(TODAYS["eval"]), **common))
    return cases


def _resolved(tools: ToolsSpec, call: tuple[str, dict[str, Any]], today: str) -> tuple[str, dict[str, Any]]:
    return call[0], resolve_dates(call[1], date_fields(tools.get(call[0]).parameters), today)


def _args_regexes(call: tuple[str, dict[str, Any]], template: str, today: str) -> dict[str, str]:
    """What the right call's arguments must match (re.search on the value as a string)."""
    out: dict[str, str] = {}
    for key, value in call[1].items():
        if key == "task_id":
            out[key] = f"^{value}$" if "{id}" in template else f"(?i){re.escape(value)}"
        elif key == "title":
            out[key] = f"(?i){re.escape(value)}"
        elif key == "status" and value == "pending":
            continue  # the default: asking without it is just as right
        elif key in ("priority", "recurrence", "status", "due_date"):
            out[key] = f"^{value}$"
        elif key == "due_before" and "due_after" not in call[1] and value != today:
            # overdue: strictly before today; "on or before yesterday" and "before today" both count
            out[key] = f"^({value}|{today})$"
        elif key == "due_before":
            out[key] = f"^{value}$"
        elif key == "due_after":
            continue  # "today's tasks" may be asked with due_before alone
        elif key in ("category", "query"):
            out[key] = f"(?i){re.escape(value)}"
        elif key == "tags":
            out[key] = re.escape(json.dumps(value[-1]))
        elif key in ("description", "notes"):
            words = value.split()[:2]
            out[key] = "(?i)" + r"\s+".join(re.escape(w) for w in words)
    return out


def build_combined_eval_cases(spec: PersonaSpec, agentic_spec: AgenticSpec, tools: ToolsSpec, seed: int = 3000,
                              n: int = 24) -> list[EvalCase]:
    """The held-out combined suite: task requests that need exactly one call AND a reply in persona.

    Each case names the right tool, regexes for its key arguments, the traits the final reply should
    show, and `today` + `setup_tasks` to rebuild the Task API. The planned call is executed here, so
    every case is known to be answerable (the call succeeds on that state).
    """
    cases: list[EvalCase] = []
    for i in range(n):
        cat, scen = COMBINED_SCENARIOS[i % len(COMBINED_SCENARIOS)]
        templates = EVAL_USERS[scen]
        tpl = templates[(i // len(COMBINED_SCENARIOS)) % len(templates)]
        scene = plan_task_scene(cat, scen, rng_for(seed, "combined-eval", i), "eval", users={scen: [tpl]})
        result = run_call(tools, scene.today, scene.setup_tasks, scene.call)
        if not result.get("ok"):  # pragma: no cover - the planner only builds valid calls
            raise FteforgeError(f"combined eval case {i}: planned call failed: {result}")
        cases.append(EvalCase(
            id=f"combined-eval-{i:03d}", kind="combined", input=scene.user, expected_tool=scene.call[0],
            # Regexes on the day meant: the API resolves the user's words ("by Friday") against today.
            expected_args=_args_regexes(_resolved(tools, scene.call, scene.today), tpl, scene.today),
            expected_traits=_traits(spec, COMBINED_TRAITS), not_expected=_not_expected(spec),
            today=scene.today, setup_tasks=scene.setup_tasks, category=cat, notes=scen,
        ))
    return cases


def train_titles() -> set[str]:
    """Lower-cased training titles (for leakage checks)."""
    return {t.lower() for t in TITLES["train"]}


__all__ = [
    "EVAL_NOCALL_USERS", "EVAL_USERS", "TASK_SCENARIOS", "build_combined_eval_cases", "build_persona_dataset",
    "build_persona_eval_cases", "dataset_card", "distinct_n", "no_call_reply", "render_card", "render_review_sample",
    "scenario_quotas",
]
