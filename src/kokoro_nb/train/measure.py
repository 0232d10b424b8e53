"""A few real training steps on the device in front of us, beside the plan's estimates.

:func:`measure_run` trains a handful of optimizer steps on the longest training rows in a
temporary folder and reports the median step time and the peak memory next to
:func:`kokoro_nb.train.plan.estimate_memory_gb` and :func:`kokoro_nb.train.plan.tokens_per_s`
(``kokoro-nb train --plan --measure``). It keeps nothing; real runs are :func:`kokoro_nb.train.loop.train`.

>>> print(format_measure({"device": "cpu", "steps": 4, "batch": 8, "model": "tiny-random-llama",
...                       "row_tokens_min": 900, "row_tokens_max": 1024, "max_length": 1024, "step_s": 1.5,
...                       "est_step_s": None, "peak_gb": 2.0, "est_peak_gb": 1.0, "peak_kind": "RSS"}).splitlines()[2])
  step time (s)                 —      1.500   (no throughput model for a CPU)
"""
from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time

from kokoro_nb.errors import DataError
from kokoro_nb.train import loop, models
from kokoro_nb.train.plan import arch_of, estimate_memory_gb, tokens_per_s


def measure_run(cfg, corpus, steps: int = 4, *, progress: bool = False) -> dict:
    """Train *steps* real optimizer steps of *cfg* on this device, on its longest training rows; return
    the median step time (steps after the first, which pays for warm-up) and the peak memory, beside
    the estimates for this model's shape.

    Peak memory is ``torch.cuda.max_memory_reserved`` on a GPU (what the allocator holds: what must
    fit), and on a CPU the process's peak resident memory, which also counts Python, torch and the
    data. Nothing is kept: the run goes to a temporary folder.
    """
    from transformers import AutoConfig, TrainerCallback
    if not 2 <= steps <= 10:                        # the first step only warms up; a few more give a median
        raise DataError(f"must be 2 to 10, got {steps}", field="--measure-steps")
    n_rows = steps * cfg.batch_size
    times: list[float] = []

    class StepClock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            now = time.perf_counter()
            times.append(now - self.t)
            self.t = now

    def longest(data):
        rows = sorted(data["train"], key=lambda r: len(r["input_ids"]), reverse=True)[:n_rows]
        return {"train": rows, "validation": data["validation"][:1]}

    dev = models.runtime_device()
    fp16 = dev["device"] == "cuda" and not dev["bf16"]
    with tempfile.TemporaryDirectory(prefix="kokoro-measure-") as tmp:
        run = dataclasses.replace(cfg, output_dir=tmp, max_steps=steps, resume=False, eval_strategy="steps",
                                  eval_steps=10 ** 6, save_steps=10 ** 6, logging_steps=1, eval_sample=None,
                                  max_eval_examples=1)
        m = loop.train(run, corpus, callbacks=[StepClock()], progress=progress, quiet=True, select_rows=longest)
        model_cfg = AutoConfig.from_pretrained(m["base_model_path"], token=models.hf_token())
    arch = arch_of(model_cfg)
    lengths = m["data"]["measured_row_lengths"]
    est = estimate_memory_gb(cfg.max_length or max(lengths), cfg.per_device_batch_size, arch=arch,
                             double_quant=cfg.bnb_4bit_use_double_quant, lora_r=cfg.lora_r,
                             lora_targets=cfg.lora_target_modules, lora_fp32=fp16,
                             optim=cfg.optim, task=cfg.task, overhead_gb=1.0 if dev["device"] == "cuda" else 0.0,
                             gradient_checkpointing=cfg.gradient_checkpointing and dev["device"] == "cuda")
    tokens_per_step = sum(lengths) / steps
    est_step = None
    if dev["device"] == "cuda":
        gpu = dev.get("gpu") or "T4"
        est_step = tokens_per_step / tokens_per_s(gpu, cfg.max_length or max(lengths), arch)
    if dev["device"] == "cuda":
        peak, peak_kind = m.get("peak_gpu_reserved_gb"), "torch.cuda.max_memory_reserved"
    else:
        peak, peak_kind = m["peak_rss_gb"], "process peak RSS (CPU; includes Python, torch and the data)"
    return {"device": dev["name"], "model": cfg.model_name, "steps": m["global_step"], "batch": cfg.batch_size,
            "max_length": cfg.max_length, "row_tokens_min": min(lengths), "row_tokens_max": max(lengths),
            "tokens_per_step": tokens_per_step,
            "step_s": statistics.median(times[1:] or times), "est_step_s": est_step,
            "peak_gb": peak, "peak_kind": peak_kind, "est_peak_gb": est["total"], "estimate": est}


def format_measure(m: dict) -> str:
    """Return :func:`measure_run`'s result as text: estimate and measurement side by side."""
    def num(x, fmt):
        return format(x, fmt) if x is not None else f"{'—':>10}"
    note = "" if m["est_step_s"] is not None else "   (no throughput model for a CPU)"
    return "\n".join([
        f"MEASURED on {m['device']}: {m['steps']} optimizer steps of batch {m['batch']} of {m['model']}, "
        f"the longest training rows ({m['row_tokens_min']:,}-{m['row_tokens_max']:,} tokens, "
        f"max_length {m['max_length']})",
        f"  {'':<20} {'estimate':>10} {'measured':>10}",
        f"  {'step time (s)':<20} {num(m['est_step_s'], '10.3f')} {num(m['step_s'], '10.3f')}{note}",
        f"  {'peak memory (GiB)':<20} {num(m['est_peak_gb'], '10.2f')} {num(m['peak_gb'], '10.2f')}"
        f"   {m['peak_kind']}",
    ])
