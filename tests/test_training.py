"""LoRA training on a tiny random Llama: loss falls, the adapter loads and matters, gates, determinism, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from fteforge.agent import conversation
from fteforge.data.records import Example, write_jsonl
from fteforge.gates import GateFailure
from fteforge.params import LoraParams, TrainKnobs
from fteforge.specs import Gate, load_spec_set
from fteforge.training.data import IGNORE, tokenize_examples
from fteforge.training.trainer import last_complete_checkpoint, train_adapter

REPO = Path(__file__).resolve().parents[1]
SPECS = load_spec_set(REPO / "specs")
LOOSE_GATES = [Gate(metric="adapter.size_mb", op="<=", bound=50, measured_by="file size")]


def examples(n: int = 16) -> list[Example]:
    out = []
    for i in range(n):
        msgs = conversation(SPECS.agentic, f"Please add a task called errand {i}",
                            call=("create_task", {"title": f"errand {i}"}))
        out.append(Example(id=f"t{i}", adapter="tiny", category="create", scenario="s",
                           today="2026-11-23" if i % 2 == 0 else "2026-12-01",
                           messages=msgs, train_turn=2))
    return out


def knobs(**over) -> TrainKnobs:
    base = dict(lora=LoraParams(r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
                epochs=4, learning_rate=5e-2, scheduler="cosine", warmup_ratio=0.0, batch_size=4, grad_accum=1,
                max_length=512, group_by_length=True, weight_decay=0.0, save_steps=2, final_loss_window=0.25,
                precision="fp32")  # auto would differ by CPU; bf16 has its own test
    base.update(over)
    return TrainKnobs(**base)


def train(tiny_llama_dir: Path, tmp: Path, name: str = "tiny", **kw) -> dict:
    args = dict(backend="trl", seed=0, threads=1, out_dir=tmp / name, work_dir=tmp / "work", gates=LOOSE_GATES)
    args.update(kw)
    return train_adapter(name, tiny_llama_dir, examples(), SPECS.tools, args.pop("knobs", knobs()), **args)


def test_labels_cover_only_the_trained_turn(tiny_llama_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    row = tokenize_examples(examples(1), tok, SPECS.tools, 512)[0]
    learned = [t for t, lab in zip(row["input_ids"], row["labels"], strict=True) if lab != IGNORE]
    assert tok.decode(learned) == '<tool_call>{"name": "create_task", "arguments": {"title": "errand 0"}}</tool_call><|im_end|>'
    assert row["labels"][0] == IGNORE and row["length"] == len(row["input_ids"])


def test_all_assistant_turns_learns_the_call_and_the_reply(tiny_llama_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    msgs = conversation(SPECS.agentic, "Add errand 1", call=("create_task", {"title": "errand 1"}),
                        result={"ok": True, "task": {"id": 1, "title": "errand 1"}}, reply="Done! What's next?")
    ex = Example(id="p0", adapter="tiny", category="create", scenario="s",
                           today="2026-11-23", messages=msgs,
                 train_turn=4)
    rows = {mode: tokenize_examples([ex], tok, SPECS.tools, 512, mode)[0] for mode in ("marked", "all_assistant")}
    only_reply = tok.decode([t for t, lab in zip(rows["marked"]["input_ids"], rows["marked"]["labels"], strict=True)
                             if lab != IGNORE])
    assert only_reply == "Done! What's next?<|im_end|>"
    both = rows["all_assistant"]
    learned = [i for i, lab in enumerate(both["labels"]) if lab != IGNORE]
    spans = [[learned[0]]]
    for i in learned[1:]:
        spans[-1].append(i) if i == spans[-1][-1] + 1 else spans.append([i])
    assert [tok.decode([both["input_ids"][i] for i in s]) for s in spans] == [
        '<tool_call>{"name": "create_task", "arguments": {"title": "errand 1"}}</tool_call><|im_end|>',
        "Done! What's next?<|im_end|>"]
    # the same token sequence either way: only the labels differ
    assert both["input_ids"] == rows["marked"]["input_ids"]


def test_training_lowers_loss_and_adapter_changes_outputs(tiny_llama_dir: Path, tmp_path: Path) -> None:
    live = tmp_path / "live"
    m = train(tiny_llama_dir, tmp_path, live_dir=live)
    assert m["train.final_loss"] < m["train.first_loss"] * 0.8
    assert m["train.steps"] == 16 and m["train.resumed_from_step"] == 0
    assert m["train.tokens_per_s"] > 0 and m["adapter.size_mb"] < 1
    out = tmp_path / "tiny"
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "chat_template.jinja",
            "training_config.json"} <= {p.name for p in out.iterdir()}
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())  # checkpoints cleaned
    loss_log = live / "plots" / "metrics" / "train" / "loss.tsv"
    assert len(loss_log.read_text().strip().splitlines()) == 1 + 16

    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        before = base(ids).logits.clone()
        tuned = PeftModel.from_pretrained(base, out)
        after = tuned(ids).logits
    assert not torch.allclose(before, after)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_same_seed_same_adapter_bitwise(tiny_llama_dir: Path, tmp_path: Path, precision: str) -> None:
    for run in ("a", "b"):  # one adapter name (training_config.json records it), separate checkpoints
        train(tiny_llama_dir, tmp_path, knobs=knobs(epochs=1, precision=precision), out_dir=tmp_path / run,
              work_dir=tmp_path / f"work-{run}")
    a = (tmp_path / "a" / "adapter_model.safetensors").read_bytes()
    b = (tmp_path / "b" / "adapter_model.safetensors").read_bytes()
    assert a == b
    # the whole folder, not just the weights: DVC hashes folders, and merges hash adapter_config.json
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    config = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    assert config["target_modules"] == sorted(config["target_modules"])


SAVE_LORA_CONFIG = """
import sys
from peft import LoraConfig
from fteforge.models.adapter_io import canonicalize_adapter_config
LoraConfig(r=4, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
           ).save_pretrained(sys.argv[1])
canonicalize_adapter_config(sys.argv[1])
"""


def test_adapter_config_bytes_do_not_depend_on_the_hash_seed(tmp_path: Path) -> None:
    # PEFT writes its set of target modules in string-hash order, which each process seeds afresh
    written = []
    for seed in ("1", "2", "3"):
        out = tmp_path / seed
        subprocess.run([sys.executable, "-c", SAVE_LORA_CONFIG, str(out)], check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed})
        written.append((out / "adapter_config.json").read_bytes())
    assert written[0] == written[1] == written[2]
    assert json.loads(written[0])["target_modules"] == sorted(json.loads(written[0])["target_modules"])


def test_failed_gate_fails_with_value_and_bound_and_publishes_nothing(tiny_llama_dir: Path, tmp_path: Path) -> None:
    gate = Gate(metric="train.final_loss", op="<", bound=0.0001, measured_by="mean of the last steps")
    with pytest.raises(GateFailure) as exc:
        train(tiny_llama_dir, tmp_path, knobs=knobs(epochs=1), gates=[gate])
    msg = str(exc.value)
    assert "adapter tiny failed 1 gate" in msg and "FAIL  train.final_loss = " in msg and "(needs < 0.0001)" in msg
    assert not (tmp_path / "tiny").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tiny")]


KILL_SCRIPT = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_training import train
train(Path({tiny!r}), Path({tmp!r}), knobs=__import__("test_training").knobs(epochs=8, save_steps=2))
"""


def test_resume_after_kill_9(tiny_llama_dir: Path, tmp_path: Path) -> None:
    script = KILL_SCRIPT.format(tests=str(Path(__file__).parent), tiny=str(tiny_llama_dir), tmp=str(tmp_path))
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    work = tmp_path / "work"
    deadline = time.time() + 240
    ckpt = None
    while time.time() < deadline and proc.poll() is None:
        runs = list(work.glob("tiny-*")) if work.exists() else []
        ckpt = last_complete_checkpoint(runs[0]) if runs else None
        if ckpt is not None and int(ckpt.name.split("-")[1]) >= 4:
            break
        time.sleep(0.2)
    assert proc.poll() is None, f"training ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    assert ckpt is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "tiny").exists()  # a killed run never looks finished

    m = train(tiny_llama_dir, tmp_path, knobs=knobs(epochs=8, save_steps=2))
    assert m["train.resumed_from_step"] >= 4
    assert m["train.steps"] == 32
    # the resumed run ends bitwise where an uninterrupted one does: the date-grouped batch order of
    # every epoch, the optimizer state and the RNG all come back from the checkpoint
    train(tiny_llama_dir, tmp_path, "uninterrupted", knobs=knobs(epochs=8, save_steps=2))
    from safetensors.torch import load_file

    resumed = load_file(tmp_path / "tiny" / "adapter_model.safetensors")
    straight = load_file(tmp_path / "uninterrupted" / "adapter_model.safetensors")
    assert resumed.keys() == straight.keys()
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)
    assert json.loads((tmp_path / "tiny" / "training_config.json").read_text())["seed"] == 0


def test_metrics_serialise(tiny_llama_dir: Path, tmp_path: Path) -> None:
    m = train(tiny_llama_dir, tmp_path, knobs=knobs(epochs=1))
    write_jsonl(tmp_path / "m.jsonl", [m])


@pytest.mark.parametrize("attention", ["sdpa", "grouped matmul"])
@pytest.mark.parametrize("dates", ["one date", "two dates"])
def test_shared_prefix_loss_and_gradients_equal_full_sequences(tiny_llama_dir: Path, dates: str,
                                                               attention: str) -> None:
    """The trl backend's loss (prefix once, its cache broadcast) against stock SDPA over full rows."""
    from peft import get_peft_model
    from transformers import set_seed
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from fteforge.training.backends import _lora_config
    from fteforge.training.prefix import batch_prefix_length, shared_prefix_loss

    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    exs = [e.model_copy(update={"today": "2026-11-23"}) for e in examples(4)] if dates == "one date" else examples(4)
    exs[1] = exs[1].model_copy(update={"messages": conversation(
        SPECS.agentic, "Show me everything I have due this week, please",
        call=("list_tasks", {"due_before": "the end of the week"}))})
    rows = tokenize_examples(exs, tok, SPECS.tools, 512)
    collate = DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id)
    batch = collate([{k2: r[k2] for k2 in ("input_ids", "labels")} for r in rows])
    k = batch_prefix_length(batch["input_ids"], batch["labels"], batch["attention_mask"])
    system_turn = tok.decode(rows[0]["input_ids"][:k])
    assert k > 100 and "Today is 202" in system_turn  # the system turn up to the date is shared
    # one date: the whole system turn, today's date included, is shared; two dates: it stops inside it
    assert ("Today is 2026-11-23 (Monday).<|im_end|>" in system_turn) == (dates == "one date")

    def grads(shared: bool):
        set_seed(0)
        model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
        if shared and attention == "grouped matmul":
            from fteforge.models.attention import use_grouped_matmul

            assert use_grouped_matmul(model)
        model = get_peft_model(model, _lora_config(knobs()))
        for n, p in model.named_parameters():  # non-zero B so gradients reach A too
            if "lora_B" in n:
                torch.nn.init.normal_(p, std=0.02)
        if shared:
            loss, _ = shared_prefix_loss(model, batch)
        else:
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            logits, target = out.logits[:, :-1], batch["labels"][:, 1:]
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                                     ignore_index=IGNORE, reduction="sum") / (target != IGNORE).sum()
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    loss_full, g_full = grads(False)
    loss_shared, g_shared = grads(True)
    assert abs(loss_full - loss_shared) < 1e-4
    for n in g_full:
        assert torch.allclose(g_full[n], g_shared[n], atol=1e-5, rtol=1e-3), n


def test_batch_prefix_stops_before_the_first_learned_token_and_at_padding() -> None:
    from fteforge.training.prefix import batch_prefix_length

    ids = torch.tensor([[5, 6, 7, 8, 9, 0], [5, 6, 7, 8, 9, 4]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]])
    labels = torch.full_like(ids, IGNORE)
    labels[:, 4:] = ids[:, 4:]
    assert batch_prefix_length(ids, labels, mask) == 3  # token 3 predicts the first learned token
    labels[1, 2:] = ids[1, 2:]
    assert batch_prefix_length(ids, labels, mask) == 1
    labels[0] = IGNORE  # a row with nothing to learn: share nothing
    assert batch_prefix_length(ids, labels, mask) == 0


def test_prefix_grouped_batches_come_from_one_group_and_cover_every_row_once() -> None:
    from fteforge.training.prefix import PrefixGroupedSampler

    groups = [f"d{i % 5}" for i in range(103)]
    lengths = [(i * 37) % 90 + 10 for i in range(103)]
    sampler = PrefixGroupedSampler(groups, lengths, batch_size=8)
    torch.manual_seed(0)
    order = list(sampler)
    assert sorted(order) == list(range(103)) and len(sampler) == 103
    batches = [order[j:j + 8] for j in range(0, 103, 8)]
    assert len(batches[-1]) == 103 % 8  # the one short batch comes last
    one_group = [b for b in batches if len({groups[i] for i in b}) == 1]
    # 5 groups of 20-21 rows: 2 full batches each, the 4-5 rows left over from each fill mixed batches
    assert len(one_group) == 10
    for b in one_group:
        assert [lengths[i] for i in b] == sorted((lengths[i] for i in b), reverse=True)
    torch.manual_seed(0)
    assert list(sampler) == order  # the torch RNG drives it: a resumed run replays the order
    assert list(sampler) != order  # and each epoch draws a new one


@pytest.mark.parametrize("stock", ["sdpa", "eager"])
def test_grouped_matmul_attention_gives_the_stock_gradients(tiny_llama_dir: Path, stock: str) -> None:
    """The trl backend's CPU attention (no key/value head copies) trains like stock attention on a padded batch."""
    from fteforge.models.attention import GROUPED_MATMUL, use_grouped_matmul

    ids = torch.randint(5, 200, (3, 16), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0  # right padding, as the collator pads (a left pad would predict a real token from
    mask[2, 12:] = 0  # a row that attends to nothing, where kernels legitimately differ)
    losses, grads = [], []
    for switch in (False, True):
        model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32, attn_implementation=stock)
        if switch:
            assert use_grouped_matmul(model) and model.config._attn_implementation == GROUPED_MATMUL
        loss = model(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).loss
        loss.backward()
        losses.append(loss.item())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert abs(losses[0] - losses[1]) < 1e-5
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_grouped_matmul_attention_keeps_bf16_scores_under_autocast() -> None:
    """Under bf16 autocast no fp32 [batch, head, query, key] tensor is made (long batches crossed glibc's
    mmap threshold and were page-faulted in on every step); the result stays that of fp32 attention."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from fteforge.models.attention import _grouped_matmul

    class Shapes(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.seen = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if isinstance(out, torch.Tensor):
                self.seen.append((tuple(out.shape), out.dtype))
            return out

    g = torch.Generator().manual_seed(3)
    b, h, kv, q, k, d = 2, 6, 2, 5, 9, 8
    query, key, value = (torch.randn(b, n, t, d, generator=g) for n, t in ((h, q), (kv, k), (kv, k)))
    mask = torch.zeros(b, 1, q, k)
    mask[1, :, :, 7:] = torch.finfo(torch.float32).min  # a padded key, fp32 minimum as eager_mask writes it
    reference, _ = _grouped_matmul(None, query, key, value, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16), Shapes() as shapes:
        out, _ = _grouped_matmul(None, query, key, value, mask)
    assert (b, h, q, k) in [s for s, _ in shapes.seen]
    assert all(dtype == torch.bfloat16 for s, dtype in shapes.seen if s == (b, h, q, k))
    assert torch.isfinite(out).all()
    assert torch.allclose(out.float(), reference, atol=3e-2)


def test_frozen_weights_stored_in_bf16_give_bitwise_the_autocast_gradients(tiny_llama_dir: Path) -> None:
    """Rounding the frozen weights once equals autocast rounding them on every call: same bits."""
    from peft import get_peft_model
    from transformers import set_seed

    from fteforge.precision import store_frozen_linears_in_bf16
    from fteforge.training.backends import _lora_config
    from fteforge.training.prefix import shared_prefix_loss

    ids = torch.randint(5, 200, (3, 24), generator=torch.Generator().manual_seed(2))
    ids[:, :10] = ids[0, :10]
    labels = ids.masked_fill(torch.arange(24) < 14, IGNORE)
    mask = torch.ones_like(ids)
    mask[2, 20:] = 0
    labels[2, 20:] = IGNORE
    out = []
    for stored in (False, True):
        set_seed(0)
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), _lora_config(knobs()))
        for n, p in model.named_parameters():
            if "lora_B" in n:
                torch.nn.init.normal_(p, std=0.02)
        if stored:
            # 2 layers x 7 targets; the tied output head shares the fp32 embedding and is left alone
            assert store_frozen_linears_in_bf16(model) == 14
            assert model.get_output_embeddings().weight.dtype == torch.float32
            assert {p.dtype for n, p in model.named_parameters() if p.requires_grad} == {torch.float32}
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss, _ = shared_prefix_loss(model, {"input_ids": ids, "labels": labels, "attention_mask": mask})
        loss.backward()
        out.append((loss.detach(), [p.grad for p in model.parameters() if p.requires_grad]))
    assert torch.equal(out[0][0], out[1][0])
    assert all(torch.equal(a, b) for a, b in zip(out[0][1], out[1][1], strict=True))


def test_bf16_precision_trains_with_bf16_matmuls_on_the_shared_prefix_path(tiny_llama_dir: Path,
                                                                           tmp_path: Path) -> None:
    """precision: bf16 reaches the shared-prefix loss (accelerate's autocast only wraps model.forward)."""
    fp32 = train(tiny_llama_dir, tmp_path, "fp32", knobs=knobs(epochs=2))
    bf16 = train(tiny_llama_dir, tmp_path, "bf16", knobs=knobs(epochs=2, precision="bf16"))
    assert fp32["train.precision"] == "fp32" and bf16["train.precision"] == "bf16"
    assert bf16["train.final_loss"] < bf16["train.first_loss"] * 0.8
    # rounded matmuls: close to the fp32 run, but not the same numbers
    assert bf16["train.first_loss"] != fp32["train.first_loss"]
    assert abs(bf16["train.first_loss"] - fp32["train.first_loss"]) < 0.05 * fp32["train.first_loss"]
    config = json.loads((tmp_path / "bf16" / "training_config.json").read_text())
    assert config["precision"] == "bf16" and config["knobs"]["precision"] == "bf16"
    # the master weights stay fp32, so the saved adapter is fp32 as well
    from safetensors import safe_open

    with safe_open(str(tmp_path / "bf16" / "adapter_model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float32}


def test_auto_precision_follows_the_cpu_flags(tmp_path: Path) -> None:
    from fteforge.precision import cpu_has_native_bf16, resolve_precision

    zen4 = tmp_path / "zen4"
    zen4.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx_vnni\n")
    old = tmp_path / "old"
    old.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n")
    assert cpu_has_native_bf16(zen4) and not cpu_has_native_bf16(old)
    assert not cpu_has_native_bf16(tmp_path / "missing")
    assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16") == "bf16"
    assert resolve_precision("auto", "cpu") == ("bf16" if cpu_has_native_bf16() else "fp32")
