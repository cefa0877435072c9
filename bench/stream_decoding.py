"""Batch-1 decoding through transformers' generate vs the stream decoder (src/fteforge/evaluation/stream.py).

Three measurements per model, served as the evaluation serves it (`evaluate.serving`), tool calls
constrained as in the evaluation:

* the latency gate's protocol (`measure_latency`, `evaluate.latency` runs, system prompt cached) with
  each decoder, and whether the stream decoder's timed completions equal the batched generator's;
* the same with speculative steps: the stream decoder guessing `evaluate.latency.draft_tokens` tokens
  a step from the `build_draft` table (data/draft/ngrams.json), and new tokens per model call;
* a chat of four user messages (`fteforge chat`'s agent loop, a scratch Task API file): wall time
  per turn with `generate_one` (every turn prefills the whole conversation), with the stream decoder
  (the conversation's cache kept between turns) and with its guesses, and whether the sessions wrote
  the same transcript.

    .venv/bin/python bench/stream_decoding.py [--model data/merges/v6_ties] [--out bench/results/stream_decoding.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

CHAT = (
    "Add a task to call the dentist tomorrow.",
    "What's due this week?",
    "Mark the dentist call as done.",
    "I'm feeling swamped today.",
)


def _chat(model, tok, specs, stream: bool, max_new_tokens: int, draft=None,
          draft_tokens: int = 0) -> tuple[list[float], list[dict]]:
    from fteforge.chat import ChatSession
    from fteforge.evaluation.generation import generate_one, tool_call_constraint
    from fteforge.evaluation.stream import StreamDecoder

    constraint = tool_call_constraint(model, tok, specs.tools)
    if stream:
        decoder = StreamDecoder(model, tok, constraint, draft=draft, draft_tokens=draft_tokens)

        def generate(prompt: str) -> str:
            return decoder([prompt], max_new_tokens)[0]
    else:
        def generate(prompt: str) -> str:
            return generate_one(model, tok, prompt, max_new_tokens, constraint=constraint)

    with tempfile.TemporaryDirectory() as tmp:
        session = ChatSession(tok, specs, Path(tmp) / "tasks.db", today="2026-11-23", generate=generate)
        times, turns = [], []
        for message in CHAT:
            start = time.perf_counter()
            exchange = session.send(message)
            times.append(round((time.perf_counter() - start) * 1000, 1))
            turns.append({"user": message, "first_turn": exchange.first_turn, "reply": exchange.reply})
    return times, turns


def main() -> None:
    from _serve_setup import serve

    from fteforge.evaluation.draft import NgramDraft
    from fteforge.evaluation.runner import measure_latency
    from fteforge.evaluation.shared_prefix import PrefixCachedGenerator
    from fteforge.evaluation.stream import StreamDecoder

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="data/merges/v6_ties")
    ap.add_argument("--out", default="bench/results/stream_decoding.json")
    ap.add_argument("--draft", default="data/draft/ngrams.json", help="the build_draft stage's table")
    args = ap.parse_args()
    served = serve(ROOT, args.model)
    params, specs, model, tok = served.params, served.specs, served.model, served.tokenizer
    serving, constraint = served.serving, served.constraint
    lat = params.latency
    draft = NgramDraft.load(ROOT / args.draft, tok)
    batched = PrefixCachedGenerator(model, tok, params.batch_size, constraint)
    latency = {}
    for name, decoder in (("generate", batched), ("stream", StreamDecoder(model, tok, constraint)),
                          ("stream_draft", StreamDecoder(model, tok, constraint, draft=draft,
                                                         draft_tokens=lat.draft_tokens)),
                          ("generate_again", batched)):
        out = measure_latency(decoder, tok, specs, lat.runs, lat.warmup, lat.max_new_tokens,
                              reference=PrefixCachedGenerator(model, tok, params.batch_size, constraint)
                              if name.startswith("stream") else None)
        latency[name] = {k.removeprefix("latency."): round(v, 2) if isinstance(v, float) else v for k, v in out.items()}
        print(name, latency[name]["p50_ms"], latency[name]["p95_ms"], flush=True)
    chat_generate, turns_generate = _chat(model, tok, specs, False, 96)
    chat_stream, turns_stream = _chat(model, tok, specs, True, 96)
    chat_draft, turns_draft = _chat(model, tok, specs, True, 96, draft, lat.draft_tokens)
    report = {
        "command": "python bench/stream_decoding.py",
        "model": args.model, "serving": serving, "threads": params.threads,
        "processor": platform.processor() or platform.machine(), "torch": torch.__version__,
        "latency_gate_ms": 500, "draft": args.draft, "draft_tokens": lat.draft_tokens, "latency": latency,
        "chat_turn_ms": {"generate_one": chat_generate, "stream": chat_stream, "stream_draft": chat_draft},
        "chat_same_transcript": turns_generate == turns_stream,
        "chat_draft_same_transcript_as_stream": turns_draft == turns_stream,
        "chat_transcript": turns_stream,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "chat_transcript"}, indent=2))


if __name__ == "__main__":
    main()
