"""QLoRA training: Appendix D defaults, CPU smoke run (4-bit + 8-bit optimiser), artifacts, resume."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import kokoro_nb
from kokoro_nb import config
from kokoro_nb import published
from kokoro_nb.describe import ledger
from kokoro_nb.cli import main
from kokoro_nb.cli import train as cli_train
from kokoro_nb.errors import DataError
from kokoro_nb.train import checkpoints, loop, models, rows, sft
from kokoro_nb.train import config as train_config

# ../shared beside the project checkout (as CI lays it out), never an absolute path
SHARED_VALUES = Path(__file__).resolve().parents[3] / "shared" / "papers" / "kokorochat-paper-values.yaml"
SECRET = "hf_THIS_IS_NOT_A_REAL_TOKEN_0123456789"


def _appendix_d() -> list[dict]:
    """Appendix D from the package's table and, when present, the shared transcription."""
    import yaml
    out = [published.load()["appendix_d_training"]]
    if not SHARED_VALUES.exists() and config.data_required():
        raise FileNotFoundError(f"{SHARED_VALUES}: missing (KOKORO_REQUIRE_DATA=1 forbids skipping)")
    if SHARED_VALUES.exists():
        out.append(yaml.safe_load(SHARED_VALUES.read_text(encoding="utf-8"))["appendix_d_training"])
    return out


@pytest.mark.parametrize("d", _appendix_d())
def test_defaults_are_appendix_d_line_by_line(d):
    rg, sp = d["response_generation"], d["score_prediction"]
    r, s = train_config.ResponseTrainConfig(), train_config.ScoreTrainConfig()
    assert r.model_name == s.model_name == d["base_model"] == config.BASE_MODEL
    for c in (r, s):                                            # QLoRA, the same for both tasks
        assert (c.load_in_4bit, c.bnb_4bit_quant_type, c.bnb_4bit_compute_dtype) == \
            (rg["quantization"]["bits"] == 4, rg["quantization"]["type"], rg["quantization"]["compute_dtype"])
        assert (c.lora_r, c.lora_alpha, c.lora_dropout) == (rg["lora"]["r"], rg["lora"]["alpha"], rg["lora"]["dropout"])
        assert list(c.lora_target_modules) == rg["lora"]["target_modules"]
    assert (r.optim, r.learning_rate, r.warmup_steps, r.batch_size, r.epochs) == \
        (rg["optimizer"], rg["learning_rate"], rg["warmup_steps"], rg["batch_size"], rg["epochs"])
    assert (r.eval_strategy, r.eval_steps) == ("steps", rg["eval_every_steps"])
    assert rg["model_selection"] == "lowest validation loss"
    assert (r.metric_for_best_model, r.greater_is_better) == ("eval_loss", False)
    assert (s.optim, s.learning_rate, s.warmup_steps, s.batch_size, s.epochs) == \
        (sp["optimizer"], sp["learning_rate"], sp["warmup_steps"], sp["batch_size"], sp["epochs"])
    assert "highest validation accuracy" in sp["model_selection"] and "epoch" in sp["model_selection"]
    assert (s.eval_strategy, s.metric_for_best_model, s.greater_is_better) == ("epoch", "eval_item_accuracy", True)


@pytest.mark.parametrize("overrides,field", [
    ({"subset": "middle"}, "subset"), ({"mode": "packed"}, "mode"), ({"batch_size": 0}, "batch_size"),
    ({"max_length": 8}, "max_length"), ({"learning_rate": 0}, "learning_rate"), ({"nope": 1}, "nope"),
])
def test_bad_settings_name_the_field(overrides, field):
    with pytest.raises(DataError, match=field):
        train_config.make_config("response", **overrides)


def test_parse_overrides_types_values():
    got = cli_train.parse_overrides(["max_steps=40", "learning_rate=5e-3", "mode=session", "max_length=null"], "response")
    assert got == {"max_steps": 40, "learning_rate": 5e-3, "mode": "session", "max_length": None}
    with pytest.raises(DataError, match="NAME=VALUE"):
        cli_train.parse_overrides(["max_steps"], "response")


def test_hf_token_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    assert models.hf_token() == SECRET


def test_score_positions_find_the_twenty_digits(tmp_path):
    tok = models.train_tokenizer([sft.format_scores([i % 6 for i in range(20)]), sft.score_instruction()], 300)
    answer = sft.format_scores([i % 6 for i in range(20)]) + "<|eot_id|>"
    ids = tok(answer, add_special_tokens=False)["input_ids"]
    pos = loop.score_positions([-100, -100] + ids, tok)
    assert [int(tok.decode([ids[p - 2]])) for p in pos] == [i % 6 for i in range(20)]


# --------------------------------------------------------------------------- real training runs (tiny model)

@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from kokoro_nb.testing.synthetic import write_kokorochat
    root = write_kokorochat(tmp_path_factory.mktemp("train") / "k", n_dialogues=24)
    return kokoro_nb.load_kokorochat(root, cache=False, progress=False)


def _smoke(out: Path, **kw) -> train_config.TrainConfig:
    base = dict(model_name=config.TINY_MODEL, output_dir=str(out), mode="session", max_length=192, max_steps=12,
                batch_size=4, per_device_batch_size=4, learning_rate=5e-3, warmup_steps=2, eval_steps=6,
                logging_steps=2, max_eval_examples=4)
    return train_config.make_config("response", **{**base, **kw})


RESUME_KW = dict(max_steps=8, eval_steps=4, save_steps=2, logging_steps=1, save_total_limit=None)


@pytest.fixture(scope="module")
def straight(corpus, tmp_path_factory):
    """One uninterrupted smoke run (HF token set), with everything it printed."""
    import contextlib
    import io
    import os
    out, buf = tmp_path_factory.mktemp("straight") / "run", io.StringIO()
    old = os.environ.get("HF_TOKEN")
    os.environ["HF_TOKEN"] = SECRET
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            m = loop.train(_smoke(out, **RESUME_KW), corpus, progress=True)
    finally:
        os.environ.pop("HF_TOKEN") if old is None else os.environ.__setitem__("HF_TOKEN", old)
    return m, out, buf.getvalue()


def test_smoke_run_trains_4bit_with_8bit_optimizer_and_writes_artifacts(straight):
    m, out, printed = straight
    assert m["last_logged_loss"] < m["first_logged_loss"]                  # the loss fell
    assert any("4-bit nf4" in n for n in m["notes"]) and any("adamw_8bit" in n for n in m["notes"])
    assert m["optimizer_class"] == "AdamW" and m["global_step"] == 8
    import bitsandbytes as bnb
    base = models.load_base_model(str(out / "base_model"))[0]
    assert isinstance(base.model.layers[0].self_attn.q_proj, bnb.nn.Linear4bit)
    for f in ("adapter/adapter_config.json", "adapter/adapter_model.safetensors", "config.json", "metrics.json"):
        assert (out / f).exists(), f
    assert json.loads((out / "config.json").read_text())["mode"] == "session"
    log = [json.loads(x) for x in (out / "training_log.jsonl").read_text().splitlines()]
    assert any("tokens_per_s" in r and "est_minutes_per_epoch" in r and "peak_rss_gb" in r for r in log)
    assert any("eval_loss" in r for r in log)
    assert "tok/s" in printed and "4-bit" in printed
    everything = printed + "".join(p.read_text(errors="ignore") for p in out.glob("*.json*"))
    assert SECRET not in everything


class _Disconnect(Exception):
    pass


def _disconnect_after(step: int):
    from transformers import TrainerCallback

    class Cb(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            if state.global_step == step:
                raise _Disconnect

    return Cb()


def _adapter_weights(folder: Path) -> dict:
    from safetensors.torch import load_file
    return load_file(str(folder / "adapter_model.safetensors"))


def test_resume_ends_in_the_same_state_as_an_uninterrupted_run(corpus, straight, tmp_path):
    """Disconnect after the save at step 6, truncate that checkpoint: resume from step 4, end as if never stopped."""
    import torch
    kw = RESUME_KW
    a, straight, _ = straight
    broken = tmp_path / "broken"
    with pytest.raises(_Disconnect):
        loop.train(_smoke(broken, **kw), corpus, callbacks=[_disconnect_after(6)], progress=False)
    assert checkpoints.last_checkpoint(broken).endswith("checkpoint-6")
    newest = broken / "checkpoints" / "checkpoint-6" / "adapter_model.safetensors"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])     # a save cut short by the disconnect
    b = loop.train(_smoke(broken, **kw), corpus, progress=False)
    assert b["resumed_from"].endswith("checkpoint-4") and b["global_step"] == a["global_step"] == 8
    assert any("incomplete checkpoint checkpoint-6" in n and "bytes" in n for n in b["notes"])
    assert checkpoints.is_complete(broken / "checkpoints" / "checkpoint-6")   # saved again, completely
    wa = _adapter_weights(straight / "checkpoints" / "checkpoint-8")
    wb = _adapter_weights(broken / "checkpoints" / "checkpoint-8")
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=0)
    assert any(not torch.equal(wa[k], _adapter_weights(broken / "checkpoints" / "checkpoint-4")[k]) for k in wa)
    la = dict(loop.logged_losses(straight))
    lb = dict(loop.logged_losses(broken))
    assert {s: round(v, 5) for s, v in la.items()} == {s: round(v, 5) for s, v in lb.items()}
    assert a["best_metric"] == pytest.approx(b["best_metric"], abs=1e-6)
    # throughput after the resume counts only the tokens of steps 5-8, trained in this run
    at4 = json.loads((straight / "checkpoints" / "checkpoint-4" / "trainer_state.json").read_text())
    assert b["tokens_seen"] == a["tokens_seen"] and a["tokens_this_run"] == a["tokens_seen"]
    assert b["tokens_this_run"] == a["tokens_seen"] - at4["num_input_tokens_seen"] > 0
    assert b["tokens_per_s"] == pytest.approx(b["tokens_this_run"] / b["runtime_s"])


def test_best_adapter_is_the_best_validated_checkpoint_not_the_last(corpus, tmp_path):
    """Checkpoints come more often than validations; adapter/ holds the weights of the best validation."""
    import torch
    m = loop.train(_smoke(tmp_path / "best", **{**RESUME_KW, "greater_is_better": True}), corpus, progress=False)
    losses = {e["step"]: e["eval_loss"] for e in m["eval_history"]}
    assert losses[4] > losses[8] and m["best_model_checkpoint"].endswith("checkpoint-4")   # "best" = highest here
    best = _adapter_weights(Path(m["best_model_checkpoint"]))
    final = _adapter_weights(tmp_path / "best" / "adapter")
    for k in best:
        torch.testing.assert_close(final[k].float(), best[k].float(), rtol=0, atol=0)


# 20 examples = 5 global batches of 4: in an epoch's last, partial batch, DDP would repeat examples to fill it
DDP_KW = dict(max_steps=5, max_train_examples=20, eval_steps=3, save_steps=3, logging_steps=1)


@pytest.mark.slow
def test_two_processes_train_like_one_at_the_same_global_batch(corpus, tmp_path):
    """``torchrun --nproc_per_node 2`` (gloo on CPU) through the CLI, unchanged code: same global batch, same losses."""
    import os
    import subprocess
    import sys
    one = loop.train(_smoke(tmp_path / "one", **DDP_KW), corpus, progress=False, quiet=True)
    out = tmp_path / "two"
    sets = {**DDP_KW, "model_name": config.TINY_MODEL, "output_dir": str(out), "mode": "session", "max_length": 192,
            "batch_size": 4, "per_device_batch_size": 2, "learning_rate": 5e-3, "warmup_steps": 2,
            "max_eval_examples": 4}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "kokoro_nb.cli", "-q", "train", "response", "--data", corpus.report.source, "--json"]
    cmd += [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    src = str(Path(kokoro_nb.__file__).parents[1])
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    two = json.loads(run.stdout)                                   # one report, from the main process
    assert two["global_step"] == one["global_step"] == 5
    assert two["effective_batch"] == one["effective_batch"] == 4 and two["gradient_accumulation_steps"] == 1
    assert two["first_logged_loss"] == pytest.approx(one["first_logged_loss"], abs=1e-4)   # the same first batch
    assert two["last_logged_loss"] < two["first_logged_loss"]
    assert two["last_logged_loss"] == pytest.approx(one["last_logged_loss"], rel=0.01)     # dropout masks differ
    assert two["tokens_seen"] == one["tokens_seen"]                # both processes' tokens are counted
    ckpt = checkpoints.last_checkpoint(out)
    assert ckpt.endswith("checkpoint-5") and checkpoints.is_complete(ckpt)
    marker = json.loads((Path(ckpt) / checkpoints.COMPLETE_MARKER).read_text())
    assert {"rng_state_0.pth", "rng_state_1.pth"} <= set(marker["files"])       # both ranks' RNG, then the marker
    assert (out / "adapter" / "adapter_model.safetensors").exists()
    assert run.stderr.count("[train] bitsandbytes 4-bit") == 1     # notes printed once


def test_score_task_selects_by_item_accuracy(corpus, tmp_path):
    cfg = train_config.make_config("score", model_name=config.TINY_MODEL, output_dir=str(tmp_path / "score"),
                            max_length=1024, max_steps=2, batch_size=2, per_device_batch_size=2,
                            learning_rate=5e-3, warmup_steps=0, eval_strategy="steps", eval_steps=2,
                            logging_steps=1, max_eval_examples=2, optim="adamw_torch")
    m = loop.train(cfg, corpus, progress=False)
    ev = m["eval_history"][-1]
    assert ev["eval_items_scored"] == 2 * 20
    assert 0 <= ev["eval_item_accuracy"] <= ev["eval_item_accuracy_soft"] <= 1
    assert m["best_metric"] == ev["eval_item_accuracy"]


def test_cli_train_rejects_unknown_setting(capsys):
    assert main(["train", "response", "--set", "warmup=3"]) == 2
    assert "warmup_steps" in capsys.readouterr().err


def test_llama_31_8b_shape_has_8b_parameters():
    """The random-weights GPU benchmark model has Llama-3.1-8B's exact size (meta device: no memory)."""
    import torch
    from transformers import LlamaForCausalLM

    class Vocab:                                  # Llama 3.1's vocabulary size and special ids
        bos_token_id, eos_token_id, pad_token_id = 128000, 128009, 128004

        def __len__(self):
            return 128256

    with torch.device("meta"):
        model = LlamaForCausalLM(models.llama_config(Vocab(), "llama-3.1-8b"))
    assert sum(p.numel() for p in model.parameters()) == 8_030_261_248
    with pytest.raises(DataError, match="llama-3.1-8b"):
        models.llama_config(Vocab(), "llama-9")


def test_build_random_llama_keeps_the_full_vocabulary_rows(tmp_path, monkeypatch):
    import torch
    from transformers import AutoConfig
    monkeypatch.setitem(models.ARCHITECTURES, "mini", dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                                          num_attention_heads=2, num_key_value_heads=1))
    path = models.build_random_llama(["こんにちは、よろしくお願いします。"] * 20, tmp_path / "m", "mini",
                                    vocab_size=300, model_vocab_size=512)
    cfg = AutoConfig.from_pretrained(path)
    assert cfg.vocab_size == 512 and cfg.hidden_size == 32
    assert torch.get_default_dtype() == torch.float32           # restored after building in bf16


def test_cli_train_runs_the_smoke_configuration(synthetic_kokorochat_dir, tmp_path, capsys, monkeypatch):
    calls = []

    def counted(name, real):
        def wrapper(*a, **kw):
            calls.append(name)
            return real(*a, **kw)
        return wrapper

    for name in ("prefetch_for_launch", "process_state"):
        monkeypatch.setattr(models, name, counted(name, getattr(models, name)))
    out = tmp_path / "cli"
    rc = main(["-q", "train", "response", "--data-dir", str(synthetic_kokorochat_dir),
               "--set", "model_name=tiny-random-llama", "--set", f"output_dir={out}", "--set", "mode=session",
               "--set", "max_length=128", "--set", "max_steps=2", "--set", "batch_size=2",
               "--set", "per_device_batch_size=2", "--set", "eval_steps=2", "--set", "max_eval_examples=2",
               "--set", "eval_sample=1", "--json"])
    assert rc == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["global_step"] == 2 and (out / "adapter" / "adapter_config.json").exists()
    # one validation row during training, then the whole validation set once at the end
    assert metrics["eval_examples_during_training"] == 1 and "final_eval_loss" in metrics["final_validation"]
    assert calls == ["prefetch_for_launch", "process_state"]      # once per run: train() reuses the CLI's state


# --------------------------------------------------------------------------- devices

DEVICES = [  # (name, native bf16, bf16 through emulation) -> expected compute dtype
    ("Tesla T4", False, True, "float16"),
    ("Tesla V100-SXM2-16GB", False, True, "float16"),
    ("NVIDIA L4", True, True, "bfloat16"),
    ("NVIDIA A100-SXM4-40GB", True, True, "bfloat16"),
]


@pytest.mark.parametrize("name,native,emulated,want", DEVICES, ids=[d[0] for d in DEVICES])
def test_dtype_is_what_the_gpu_supports_natively(monkeypatch, name, native, emulated, want):
    import torch

    class Props:
        total_memory = 16 * 2 ** 30

    def bf16_supported(including_emulation=True):
        return emulated if including_emulation else native

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", bf16_supported)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: name)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i=0: Props())
    dev = models.runtime_device()
    assert dev["dtype"] == want and dev["bf16"] == (want == "bfloat16")
    picked, note = models.pick_dtype("bfloat16", dev)
    assert picked == want and (note is None) == native
    assert models.pick_dtype("float32", dev) == ("float32", None)


def test_cpu_computes_in_float32():
    assert models.pick_dtype("bfloat16", {"device": "cpu", "name": "cpu", "bf16": False}) == \
        ("float32", "CPU: compute dtype float32 instead of bfloat16")


def test_eval_sample_is_fixed_and_seeded():
    items = list(range(50))
    a = rows.eval_sample(items, 10, 1)
    assert a == rows.eval_sample(items, 10, 1) and len(set(a)) == 10 and a == sorted(a)
    assert rows.eval_sample(items, 10, 2) != a and rows.eval_sample(items, None, 1) == items


# --------------------------------------------------------------------------- plans and profiles

def test_colab_profile_is_one_parameter_from_the_paper():
    paper_cfg, colab = train_config.make_config("response"), train_config.make_config("response", "colab")
    assert (paper_cfg.mode, paper_cfg.subset, paper_cfg.max_steps) == ("per_turn", "full", -1)
    assert (colab.mode, colab.subset) == ("session", "high") and colab.max_steps > 0
    assert train_config.make_config("response", "colab", max_steps=7).max_steps == 7
    score = train_config.make_config("score", "colab")           # validates within its 150 steps, not once per epoch
    assert score.max_steps == 150 and score.eval_strategy == "steps" and score.eval_steps < score.max_steps
    with pytest.raises(DataError, match="profile"):
        train_config.make_config("response", "laptop")


def test_memory_estimate_terms_follow_the_libraries():
    """Each term from what the pinned libraries do (see plan.estimate_memory_gb): 4-bit linears, fp32
    embedding and head, LoRA from r, fp32 layer inputs, no full logits in training."""
    from kokoro_nb.train import plan
    a, b = plan.estimate_memory_gb(2048), plan.estimate_memory_gb(4096)
    assert a["total"] < b["total"] <= 16                 # the goal: QLoRA 8B at 4k tokens within 16 GB
    assert b["weights_4bit"] == pytest.approx(6_979_321_856 * (0.5 + 0.127 / 8) / 2 ** 30)
    assert b["embeddings_fp32"] == pytest.approx(2 * 128_256 * 4096 * 4 / 2 ** 30)   # fp32 after peft's prepare
    assert plan.estimate_memory_gb(4096, double_quant=False)["weights_4bit"] > b["weights_4bit"]
    assert plan.lora_params(r=8) == 20_971_520 and plan.lora_params(r=16) == 2 * 20_971_520
    assert plan.lora_params(r=8, targets=("q_proj", "v_proj")) == 32 * 8 * (8192 + 5120)
    assert plan.estimate_memory_gb(4096, lora_r=64)["lora_and_optimizer"] == pytest.approx(
        8 * b["lora_and_optimizer"])
    assert b["activations"] >= 32 * 4096 * 4096 * 4 / 2 ** 30             # fp32 input of every layer
    assert b["eval_logits"] == 0 and b["loss_chunks"] < 0.5                # chunked loss: no [tokens x vocab]
    s = plan.estimate_memory_gb(8192, task="score")
    assert s["eval_logits"] == pytest.approx(8192 * 128_256 * 4 / 2 ** 30)  # score validation: full fp32 logits
    assert set(plan.memory_sources()) == set(b) - {"total"}
    assert all(("0." in src or "1." in src or "5." in src or "assumption" in src)
               for src in plan.memory_sources().values())                  # each names a version (or says assumption)


def test_training_plan_steps_and_hours():
    from kokoro_nb.train import plan
    df = plan.training_plan({"examples": 80, "tokens": 1_000_000}, batch_size=8, epochs=5)
    assert (df["optimizer_steps"] == 50).all() and (df["tokens"] == 5_000_000).all()
    assert df.loc["A100-40GB", "est_hours"] == pytest.approx(5_000_000 / plan.tokens_per_s("A100-40GB") / 3600,
                                                              abs=0.01)
    assert df.loc["T4", "est_hours"] > df.loc["L4", "est_hours"] > df.loc["H100-80GB", "est_hours"]
    assert df.loc["T4", "est_peak_memory_gb"] > df.loc["L4", "est_peak_memory_gb"]   # fp32 LoRA under fp16
    capped = plan.training_plan({"examples": 80, "tokens": 1_000_000}, batch_size=8, epochs=5, max_steps=5)
    assert (capped["epochs"] == 0.5).all() and (capped["tokens"] == 500_000).all()


def test_llama31_counts_are_consistent_and_reach_the_plan():
    """The measured Llama 3.1 counts: same targets in both modes; the plan quotes them for the matching run."""
    from kokoro_nb.train import plan
    for subset in ("low", "high", "full"):
        a, b = plan.LLAMA31_EPOCH[subset, "per_turn", 4096], plan.LLAMA31_EPOCH[subset, "session", 4096]
        assert a["target_tokens"] == b["target_tokens"] and 15 < a["tokens"] / b["tokens"] < 25
    cfg = train_config.make_config("response")
    assert plan.llama31_epoch(cfg)["tokens"] == 234_641_745
    assert plan.llama31_epoch(train_config.make_config("response", seed=1)) is None
    df = plan.training_plan(plan.llama31_epoch(cfg), batch_size=8, epochs=5)
    assert "131,015 steps" in plan.format_plan(df, plan.llama31_epoch(cfg), cfg)


def test_cli_train_plan_prints_budgets(synthetic_kokorochat_dir, capsys):
    assert main(["-q", "train", "response", "--data-dir", str(synthetic_kokorochat_dir), "--plan", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["epoch"]["target_tokens"] > 0 and out["epoch"]["tokens"] > out["epoch"]["target_tokens"]
    assert {r["gpu"] for r in out["estimates"]} == {"T4", "V100", "L4", "A100-40GB", "A100-80GB", "H100-80GB"}
    assert main(["-q", "train", "response", "--data-dir", str(synthetic_kokorochat_dir), "--plan",
                 "--profile", "colab"]) == 0
    text = capsys.readouterr().out
    assert "ESTIMATES" in text and "mode=session" in text and "T4" in text


def test_cli_train_plan_measure_prints_estimate_and_measurement(synthetic_kokorochat_dir, capsys):
    """On CPU, --measure trains a few real steps of the tiny model and prints both columns."""
    import re
    rc = main(["-q", "train", "response", "--data-dir", str(synthetic_kokorochat_dir), "--plan", "--measure",
               "--measure-steps", "3", "--set", "model_name=tiny-random-llama", "--set", "mode=session",
               "--set", "max_length=256", "--set", "batch_size=2", "--set", "per_device_batch_size=2"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "ESTIMATES" in text and "MEASURED on cpu: 3 optimizer steps of batch 2" in text
    number = r"\d+\.\d+"
    step = re.search(rf"step time \(s\)\s+\S+\s+({number})", text)
    mem = re.search(rf"peak memory \(GiB\)\s+({number})\s+({number})\s+process peak RSS", text)
    assert step and float(step.group(1)) > 0
    assert mem and 0 < float(mem.group(1)) < float(mem.group(2))   # RSS also holds Python, torch and the data
    assert main(["train", "response", "--measure"]) == 2             # --measure goes with --plan


def test_gpu_bench_script_parses_its_arguments():
    """scripts/gpu_bench.py: the GPU benchmark (its --dry-run runs the tiny model on a CPU in minutes)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("gpu_bench", Path(__file__).parents[2] / "scripts" / "gpu_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = bench.build_parser().parse_args([])
    assert (args.arch, args.max_length, args.modes) == ("llama-3.1-8b", 4096, ["per_turn", "session"])
    assert args.arch in models.ARCHITECTURES
    assert bench.build_parser().parse_args(["--dry-run"]).dry_run


def test_free_memory_drops_model_and_optimizer_of_a_trainer():
    import torch

    class FakeTrainer:                            # what transformers.Trainer holds on to
        def __init__(self):
            self.model = self.model_wrapped = torch.nn.Linear(2, 2)
            self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1)
            self.lr_scheduler = object()

    t = FakeTrainer()
    model = t.model
    models.free_memory(t, model)
    assert (t.model, t.model_wrapped, t.optimizer, t.lr_scheduler) == (None, None, None, None)
    assert isinstance(model.weight, torch.nn.Parameter)        # a module passed in is left intact


def test_rerunning_a_finished_run_trains_nothing(corpus, straight):
    """A second run of a finished notebook must not take a step past max_steps (the Trainer would)."""
    m, out, _ = straight
    again = loop.train(_smoke(out, **RESUME_KW), corpus, progress=False, quiet=True)
    assert again["global_step"] == m["global_step"] == 8
    assert not (out / "checkpoints" / "checkpoint-9").exists()


def test_model_download_happens_before_processes_wait(monkeypatch, tmp_path):
    """Under accelerate launch each machine's first process fetches the model first; waits are long enough."""
    import huggingface_hub
    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda name, **kw: calls.append((name, kw)) or "/cache")
    assert models.fetch_model("org/model", "tok") == "/cache"
    assert calls[0][0] == "org/model" and "*.safetensors" in calls[0][1]["allow_patterns"]
    assert models.fetch_model(str(tmp_path)) == str(tmp_path) and models.fetch_model(config.TINY_MODEL)
    assert len(calls) == 1                              # local folders and the tiny model download nothing
    for world, rank, fetched in (("1", "0", 1), ("2", "1", 1), ("2", "0", 2)):
        monkeypatch.setenv("WORLD_SIZE", world)
        monkeypatch.setenv("LOCAL_RANK", rank)
        models.prefetch_for_launch("org/model")          # only the first process of each launched machine
        assert len(calls) == fetched
    monkeypatch.setenv(models.DIST_TIMEOUT_ENV, "600")
    assert models.distributed_timeout_s() == 600
    monkeypatch.setenv(models.DIST_TIMEOUT_ENV, "ten minutes")
    with pytest.raises(DataError, match="KOKORO_DIST_TIMEOUT_S"):
        models.distributed_timeout_s()
    monkeypatch.delenv(models.DIST_TIMEOUT_ENV)
    assert models.distributed_timeout_s() >= 3600        # longer than NCCL's 10 minutes for a 16 GB download
