"""scripts/gpu_bench.py on a CPU: id counting, peak memory fields, partial results, epoch hours, the random model."""
from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import pytest

import kokoro_nb
from kokoro_nb import generate
from kokoro_nb.train import models, plan

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("gpu_bench", ROOT / "scripts" / "gpu_bench.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from kokoro_nb.testing.synthetic import write_kokorochat
    return write_kokorochat(tmp_path_factory.mktemp("bench") / "k", n_dialogues=16)


@pytest.fixture(scope="module")
def corpus(data_dir):
    return kokoro_nb.load_kokorochat(data_dir, cache=False, progress=False)


@pytest.fixture(scope="module")
def wide_model(bench, corpus, tmp_path_factory):
    """A tiny Llama whose output layer has 4x the tokenizer's ids, as the 8B bench model (128,256 vs 32,000)."""
    return bench.write_random_model(models.tiny_tokenizer_texts(corpus), tmp_path_factory.mktemp("wide") / "m", "tiny",
                                    vocab_size=512, model_vocab_size=2048)


def test_random_model_is_written_one_layer_per_shard_and_loads_complete(bench, wide_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    index = json.loads((wide_model / "model.safetensors.index.json").read_text())
    shards: dict[str, set] = {}
    for name, f in index["weight_map"].items():
        shards.setdefault(f, set()).add(name.split(".")[2] if ".layers." in name else name)
    assert len(shards) == 2 + 3 and all(len(v) == 1 for v in shards.values())    # layer 0, layer 1, embed, norm, head
    model, info = AutoModelForCausalLM.from_pretrained(wide_model, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert model.lm_head.weight.shape[0] == 2048 > len(AutoTokenizer.from_pretrained(wide_model))
    assert str(model.dtype) == "torch.bfloat16"
    assert float(model.model.norm.weight.detach().float().mean()) == 1.0
    assert 0.01 < float(model.lm_head.weight.detach().float().std()) < 0.03              # initializer_range 0.02


def test_the_8b_model_is_planned_without_memory_and_written_in_shards_of_one_layer(bench, corpus):
    import math
    import resource
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tok = models.train_tokenizer(models.tiny_tokenizer_texts(corpus), 512)
    plan_ = bench.shard_plan(models.llama_config(tok, "llama-3.1-8b", vocab_size=128256))
    sizes = [sum(math.prod(shape) for _, shape in tensors) for tensors in plan_.values()]
    assert sum(sizes) == 8_030_261_248 and len(sizes) == 32 + 3          # Llama-3.1-8B, one shard per layer
    assert max(sizes) * 2 < 1.1e9                                        # the largest shard in bf16: the embedding
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 2 ** 20    # < 1 GiB more (KiB units)


def test_generated_ids_are_counted_even_those_the_tokenizer_lacks(bench, corpus, wide_model, tmp_path):
    import torch
    args = argparse.Namespace(gen_prompts=3, max_length=256, new_tokens=12)
    row = bench.bench_generation(corpus, str(wide_model), tmp_path, "hf", args)

    # what the model produced, counted here without the package's helpers
    model, tok = generate.load_generator(str(wide_model), backend="hf", load_in_4bit=False, progress=False)
    prompts = bench.bench_prompts(corpus, 3)
    assert len(prompts) == 3 == row["prompts"]
    prompts, _ = kokoro_nb.train.sft.fit_history(prompts, tok, 256 - 12)
    settings = generate.greedy_settings(tok, 12)
    produced, beyond = 0, 0
    for ids in generate.encode_prompts(prompts, tok):
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), **generate.hf_generate_kwargs(settings, tok))[0, len(ids):]
        new = out.tolist()
        stops = [k for k, i in enumerate(new) if i in settings["stop_token_ids"]]
        new = new[:stops[0] + 1] if stops else new
        produced += len(new)
        beyond += sum(i >= len(tok) for i in new)
    retokenized = sum(len(tok(r["hypothesis"], add_special_tokens=False)["input_ids"])
                      for r in generate.read_responses(tmp_path / "gen-hf.jsonl"))
    assert beyond > 0                                        # the case re-tokenizing gets wrong
    assert row["new_tokens"] == produced and retokenized < produced
    assert row["new_tokens_per_s"] == pytest.approx(produced / row["seconds"])


def test_epoch_hours_come_from_the_llama31_counts(bench):
    tokens = plan.LLAMA31_EPOCH[("full", "session", 4096)]["tokens"]
    out = bench.epoch_hours(2000.0, "session", 4096)
    assert out["full_epoch_tokens"] == tokens and out["full_epoch_hours"] == pytest.approx(tokens / 2000 / 3600)
    assert out["epoch_tokens_source"] == plan.LLAMA31_SOURCE
    assert bench.epoch_hours(2000.0, "per_turn", 1234) == {}          # not counted: no guess
    assert bench.epoch_hours(None, "session", 4096) == {}


def test_training_row_uses_the_measured_counts_not_the_bench_tokenizer(bench, monkeypatch, corpus, tmp_path):
    from kokoro_nb.train import loop
    seen = {}

    def fake_train(cfg, corpus, **kw):
        seen["cfg"] = cfg
        return {"global_step": cfg.max_steps, "tokens_seen": 96_000, "runtime_s": 40.0, "tokens_per_s": 2400.0,
                "peak_rss_gb": 3.0, "device": "cuda"}

    monkeypatch.setattr(loop, "train", fake_train)
    args = argparse.Namespace(max_length=4096, steps=8)
    row = bench.bench_training(corpus, "m", tmp_path, "per_turn", args)
    assert seen["cfg"].max_steps == 8 and seen["cfg"].max_length == 4096
    tokens = plan.LLAMA31_EPOCH[("full", "per_turn", 4096)]["tokens"]
    assert row["full_epoch_hours"] == pytest.approx(tokens / 2400 / 3600)


def test_phase_records_allocated_and_reserved_peaks(bench, monkeypatch, tmp_path):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda: None)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda: 9 * 2 ** 30)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda: 11.5 * 2 ** 30)
    result = {"phases": []}
    row = bench.run_phase(result, "x", lambda: {"tokens_per_s": 1.0}, tmp_path / "b.json")
    assert row["max_memory_allocated_gb"] == 9 and row["max_memory_reserved_gb"] == 11.5
    on_disk = json.loads((tmp_path / "b.json").read_text())["phases"][0]
    assert on_disk["max_memory_reserved_gb"] == 11.5 and on_disk["ok"]


class Killed(BaseException):
    """Stands for the process being killed mid-phase (not an Exception: nothing catches it)."""


def _fake_phases(bench, monkeypatch, fail):
    monkeypatch.setattr(bench, "prepare_model", lambda corpus, out, arch: "model-path")

    def training(corpus, model, out, mode, args):
        if mode in fail:
            raise fail[mode]
        return {"mode": mode, "tokens_per_s": 1000.0, **bench.epoch_hours(1000.0, mode, 4096)}

    monkeypatch.setattr(bench, "bench_training", training)
    monkeypatch.setattr(bench, "bench_generation", lambda corpus, model, out, b, args: {
        "backend": b, "prompts": 4, "seconds": 2.0, "new_tokens": 64, "new_tokens_per_s": 32.0})


def test_a_failing_phase_is_recorded_and_the_others_still_run(bench, monkeypatch, data_dir, tmp_path, capsys):
    # not a KokoroError: what vLLM or CUDA raise
    _fake_phases(bench, monkeypatch, {"per_turn": ValueError("Unknown quantization method: bitsandbytes")})
    rc = bench.main(["--data", str(data_dir), "--out", str(tmp_path), "--dry-run", "--generate"])
    assert rc == 1
    res = json.loads((tmp_path / "bench.json").read_text())
    failed = [p for p in res["phases"] if not p["ok"]]
    assert [p["phase"] for p in failed] == ["train per_turn"]
    assert failed[0]["error"] == "ValueError: Unknown quantization method: bitsandbytes"
    assert [r["mode"] for r in res["training"]] == ["session"] and res["generation"][0]["backend"] == "hf"
    assert res["auto_backend"].startswith("hf")
    captured = capsys.readouterr()
    assert "phase train per_turn failed" in captured.err and "| `session` |" in captured.out


def test_results_are_on_disk_after_each_phase(bench, monkeypatch, data_dir, tmp_path):
    _fake_phases(bench, monkeypatch, {"session": Killed()})
    with pytest.raises(Killed):
        bench.main(["--data", str(data_dir), "--out", str(tmp_path), "--dry-run"])
    res = json.loads((tmp_path / "bench.json").read_text())
    assert [p["phase"] for p in res["phases"]] == ["build model", "train per_turn"]
    assert res["training"][0]["mode"] == "per_turn" and res["training"][0]["full_epoch_hours"] > 0


def test_bad_data_folder_is_exit_2(bench, tmp_path, capsys):
    assert bench.main(["--data", str(tmp_path / "nope"), "--out", str(tmp_path), "--dry-run"]) == 2
    assert "gpu_bench.py:" in capsys.readouterr().err


@pytest.mark.slow
def test_dry_run_measures_every_phase_on_cpu(bench, data_dir, tmp_path):
    assert bench.main(["--data", str(data_dir), "--out", str(tmp_path), "--dry-run", "--generate"]) == 0
    res = json.loads((tmp_path / "bench.json").read_text())
    assert all(p["ok"] for p in res["phases"]) and [r["mode"] for r in res["training"]] == ["per_turn", "session"]
    assert all(r["tokens_per_s"] > 0 and r["steps"] == 2 for r in res["training"])
    (g,) = res["generation"]
    assert g["backend"] == "hf" and 0 < g["new_tokens"] <= 4 * 16
