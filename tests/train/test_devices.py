"""Each GPU type through the one detection function (torch.cuda mocked): the profile a chapter
gets, when a long run needs confirming, the mixed precision and the dtype of the LoRA weights."""
from __future__ import annotations

import pytest

import kokoro_nb
from kokoro_nb import config
from kokoro_nb.train import loop, models, plan
from kokoro_nb.train import config as train_config

GIB = 2 ** 30
# name torch reports, memory it reports (GiB), native bf16 -> plan row, profile for a short plan
DEVICES = {
    "T4": ("Tesla T4", 14.6, False, "T4", "colab"),
    "V100": ("Tesla V100-SXM2-16GB", 15.8, False, "V100", "colab"),
    "L4": ("NVIDIA L4", 22.0, True, "L4", "colab"),
    "A100-40GB": ("NVIDIA A100-SXM4-40GB", 39.4, True, "A100-40GB", "colab"),
    "A100-80GB": ("NVIDIA A100-SXM4-80GB", 79.3, True, "A100-80GB", "paper"),
    "H100": ("NVIDIA H100 80GB HBM3", 79.1, True, "H100-80GB", "paper"),
    "H200": ("NVIDIA H200", 139.8, True, "H100-80GB", "paper"),     # newer Hopper: the H100 row
    "CPU": None,
}


def mock_device(monkeypatch, key: str) -> None:
    """Make torch.cuda report device *key* (or no CUDA for "CPU")."""
    import torch
    spec = DEVICES[key]
    if spec is None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        return
    name, mem, native, _, _ = spec

    class Props:
        total_memory = int(mem * GIB)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: name)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i=0: Props())
    # T4 and V100 report bf16 as supported through emulation only
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: native or including_emulation)


def detect(monkeypatch, key: str) -> dict:
    mock_device(monkeypatch, key)
    try:
        return models.runtime_device()
    finally:
        monkeypatch.undo()                         # the rest of the test runs on the real (CPU) torch


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from kokoro_nb.testing.synthetic import write_kokorochat
    root = write_kokorochat(tmp_path_factory.mktemp("dev") / "k", n_dialogues=24)
    return kokoro_nb.load_kokorochat(root, cache=False, progress=False)


@pytest.fixture(scope="module")
def tok(corpus):
    return models.plan_tokenizer("tiny", corpus)


# --------------------------------------------------------------------------- profile and confirmation

@pytest.mark.parametrize("key", list(DEVICES))
def test_detection_names_the_plan_row(monkeypatch, key):
    dev = detect(monkeypatch, key)
    if DEVICES[key] is None:
        assert (dev["device"], dev["gpu"]) == ("cpu", None)
    else:
        assert (dev["device"], dev["gpu"]) == ("cuda", DEVICES[key][3])
        assert dev["bf16"] == DEVICES[key][2]


@pytest.mark.parametrize("key", [k for k in DEVICES if k != "CPU"])
def test_profile_and_confirmation_per_gpu(monkeypatch, corpus, tok, key, capsys):
    """Short plans: a T4 gets colab, an 80 GB A100/H100 the paper's run. Long plans need confirming."""
    mock_device(monkeypatch, key)                  # device_plan detects through models.runtime_device
    short = plan.device_plan("response", corpus, tok)
    assert short.profile == DEVICES[key][4] and short.gpu == DEVICES[key][3] and short.hours < 24
    assert short.cfg.mode == ("session" if short.profile == "colab" else "per_turn")

    # the same device with a throughput a million times lower: every plan is far over 24 hours
    monkeypatch.setattr(plan, "ASSUMED_UTILISATION", plan.ASSUMED_UTILISATION * 1e-6)
    with pytest.raises(plan.LongRunError, match="confirm_long_run = True") as err:
        plan.device_plan("response", corpus, tok)
    printed = capsys.readouterr().out
    assert "ESTIMATES" in printed and f"profile: colab" in printed   # the plan is printed before it stops
    assert err.value._render_traceback_() == [f"LongRunError: {err.value}"]   # one line in a notebook
    confirmed = plan.device_plan("response", corpus, tok, confirm_long_run=True)
    assert confirmed.profile == "colab" and confirmed.hours > 24     # an 80 GB GPU falls back from paper too
    with pytest.raises(plan.LongRunError):
        plan.device_plan("score", corpus, tok, profile="paper")


def test_cpu_runs_the_chapter_settings_and_refuses_the_real_model(monkeypatch, corpus, tok):
    mock_device(monkeypatch, "CPU")
    smoke = plan.device_plan("response", corpus, tok, model_name=config.TINY_MODEL, max_steps=12, mode=None)
    assert (smoke.profile, smoke.hours, smoke.gpu) == ("paper", None, None)
    assert (smoke.cfg.max_steps, smoke.cfg.mode) == (12, "per_turn")   # None keeps the profile's value
    with pytest.raises(plan.LongRunError, match="no GPU found"):
        plan.device_plan("response", corpus, tok)
    assert plan.device_plan("response", corpus, tok, confirm_long_run=True).cfg.model_name == config.BASE_MODEL


def test_unlisted_gpu_is_timed_as_the_slowest(monkeypatch, corpus, tok):
    import torch
    mock_device(monkeypatch, "T4")
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA RTX 6000 Ada Generation")
    p = plan.device_plan("response", corpus, tok)
    assert p.device["gpu"] is None and p.gpu == "T4" and p.profile == "colab" and "slowest" in p.text


def test_paper_on_a_large_gpu_only_when_under_a_day():
    dev = {"device": "cuda", "name": "NVIDIA H100 80GB HBM3", "gpu": "H100-80GB", "bf16": True}
    assert plan.choose_profile("response", dev, lambda: 23.9)[0] == "paper"
    assert plan.choose_profile("response", dev, lambda: 24.1)[0] == "colab"
    asked = []
    assert plan.choose_profile("response", {**dev, "gpu": "T4"}, lambda: asked.append(1) or 1.0)[0] == "colab"
    assert not asked                               # a T4 is never timed on the paper's run


# --------------------------------------------------------------------------- mixed precision and LoRA dtypes

AMP = {"T4": "fp16", "V100": "fp16", "L4": "bf16", "A100-40GB": "bf16", "A100-80GB": "bf16", "H100": "bf16",
       "H200": "bf16", "CPU": None}


@pytest.fixture(scope="module")
def tiny(corpus, tmp_path_factory):
    """A tiny Llama on disk and some training rows (labels on the second half)."""
    path = models.build_tiny_llama(models.tiny_tokenizer_texts(corpus), tmp_path_factory.mktemp("tiny") / "m")
    tokenizer = models.load_tokenizer(str(path))
    text = "".join(corpus.turns()["text"].astype(str).head(40))
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    rows = [{"input_ids": ids[i:i + 48], "labels": [-100] * 24 + ids[i + 24:i + 48]} for i in range(0, 8 * 48, 48)]
    return str(path), tokenizer, rows


def _trainer(tiny, tmp_path, dev, **kw):
    path, tokenizer, rows = tiny
    model, _ = models.load_base_model(path)         # real (CPU) torch: 4-bit weights, float32 compute
    cfg = train_config.make_config("response", model_name=config.TINY_MODEL, output_dir=str(tmp_path), max_length=64,
                            batch_size=2, per_device_batch_size=2, optim="adamw_torch", warmup_steps=0,
                            learning_rate=1e-2, logging_steps=1, **kw)
    return loop.build_trainer(cfg, model, tokenizer, rows, rows[:2], dev=dev, progress=False)[0]


def _trainable_dtypes(model) -> set:
    return {p.dtype for p in model.parameters() if p.requires_grad}


@pytest.mark.parametrize("key", list(DEVICES))
def test_amp_flags_and_lora_dtypes_per_device(monkeypatch, tiny, tmp_path, key):
    """fp16 AMP (T4, V100) needs float32 LoRA weights: CUDA's GradScaler cannot unscale bf16 gradients."""
    import torch
    dev = detect(monkeypatch, key)
    trainer = _trainer(tiny, tmp_path, dev)
    assert (trainer.args.fp16, trainer.args.bf16) == (AMP[key] == "fp16", AMP[key] == "bf16")
    # TRL casts QLoRA adapters to bf16; under fp16 they must be float32
    want = torch.float32 if AMP[key] == "fp16" else torch.bfloat16
    assert _trainable_dtypes(trainer.model) == {want}


def test_fp16_lora_weights_stay_float32_after_resume(monkeypatch, tiny, tmp_path):
    import torch
    from transformers import TrainerCallback
    dev = detect(monkeypatch, "T4")
    first = _trainer(tiny, tmp_path, dev, max_steps=2, save_steps=1)
    first.train()
    seen = []

    class Record(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kw):
            seen.append((state.global_step, _trainable_dtypes(model)))

    again = _trainer(tiny, tmp_path, dev, max_steps=3, save_steps=1)
    again.add_callback(Record())
    again.train(resume_from_checkpoint=str(tmp_path / "checkpoints" / "checkpoint-2"))
    assert seen == [(3, {torch.float32})]          # resumed at step 2, trained step 3 in float32


def test_one_fp16_autocast_step_with_a_grad_scaler_on_cpu(monkeypatch, tiny, tmp_path):
    """The T4 path executes: fp16 autocast, GradScaler unscale + clipping + step, float32 LoRA weights."""
    import torch
    dev = detect(monkeypatch, "T4")
    trainer = _trainer(tiny, tmp_path, dev)
    model = trainer.model
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 8)
    batch = next(iter(trainer.get_train_dataloader()))
    with torch.autocast("cpu", dtype=torch.float16):
        loss = trainer.compute_loss(model, batch)
    assert torch.isfinite(loss)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    assert {p.grad.dtype for p in params} == {torch.float32}
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    scaler.step(optimizer)
    scaler.update()
    assert scaler.get_scale() > 0 and _trainable_dtypes(model) == {torch.float32}
    assert any(not torch.equal(a, p.detach()) for a, p in zip(before, params))   # the step changed the weights
