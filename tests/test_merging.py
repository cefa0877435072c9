"""Merging: adapter analysis, compatibility refusals, strategy choice, the mergekit and PEFT engines.

Tiny models only (the 2-layer random Llama from conftest, rank-4 adapters with random B).

What mergekit 0.1.5's `normalize` does to each adapter's strength (read in
merge_methods/generalized_task_arithmetic.py and linear.py; checked on tensors below):

- task_arithmetic (default normalize false) / linear (default true): with normalize the weighted sum
  is divided by sum(weights). Weights 0.6/0.4 already sum to 1, so normalize changes nothing: each task
  vector enters at 0.6 and 0.4 of its strength, which is what dilutes both. Weights 1.0/1.0 with
  normalize give (tau_a + tau_b) / 2: both halved.
- ties (default normalize true) / dare_ties (default false): the divisor is the sum of the weights of
  the adapters whose sign agrees with the elected sign AT THAT ENTRY. An entry only one adapter
  changes (the other trimmed, or disagreeing) keeps that adapter's FULL update whatever its weight;
  where both agree the result is their weighted mean. So "normalize divides by the sum of weights"
  holds per entry over the agreeing adapters only, not globally.
"""

from __future__ import annotations

import inspect
import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from fteforge.errors import FteforgeError
from fteforge.merging import analysis
from fteforge.merging.engines import MERGE_ENGINES
from fteforge.merging.engines import mergekit_engine as mk
from fteforge.merging.engines.peft_engine import merge_lora
from fteforge.specs.unified import ConflictThresholds, MergeStrategy

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
ATOL = 1e-5  # float32 end to end; mergekit and PEFT add the same dW in a different order


def _make_adapter(base_dir: Path, out: Path, seed: int, r: int = 4, alpha: int = 8) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=r, lora_alpha=alpha, target_modules=TARGETS, lora_dropout=0.0))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:  # B starts at zero: give it values so dW = (alpha/r) B A is non-zero
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    model.save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="module")
def adapters(tiny_llama_dir, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return {"persona": _make_adapter(tiny_llama_dir, root / "persona", 1),
            "agentic": _make_adapter(tiny_llama_dir, root / "agentic", 2)}


def _merged_reference(base_dir: Path, adapter_dir: Path) -> dict[str, torch.Tensor]:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    return {k: v.detach().clone() for k, v in merged.state_dict().items()}


def _load_dir(d: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out = {}
    for f in sorted(d.glob("*.safetensors")):
        out.update(load_file(f))
    return out


def _copy_adapter(src: Path, dst: Path, **config_changes) -> Path:
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "adapter_config.json").read_text())
    cfg.update(config_changes)
    (dst / "adapter_config.json").write_text(json.dumps(cfg))
    return dst


# --- analysis ---------------------------------------------------------------------------------------

def test_registry_lists_both_engines():
    assert MERGE_ENGINES.names() == ["mergekit", "peft"]


def test_analyze_adapter(adapters):
    a = analysis.analyze_adapter(adapters["persona"])
    assert (a["r"], a["lora_alpha"], a["scaling"], a["layers"]) == (4, 8, 2.0, 2)
    assert a["target_modules"] == sorted(TARGETS)
    assert len(a["tensors"]) == 2 * len(TARGETS) * 2  # A and B per module per layer
    assert a["total_params"] == sum(int(np.prod(t["shape"])) for t in a["tensors"])
    b = next(t for t in a["tensors"] if "lora_B" in t["key"])
    assert b["std"] > 0 and b["min"] < 0 < b["max"]


def test_delta_w_is_what_merge_and_unload_adds(tiny_llama_dir, adapters):
    base = _load_dir(tiny_llama_dir)
    merged = _merged_reference(tiny_llama_dir, adapters["persona"])
    dws = analysis.delta_w(adapters["persona"])
    assert len(dws) == 2 * len(TARGETS)
    for key, dw in dws.items():
        w = key + ".weight"
        torch.testing.assert_close(merged[w] - base[w], dw, atol=ATOL, rtol=0)


def test_interference_extremes(adapters, tmp_path):
    same = analysis.interference(adapters["persona"], adapters["persona"])
    assert same["overall"]["sign_conflict_rate"] == 0
    assert same["overall"]["mean_cosine"] == pytest.approx(1, abs=1e-5)
    assert same["overall"]["norm_ratio"] == pytest.approx(1)
    # negate B: every jointly significant entry flips sign
    neg = _copy_adapter(adapters["persona"], tmp_path / "neg")
    from safetensors.torch import load_file, save_file

    t = load_file(neg / "adapter_model.safetensors")
    save_file({k: (-v if "lora_B" in k else v) for k, v in t.items()}, neg / "adapter_model.safetensors")
    opp = analysis.interference(adapters["persona"], neg)
    assert opp["overall"]["sign_conflict_rate"] == 1
    assert opp["overall"]["mean_cosine"] == pytest.approx(-1, abs=1e-5)
    two = analysis.interference(adapters["persona"], adapters["agentic"], significance=0.1)
    assert len(two["modules"]) == 2 * len(TARGETS)
    # independent random updates: about half of the overlapping entries disagree, cosine near 0
    assert 0.3 < two["overall"]["sign_conflict_rate"] < 0.7
    assert abs(two["overall"]["mean_cosine"]) < 0.2
    png = analysis.heatmap_png(two, tmp_path / "conflict.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    analysis.heatmap_png(two, tmp_path / "cos.png", metric="cosine")
    decision = analysis.decide_strategy(two, _strategy())
    md = analysis.render_analysis_md(
        {n: analysis.analyze_adapter(d) for n, d in adapters.items()}, [], two, decision,
        {"sign_conflict_rate": "conflict.png"})
    assert "## Decision" in md and decision["method"] in md and "![sign_conflict_rate](conflict.png)" in md


def _strategy() -> MergeStrategy:
    return MergeStrategy(primary="ties", backup="dare_ties",
                         use_backup_when=ConflictThresholds(sign_conflict_rate=0.35, min_cosine=-0.05))


def test_strategy_flips_at_the_thresholds():
    s = _strategy()
    calm = analysis.decide_strategy({"overall": {"sign_conflict_rate": 0.35, "mean_cosine": -0.05}}, s)
    assert calm["method"] == "ties" and not calm["conflicts_detected"]
    signs = analysis.decide_strategy({"overall": {"sign_conflict_rate": 0.351, "mean_cosine": 0.2}}, s)
    assert signs["method"] == "dare_ties" and signs["conflicts_detected"]
    assert "0.351 > 0.35" in signs["reasons"][0]
    cos = analysis.decide_strategy({"sign_conflict_rate": 0.1, "mean_cosine": -0.051}, s)
    assert cos["method"] == "dare_ties" and "-0.051 < -0.05" in cos["reasons"][0]


# --- compatibility ----------------------------------------------------------------------------------

def test_compatible_pair_and_rank_note(adapters, tmp_path):
    assert not [n for n in analysis.check_compatible(adapters["persona"], adapters["agentic"]) if "differ" in n]
    other_rank = _copy_adapter(adapters["agentic"], tmp_path / "r8", r=8, lora_alpha=16)
    notes = analysis.check_compatible(adapters["persona"], other_rank)
    assert any("ranks differ" in n and "fine for full-weight" in n for n in notes)


@pytest.mark.parametrize("change, field", [
    ({"use_dora": True}, "use_dora"),
    ({"use_rslora": True}, "use_rslora"),
    ({"lora_bias": True}, "lora_bias"),
    ({"rank_pattern": {"q_proj": 8}}, "rank_pattern"),
    ({"alpha_pattern": {"q_proj": 32}}, "alpha_pattern"),
    ({"peft_type": "IA3"}, "peft_type"),
])
def test_refuses_what_would_merge_wrongly(adapters, tmp_path, change, field):
    bad = _copy_adapter(adapters["agentic"], tmp_path / "bad", **change)
    with pytest.raises(FteforgeError) as err:
        analysis.check_compatible(adapters["persona"], bad)
    msg = str(err.value)
    assert str(bad) in msg and field in msg and "Fix:" in msg


def test_refuses_pickle_only_and_different_base(adapters, tmp_path):
    pkl = _copy_adapter(adapters["agentic"], tmp_path / "pkl")
    (pkl / "adapter_model.safetensors").rename(pkl / "adapter_model.bin")
    with pytest.raises(FteforgeError, match=r"pkl: only adapter_model.bin \(pickle"):
        analysis.check_compatible(adapters["persona"], pkl)

    other = _copy_adapter(adapters["agentic"], tmp_path / "other", base_model_name_or_path=str(tmp_path / "elsewhere"))
    with pytest.raises(FteforgeError, match="trained on different bases.*Fix: retrain both"):
        analysis.check_compatible(adapters["persona"], other)

    # a recorded fingerprint wins over the path, and must match the current base's
    fp_a = _copy_adapter(adapters["persona"], tmp_path / "fa")
    fp_b = _copy_adapter(adapters["agentic"], tmp_path / "fb")
    for d in (fp_a, fp_b):
        (d / "training_config.json").write_text(json.dumps({"base_fingerprint": "1ee324e22a8a2e13"}))
    assert analysis.check_compatible(fp_a, fp_b, {"fingerprint": "1ee324e22a8a2e13"}) == []
    with pytest.raises(FteforgeError, match=r"fa: trained on base '1ee324e22a8a2e13'.*now 'aaaa'"):
        analysis.check_compatible(fp_a, fp_b, {"fingerprint": "aaaa"})


# --- TIES / DARE / normalize math on hand-made tensors ----------------------------------------------

def _call(method_name: str, base, deltas, weights, **shared):
    """mergekit's own merge_group on [base, base+delta_1, ...] with per-input weight/density."""
    from mergekit.merge_methods import registry
    from mergekit.merge_methods.base import TensorGroup

    method = registry.get(method_name)
    tensors = [base] + [base + d for d in deltas]
    group = TensorGroup.from_tensors(tensors, base_index=0)
    ids = range(1, len(tensors))
    params = {p.name: p.default for p in method.spec.parameters if not p.required}
    params.update(shared)
    params["weight"] = dict(zip(ids, weights, strict=True))
    if "density" in shared:
        params["density"] = dict(zip(ids, shared["density"], strict=True))
    elif any(p.name == "density" for p in method.spec.parameters):
        params["density"] = dict.fromkeys(ids, 1.0)
    return method.merge_group(group, **params)


def _ties_numpy(base, deltas, weights, density, normalize=True, masks=None, rescale=None):
    """TIES (Yadav et al. 2023), weighted as mergekit does: trim (or DARE-drop), weight, elect, disjoint mean."""
    kept = []
    for i, d in enumerate(deltas):
        d = d.copy()
        if masks is not None:  # DARE: a given random keep-mask, then rescale
            m = d * masks[i]
            d = m * (rescale(d, m) if rescale else 1.0)
        elif density < 1:
            k = max(1, int(density * d.size))
            cut = np.sort(np.abs(d).ravel())[::-1][k - 1]
            d = np.where(np.abs(d) >= cut, d, 0.0)
        kept.append(d * weights[i])
    kept = np.stack(kept)
    elected = np.where(kept.sum(0) >= 0, 1.0, -1.0)
    agree = np.sign(kept) == elected
    total = (kept * agree).sum(0)
    if normalize:
        div = (np.array(weights)[:, None, None] * agree).sum(0)
        total = total / np.where(div == 0, 1, div)
    return base + total


def _hand_tensors(seed=0, shape=(6, 8)):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=shape)
    # distinct magnitudes, so top-k trimming has no ties to break
    deltas = [rng.permutation(np.linspace(0.05, 1.0, base.size)).reshape(shape) * rng.choice([-1, 1], size=shape)
              for _ in range(2)]
    return base, deltas


@pytest.mark.parametrize("weights, density, normalize", [
    ((1.0, 1.0), 0.5, True), ((0.6, 0.4), 0.3, True), ((0.7, 0.5), 0.5, False), ((1.0, 1.0), 1.0, True)])
def test_ties_matches_published_math(weights, density, normalize):
    base, deltas = _hand_tensors()
    got = _call("ties", torch.tensor(base), [torch.tensor(d) for d in deltas], weights,
                density=[density, density], normalize=normalize)
    np.testing.assert_allclose(got.numpy(), _ties_numpy(base, deltas, weights, density, normalize), atol=1e-12)


def test_dare_ties_matches_published_math_with_a_fixed_mask():
    """DARE: keep each entry with probability `density`, rescale, then TIES sign election (no trim).

    mergekit 0.1.5 rescales to the L1 norm of the undropped vector, not by 1/density as in the paper;
    the test reproduces its masks by replaying torch's RNG from the same seed, in input order.
    """
    base, deltas = _hand_tensors(1, shape=(40, 50))
    density = 0.4
    torch.manual_seed(123)
    masks = [torch.bernoulli(torch.full(d.shape, density, dtype=torch.float32)).double().numpy() for d in deltas]
    torch.manual_seed(123)
    got = _call("dare_ties", torch.tensor(base, dtype=torch.float32),
                [torch.tensor(d, dtype=torch.float32) for d in deltas], (1.0, 0.5), density=[density, density])
    l1 = lambda d, m: np.abs(d).sum() / np.abs(m).sum()  # noqa: E731
    want = _ties_numpy(base, deltas, (1.0, 0.5), density, normalize=False, masks=masks, rescale=l1)
    np.testing.assert_allclose(got.double().numpy(), want, atol=1e-5)
    # the L1 rescale is the paper's 1/density in expectation (here within 5%)
    for d, m in zip(deltas, masks, strict=True):
        assert l1(d, d * m) == pytest.approx(1 / density, rel=0.05)


def test_normalize_divides_by_the_sum_of_weights():
    base = torch.zeros(4)
    a, b = torch.tensor([1.0, 1.0, 2.0, 0.0]), torch.tensor([1.0, -1.0, 0.0, 4.0])
    ta = lambda w, n: _call("task_arithmetic", base, [a, b], w, normalize=n)  # noqa: E731
    torch.testing.assert_close(ta((1.0, 1.0), True), (a + b) / 2)  # 1.0/1.0: both halved
    torch.testing.assert_close(ta((0.6, 0.4), True), 0.6 * a + 0.4 * b)  # sum 1: normalize is a no-op
    torch.testing.assert_close(ta((0.6, 0.4), False), 0.6 * a + 0.4 * b)
    torch.testing.assert_close(ta((0.6, 0.6), True), (0.6 * a + 0.6 * b) / 1.2)
    # TIES: per entry over the agreeing adapters only. Entry 0 both agree -> weighted mean;
    # entry 1 signs clash, a wins the election (0.6 > 0.4) and keeps its full value; entries 2, 3
    # only one adapter moved -> its full update despite weight 0.6 / 0.4.
    ties = _call("ties", base, [a, b], (0.6, 0.4), normalize=True)
    torch.testing.assert_close(ties, torch.tensor([1.0, 1.0, 2.0, 4.0]))
    ties_raw = _call("ties", base, [a, b], (0.6, 0.4), normalize=False)
    torch.testing.assert_close(ties_raw, torch.tensor([1.0, 0.6, 1.2, 1.6]))
    # mergekit's defaults are what the engine writes out explicitly
    from mergekit.merge_methods import registry

    defaults = {m: next(p.default for p in registry.get(m).spec.parameters if p.name == "normalize")
                for m in ("ties", "dare_ties", "task_arithmetic")}
    defaults["linear"] = inspect.signature(registry.get("linear").implementation).parameters["normalize"].default
    assert defaults == mk.DEFAULT_NORMALIZE


# --- configs ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", mk.METHODS)
def test_rendered_configs_round_trip(tiny_llama_dir, adapters, method):
    from mergekit.config import MergeConfiguration

    knobs = {"density": 0.5} if method in ("ties", "dare_ties") else {}
    cfg = mk.render_mergekit_config(tiny_llama_dir, adapters, method, {"persona": 0.6, "agentic": 0.4}, **knobs)
    text = mk.config_yaml(cfg)
    parsed = MergeConfiguration.model_validate(yaml.safe_load(text))
    assert yaml.safe_load(parsed.to_yaml()) == yaml.safe_load(text)
    assert cfg["parameters"]["normalize"] is mk.DEFAULT_NORMALIZE[method]  # always explicit
    assert cfg["dtype"] == "float32"
    assert cfg["models"][0]["model"] == f"{tiny_llama_dir}+{adapters['persona']}"
    assert ("base_model" in cfg) is (method != "linear")


def test_render_refuses_bad_knobs(tiny_llama_dir, adapters):
    w = {"persona": 1.0, "agentic": 1.0}
    with pytest.raises(FteforgeError, match="density applies to ties/dare_ties only"):
        mk.render_mergekit_config(tiny_llama_dir, adapters, "linear", w, density=0.5)
    with pytest.raises(FteforgeError, match="scales the base weights"):
        mk.render_mergekit_config(tiny_llama_dir, adapters, "linear", w, normalize=False)
    with pytest.raises(FteforgeError, match="merge weights name"):
        mk.render_mergekit_config(tiny_llama_dir, adapters, "ties", {"persona": 1.0})
    with pytest.raises(FteforgeError, match=r"containing '\+'"):
        mk.render_mergekit_config(tiny_llama_dir, {"x+y": Path("a+b")}, "ties", {"x+y": 1.0})


def test_module_and_layer_weights_render_as_mergekit_filters(tiny_llama_dir, adapters):
    from mergekit.config import MergeConfiguration, evaluate_setting

    cfg = mk.render_mergekit_config(
        tiny_llama_dir, adapters, "ties", {"persona": 0.5, "agentic": [0.2, 0.8]}, density=0.5,
        module_weights={"mlp": {"persona": 0.3, "agentic": 0.7}, "q_proj": {"persona": 0.9, "agentic": 0.1}})
    parsed = MergeConfiguration.model_validate(yaml.safe_load(mk.config_yaml(cfg)))
    setting = {str(m.model.lora.path): m.parameters["weight"] for m in parsed.models}
    persona, agentic = setting[str(adapters["persona"])], setting[str(adapters["agentic"])]
    weight = lambda s, tensor, t=0.0: evaluate_setting(tensor, s, t, validate=float)  # noqa: E731
    # first match wins; everything else falls through to `weights`, a list interpolating over depth
    assert weight(persona, "model.layers.0.mlp.up_proj.weight") == 0.3
    assert weight(agentic, "model.layers.0.self_attn.q_proj.weight") == pytest.approx(0.1)
    assert weight(persona, "model.layers.0.self_attn.v_proj.weight") == 0.5
    assert weight(agentic, "model.layers.0.self_attn.v_proj.weight", t=0.0) == pytest.approx(0.2)
    assert weight(agentic, "model.layers.1.self_attn.v_proj.weight", t=1.0) == pytest.approx(0.8)
    assert weight(agentic, "model.embed_tokens.weight", t=0.5) == pytest.approx(0.5)

    with pytest.raises(FteforgeError, match="module_weights.mlp names"):
        mk.render_mergekit_config(tiny_llama_dir, adapters, "ties", {"persona": 0.5, "agentic": 0.5},
                                  module_weights={"mlp": {"persona": 1.0}})
    with pytest.raises(FteforgeError, match="set normalize: true"):
        mk.render_mergekit_config(tiny_llama_dir, adapters, "linear", {"persona": 0.5, "agentic": 0.5},
                                  normalize=False, module_weights={"mlp": {"persona": 1.0, "agentic": 0.0}})


# --- engines on the tiny model ----------------------------------------------------------------------

@pytest.mark.slow
def test_mergekit_identity_merge_and_content_keyed_cache(tiny_llama_dir, adapters, tmp_path):
    """One adapter at weight 1.0 equals PEFT merge_and_unload within atol 1e-5 (linear, and TIES at density 1).

    Then the adapter is retrained in place (same path, new weights): the merge must follow the new
    content, where mergekit's own path-keyed LoRA cache would have reused the old merge.
    """
    adapter = tmp_path / "adapter"
    shutil.copytree(adapters["persona"], adapter)
    cache = tmp_path / "cache"
    start = time.perf_counter()
    for method, knobs in (("linear", {}), ("ties", {"density": 1.0})):
        cfg = mk.render_mergekit_config(tiny_llama_dir, {"persona": adapter}, method, {"persona": 1.0}, **knobs)
        out = tmp_path / f"out-{method}"
        prov = mk.run(cfg, out, cache, seed=0)
        assert (out / "mergekit_config.yml").read_text() == mk.config_yaml(cfg)
        assert json.loads((out / "merge_sources.json").read_text())["lora_cache_key"] == prov["lora_cache_key"]
        for f in ("config.json", "tokenizer.json", "generation_config.json"):
            assert (out / f).is_file(), f
        got, want = _load_dir(out), _merged_reference(tiny_llama_dir, adapter)
        missing = set(want) - set(got) - {"lm_head.weight"}  # tied to the embeddings
        assert not missing
        for k, v in got.items():
            torch.testing.assert_close(v, want[k], atol=ATOL, rtol=0, msg=k)
    first_key = prov["lora_cache_key"]

    shutil.rmtree(adapter)
    shutil.copytree(adapters["agentic"], adapter)  # "retrained in place"
    cfg = mk.render_mergekit_config(tiny_llama_dir, {"persona": adapter}, "linear", {"persona": 1.0})
    prov = mk.run(cfg, tmp_path / "out-again", cache, seed=0)
    assert prov["lora_cache_key"] != first_key
    got, want = _load_dir(tmp_path / "out-again"), _merged_reference(tiny_llama_dir, adapter)
    for k, v in got.items():
        torch.testing.assert_close(v, want[k], atol=ATOL, rtol=0, msg=k)
    print(f"3 mergekit runs: {time.perf_counter() - start:.1f} s")


@pytest.mark.slow
def test_module_weights_route_each_adapter_to_its_modules(tiny_llama_dir, adapters, tmp_path):
    """task_arithmetic, persona 1.0 on the MLP only and agentic 1.0 everywhere else: each merged tensor
    equals the base plus exactly one adapter's dW, the one its module was given to (atol 1e-5)."""
    from fteforge.merging.build import build_merge

    candidate = _candidate(method="task_arithmetic", weights={"persona": 0.0, "agentic": 1.0},
                           module_weights={"mlp": {"persona": 1.0, "agentic": 0.0}})
    metrics = build_merge("routed", candidate, base_dir=tiny_llama_dir, adapters_root=adapters["persona"].parent,
                          decision_path=tmp_path / "none.json", out_dir=tmp_path / "routed",
                          cache_dir=tmp_path / "cache", seed=0, threads=1)
    assert metrics["merge.module_weights"] == {"mlp": {"persona": 1.0, "agentic": 0.0}}
    got = _load_dir(tmp_path / "routed")
    persona = _merged_reference(tiny_llama_dir, adapters["persona"])
    agentic = _merged_reference(tiny_llama_dir, adapters["agentic"])
    checked = 0
    for key, tensor in got.items():
        if key.endswith("proj.weight"):
            want = persona[key] if ".mlp." in key else agentic[key]
            torch.testing.assert_close(tensor, want, atol=ATOL, rtol=0, msg=key)
            checked += 1
    assert checked == 7 * 2  # q k v o gate up down, both layers of the tiny model


@pytest.mark.slow
def test_mergekit_dare_is_reproducible(tiny_llama_dir, adapters, tmp_path):
    """DARE-TIES with a seed is byte-identical run to run, cold LoRA cache (run a) or warm (b); another seed differs."""
    cfg = mk.render_mergekit_config(tiny_llama_dir, adapters, "dare_ties", {"persona": 0.6, "agentic": 0.4},
                                    density=0.5)
    cache = tmp_path / "cache"
    files = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        out = tmp_path / name / "merged"  # same folder name: the model card quotes it
        mk.run(cfg, out, cache, seed=seed)
        files[name] = {f.name: f.read_bytes() for f in sorted(out.iterdir())}
    assert files["a"] == files["b"]  # every file, README and provenance included: DVC sees no change
    assert files["a"]["model.safetensors"] != files["c"]["model.safetensors"]
    assert "README.md" in files["a"]


def test_peft_engine_writes_one_loadable_adapter(tiny_llama_dir, adapters, tmp_path):
    """`cat` is exact: the merged adapter's dW is the weighted sum of the two dWs (atol 1e-5)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "merged"
    prov = merge_lora(tiny_llama_dir, adapters, out, combination_type="cat", weights={"persona": 0.6, "agentic": 0.4})
    assert prov["combination_type"] == "cat"
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()
    assert not (out / "merged").exists()
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), out)
    assert model.peft_config["default"].r == 8  # cat: ranks add up
    da, db, dm = (analysis.delta_w(d) for d in (adapters["persona"], adapters["agentic"], out))
    for k in da:
        torch.testing.assert_close(dm[k], 0.6 * da[k] + 0.4 * db[k], atol=ATOL, rtol=0)
    with pytest.raises(FteforgeError, match="needs a density"):
        merge_lora(tiny_llama_dir, adapters, tmp_path / "x", combination_type="ties", weights={"persona": 1, "agentic": 1})


def _candidate(**fields):
    from fteforge.params import MergeCandidate

    return MergeCandidate.model_validate(fields)


def test_build_merge_follows_the_recorded_strategy(tiny_llama_dir, adapters, tmp_path):
    """`method: strategy` merges with whatever analyze_adapters decided; density/rescale go only where they apply."""
    from fteforge.merging.build import build_merge

    decision = tmp_path / "analysis" / "strategy.json"
    decision.parent.mkdir()
    candidate = _candidate(method="strategy", weights={"persona": 0.6, "agentic": 0.4}, density=0.5, rescale=True,
                           normalize=True)
    densities = {}
    for method, conflicts in (("ties", False), ("dare_ties", True)):
        decision.write_text(json.dumps({"method": method, "conflicts_detected": conflicts}))
        out = tmp_path / method
        metrics = build_merge("s", candidate, base_dir=tiny_llama_dir, adapters_root=adapters["persona"].parent,
                              decision_path=decision, out_dir=out, cache_dir=tmp_path / "cache", seed=0, threads=1)
        config = yaml.safe_load((out / mk.CONFIG_NAME).read_text())
        assert config["merge_method"] == metrics["merge.method"] == method
        assert ("rescale" in config["parameters"]) == (method == "dare_ties")
        assert metrics["merge.output"] == "model" and metrics["merge.size_mb"] > 0
        assert "analyze_adapters" in metrics["merge.strategy_reasons"][0]
        densities[method] = metrics["merge.update_density"]
    # each adapter keeps half its entries (ties: top |dW|; DARE: a random half); together they cover more
    # than half of each touched tensor, and never all of it
    assert all(0.5 < d < 1.0 for d in densities.values()), densities


def test_build_merge_peft_candidate_and_refusals(tiny_llama_dir, adapters, tmp_path):
    from fteforge.merging.build import build_merge

    kw = dict(base_dir=tiny_llama_dir, adapters_root=adapters["persona"].parent, decision_path=tmp_path / "none.json",
              cache_dir=tmp_path / "cache", seed=0, threads=1)
    metrics = build_merge("lora", _candidate(engine="peft", method="cat", weights={"persona": 1.0, "agentic": 1.0}),
                          out_dir=tmp_path / "lora", **kw)
    assert metrics["merge.output"] == "adapter" and (tmp_path / "lora" / "adapter_model.safetensors").is_file()

    with pytest.raises(FteforgeError, match=r"merge.candidates.x.weights names adapter 'ghost'.*train_adapter@ghost"):
        build_merge("x", _candidate(method="ties", weights={"persona": 0.5, "ghost": 0.5}, density=0.5),
                    out_dir=tmp_path / "x", **kw)
    with pytest.raises(FteforgeError, match="run `dvc repro analyze_adapters`"):
        build_merge("y", _candidate(method="strategy", weights={"persona": 0.5, "agentic": 0.5}),
                    out_dir=tmp_path / "y", **kw)
    with pytest.raises(FteforgeError, match="linear keeps every entry"):
        build_merge("z", _candidate(method="linear", weights={"persona": 0.5, "agentic": 0.5}, density=0.5),
                    out_dir=tmp_path / "z", **kw)
    assert not any((tmp_path / n).exists() for n in "xyz")


def test_merge_params_errors_name_the_field(tmp_path):
    from fteforge.errors import ParamsError
    from fteforge.params import MergeParams, load_params

    bad = {
        "method: slerp": "is not a mergekit method",
        "engine: peft\n      method: cat\n      normalize: true": "the peft engine has none of them",
        "method: ties\n      wieghts: {a: 1}": "wieghts",
        "method: ties\n      module_weights: {mlp: {a: 1.0}}": "give a weight for each of",
        "method: ties\n      module_weights: {'': {a: 1.0, b: 0.0}}": "empty key",
        "method: ties\n      weights: {a: [0.5], b: 0.5}": "needs 2\\+ values",
        "engine: peft\n      method: cat\n      weights: {a: [0.2, 0.8], b: 0.5}": "the peft engine takes one number",
    }
    for body, message in bad.items():
        path = tmp_path / "params.yaml"
        path.write_text(f"merge:\n  seed: 0\n  threads: 1\n  candidates:\n    c1:\n      {body}\n"
                        + ("      weights: {a: 0.5, b: 0.5}\n" if not re.search(r"(^|\s)w[ie]+ghts:", body) else ""))
        with pytest.raises(ParamsError, match=message) as err:
            load_params("merge", MergeParams, path)
        assert str(path) in str(err.value) and "merge.candidates.c1" in str(err.value).replace(" > ", ".")
