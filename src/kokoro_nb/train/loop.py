"""The training loop of paper section 5: QLoRA with TRL's SFTTrainer, its artifacts and its logs.

Two tasks share one code path (TRL's ``SFTTrainer`` on rows tokenized by
:func:`kokoro_nb.train.sft.iter_rows` with the model's own chat template, loss on the counselor turns):

* ``response``: response generation, :class:`~kokoro_nb.train.config.ResponseTrainConfig` (adamw_8bit, lr 1e-3,
  warmup 100, batch 8, 5 epochs, validation every 400 steps, best by validation loss);
* ``score``: score prediction, :class:`~kokoro_nb.train.config.ScoreTrainConfig` (adamw_torch_fused, lr 2e-4,
  warmup 100, batch 4, 4 epochs, best by validation accuracy).

``batch_size`` is the effective batch per optimizer step; gradient accumulation fills it from
``per_device_batch_size`` x the number of processes, so the same numbers hold on 1 GPU or under
``accelerate launch --num_processes 4 -m kokoro_nb.cli train ...`` (the paper used 4 GPUs).

``model_name="tiny-random-llama"`` builds a random 2-layer Llama with a byte-level BPE tokenizer
trained in-process on the corpus, saved under ``<output_dir>/base_model`` and then loaded through
the same 4-bit path as the real model: the CPU smoke run of the book and CI.

Artifacts under ``output_dir``: ``adapter/`` (best LoRA adapter + tokenizer), ``config.json``,
``training_log.jsonl``, ``metrics.json``, ``checkpoints/`` (for resuming).

Settings live in :mod:`kokoro_nb.train.config`, model loading in :mod:`kokoro_nb.train.models`,
the rows in :mod:`kokoro_nb.train.rows`; the command line in :mod:`kokoro_nb.cli.train`.

>>> amp_flags({"device": "cuda", "bf16": False})
{'bf16': False, 'fp16': True}
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Sequence

from kokoro_nb import config, published
from kokoro_nb.errors import DataError
from kokoro_nb.train import models
from kokoro_nb.train.checkpoints import (
    finished_step,
    last_checkpoint,
    remove_incomplete,
    resumable,
    save_after_evaluation,
)
from kokoro_nb.train.config import TrainConfig, validate_config
from kokoro_nb.train.rows import build_datasets, eval_sample

# --------------------------------------------------------------------------- score accuracy during validation

def score_positions(label_ids, tokenizer) -> list[int]:
    """Return positions of the score digits in an answer's labels (a 0-5 digit after ':' or a space)."""
    digits = {tokenizer.convert_tokens_to_ids(str(d)): d for d in range(6)}
    prev = ""
    out = []
    for t, tid in enumerate(label_ids):
        if tid < 0:
            prev = ""
            continue
        if tid in digits and (prev.endswith(":") or prev.endswith("：") or prev.endswith(" ")):
            out.append(t)
        prev = tokenizer.decode([int(tid)])
    return out


def make_score_metrics(tokenizer):
    """Return (compute_metrics, preprocess_logits) for teacher-forced item accuracy on validation.

    The model sees the gold answer up to each item and predicts its digit; ``item_accuracy`` is
    the share of exact digits, ``item_accuracy_soft`` within 1 (paper ACC / ACC_soft, but
    teacher-forced: cheap enough to run at every evaluation; generated scores are evaluated later).
    """
    inv = {tokenizer.convert_tokens_to_ids(str(d)): d for d in range(10)}

    def preprocess(logits, labels):
        return logits.argmax(-1)

    def compute(eval_pred):
        preds, labels = eval_pred.predictions, eval_pred.label_ids
        exact, soft, n = 0, 0, 0
        for p, lab in zip(preds, labels):
            for t in score_positions(lab, tokenizer):
                gold, guess = inv[int(lab[t])], inv.get(int(p[t - 1]))
                n += 1
                exact += guess == gold
                soft += guess is not None and abs(guess - gold) <= 1
        return {"item_accuracy": exact / n if n else float("nan"),
                "item_accuracy_soft": soft / n if n else float("nan"), "items_scored": n}

    return compute, preprocess


# --------------------------------------------------------------------------- progress and throughput

def _throughput_callback(log_path: Path, quiet: bool):
    from transformers import TrainerCallback

    class Throughput(TrainerCallback):
        """Add tokens/s, peak memory and the estimated time per epoch to every log line."""

        def on_train_begin(self, args, state, control, train_dataloader=None, **kw):
            self.t0, self.step0, self.tok0 = time.time(), state.global_step, state.num_input_tokens_seen
            n_batches = len(train_dataloader) if train_dataloader is not None else 0
            self.steps_per_epoch = max(1, math.ceil(n_batches / args.gradient_accumulation_steps))

        def on_log(self, args, state, control, logs=None, **kw):
            if not state.is_world_process_zero or logs is None:
                return
            dt = time.time() - self.t0
            steps = state.global_step - self.step0
            rec = {"step": state.global_step, "epoch": state.epoch, **logs, **models.peak_memory_gb()}
            if steps > 0 and dt > 0:
                rec["tokens_per_s"] = (state.num_input_tokens_seen - self.tok0) / dt
                rec["est_minutes_per_epoch"] = self.steps_per_epoch * dt / steps / 60
            with log_path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")
            if not quiet and ("loss" in logs or "eval_loss" in logs):
                from tqdm.auto import tqdm
                if "eval_loss" in logs:
                    extra = {k: v for k, v in logs.items() if k.startswith("eval_item_accuracy")}
                    tqdm.write(f"step {state.global_step}/{state.max_steps}  validation loss {logs['eval_loss']:.4f}"
                               + "".join(f"  {k[5:]} {v:.3f}" for k, v in extra.items()))
                    return
                mem = rec.get("peak_gpu_gb", rec["peak_rss_gb"])
                est = rec.get("est_minutes_per_epoch", float("nan"))
                per_epoch = f"~{est * 60:.0f} s/epoch" if est < 1 else f"~{est:.1f} min/epoch"
                tqdm.write(f"step {state.global_step}/{state.max_steps}  loss {logs['loss']:.4f}  "
                           f"{rec.get('tokens_per_s', 0):,.0f} tok/s  peak {mem:.2f} GiB "
                           f"{'GPU' if 'peak_gpu_gb' in rec else 'RSS'}  {per_epoch}")

    return Throughput()


def amp_flags(dev: dict) -> dict:
    """Return the Trainer's mixed precision for *dev*: bf16 where the GPU has it natively, fp16 on
    other GPUs (T4, V100), none on CPU."""
    cuda = dev["device"] == "cuda"
    return {"bf16": cuda and bool(dev["bf16"]), "fp16": cuda and not dev["bf16"]}


def build_trainer(cfg: TrainConfig, model, tokenizer, train_rows: list, eval_rows: list, *, dev: dict,
                  callbacks: Sequence = (), progress: bool = True):
    """Return (trainer, gradient accumulation steps, world size, notes): TRL's SFTTrainer for *cfg* on *dev*.

    The mixed precision follows the device (:func:`amp_flags`). Under fp16 the trainable LoRA weights
    are float32 (:func:`kokoro_nb.train.checkpoints.resumable`): the fp16 GradScaler cannot unscale bf16
    gradients on CUDA.
    """
    import warnings

    import torch
    from datasets import Dataset
    from peft import LoraConfig, prepare_model_for_kbit_training
    from trl import SFTConfig, SFTTrainer
    notes = []
    use_gc = cfg.gradient_checkpointing and dev["device"] == "cuda"
    if cfg.load_in_4bit:
        with warnings.catch_warnings():           # peft still calls a renamed transformers property
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=use_gc,
                                                    gradient_checkpointing_kwargs={"use_reentrant": False})
    world = int(os.environ.get("WORLD_SIZE", "1"))
    accum = max(1, cfg.batch_size // (cfg.per_device_batch_size * world))
    if accum * cfg.per_device_batch_size * world != cfg.batch_size:
        notes.append(f"effective batch {accum * cfg.per_device_batch_size * world} (asked {cfg.batch_size})")
    if dev["device"] == "cpu" and "8bit" in cfg.optim:
        notes.append(f"bitsandbytes {cfg.optim} on CPU (8-bit states for tensors >= 4096 elements)")
    amp = amp_flags(dev)
    if amp["fp16"]:
        notes.append(f"{dev['name']}: fp16 mixed precision, LoRA weights kept in float32 for the gradient scaler")
    args = SFTConfig(
        output_dir=str(Path(cfg.output_dir) / "checkpoints"), per_device_train_batch_size=cfg.per_device_batch_size,
        per_device_eval_batch_size=cfg.per_device_batch_size, gradient_accumulation_steps=accum,
        learning_rate=cfg.learning_rate, warmup_steps=cfg.warmup_steps, num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps, optim=cfg.optim, eval_strategy=cfg.eval_strategy, eval_steps=cfg.eval_steps,
        save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=cfg.save_total_limit,
        load_best_model_at_end=False, metric_for_best_model=cfg.metric_for_best_model,  # best: load_best_adapter
        greater_is_better=cfg.greater_is_better, logging_steps=cfg.logging_steps, seed=cfg.seed,
        **amp, use_cpu=not torch.cuda.is_available(), activation_checkpointing=use_gc,
        activation_checkpointing_kwargs={"use_reentrant": False} if use_gc else None,
        assistant_only_loss=False, completion_only_loss=True, max_length=cfg.max_length, report_to="none",
        include_num_input_tokens_seen="non_padding", disable_tqdm=not progress,
        eval_accumulation_steps=8 if cfg.task == "score" else None,
        ddp_find_unused_parameters=False if world > 1 else None, ddp_timeout=models.distributed_timeout_s())
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.lora_target_modules), bias="none", task_type="CAUSAL_LM")
    extra = {}
    if cfg.task == "score":
        extra["compute_metrics"], extra["preprocess_logits_for_metrics"] = make_score_metrics(tokenizer)
    trainer = resumable(SFTTrainer)(model=model, args=args, train_dataset=Dataset.from_list(train_rows),
                                    eval_dataset=Dataset.from_list(eval_rows), processing_class=tokenizer,
                                    peft_config=lora, callbacks=[save_after_evaluation(), *callbacks], **extra)
    from transformers import PrinterCallback
    trainer.remove_callback(PrinterCallback)      # raw log dicts; our callback prints a readable line
    return trainer, accum, world, notes


# --------------------------------------------------------------------------- training

def train(cfg: TrainConfig, corpus, *, callbacks: Sequence = (), progress: bool = True,
          quiet: bool = False, select_rows=None, proc=None) -> dict:
    """Fine-tune with QLoRA per *cfg* on *corpus*; write the artifacts; return the metrics.

    *progress* shows progress bars; unless *quiet*, one line per log step gives the loss,
    tokens/s, peak memory and the estimated time per epoch. *select_rows* (tokenized
    ``{"train", "validation"}`` -> the same) picks the rows to train on, e.g. the longest for
    :func:`kokoro_nb.train.measure.measure_run`. *proc* is this process's state
    (:func:`kokoro_nb.train.models.launch_state`) when the caller has set it up already; None
    prefetches the model and joins the processes here.
    """
    validate_config(cfg)
    import torch
    from datasets import Dataset
    from transformers import set_seed

    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    set_seed(cfg.seed)
    if not progress:                              # keep notebook output to our one line per log step
        import datasets
        import transformers
        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()
    dev = models.runtime_device()
    if proc is None:                              # under torchrun / accelerate launch: this process's rank
        proc = models.launch_state(cfg.model_name)
    skipped: list = []
    resume_from = last_checkpoint(out, skipped=skipped) if cfg.resume else None
    notes_resume = remove_incomplete(skipped) if proc.is_main_process else []
    proc.wait_for_everyone()
    done = finished_step(resume_from, cfg.max_steps, cfg.epochs) if resume_from else None
    if done is not None and (out / "metrics.json").is_file():
        if not quiet and proc.is_main_process:
            print(f"[train] the run in {out} already finished at step {done}: nothing to train "
                  "(resume=False or another output folder trains again)")
        return json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    token = models.hf_token()

    path = cfg.model_name
    notes_pre = []
    if cfg.model_name == config.TINY_MODEL and dev["device"] == "cpu":
        notes_pre.append(models.limit_cpu_threads())
    with proc.main_process_first():              # one process builds or downloads, the others then read
        if cfg.model_name == config.TINY_MODEL:
            path = out / "base_model"
            if not (path / "config.json").exists():     # kept across resumes: same weights, same tokenizer
                models.build_tiny_llama(models.tiny_tokenizer_texts(corpus), path, seed=cfg.seed,
                                 max_positions=max(cfg.max_length or 0, 8192))
            path = str(path)
        tokenizer = models.load_tokenizer(path, token)
        model, notes = models.load_base_model(path, load_in_4bit=cfg.load_in_4bit, quant_type=cfg.bnb_4bit_quant_type,
                                       compute_dtype=cfg.bnb_4bit_compute_dtype,
                                       double_quant=cfg.bnb_4bit_use_double_quant, token=token)
    data, data_info = build_datasets(cfg, corpus, tokenizer)
    if select_rows is not None:
        data = select_rows(data)
        data_info["measured_row_lengths"] = [len(r["input_ids"]) for r in data["train"]]
    notes = notes_pre + notes_resume + notes
    log_path = out / "training_log.jsonl"
    if resume_from is None and log_path.exists() and proc.is_main_process:
        log_path.unlink()
    throughput = _throughput_callback(log_path, quiet)
    eval_rows = eval_sample(data["validation"], cfg.eval_sample, cfg.seed)
    trainer, accum, world, more = build_trainer(cfg, model, tokenizer, data["train"], eval_rows, dev=dev,
                                                callbacks=[throughput, *callbacks], progress=progress)
    notes += more
    if not quiet and proc.is_main_process:
        for n in notes:
            print(f"[train] {n}")
        if resume_from:
            print(f"[train] resuming from {resume_from}")
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=resume_from)
    runtime = time.time() - t0
    trainer.load_best_adapter()                   # checkpoints are more frequent than validations: pick ourselves
    tokens_run = trainer.state.num_input_tokens_seen - throughput.tok0   # not the tokens before a resume

    final_eval = None
    if len(eval_rows) < len(data["validation"]):   # the best model on the whole validation set
        final_eval = trainer.evaluate(Dataset.from_list(data["validation"]), metric_key_prefix="final_eval")
    if trainer.is_world_process_zero():
        trainer.save_model(str(out / "adapter"))
        tokenizer.save_pretrained(str(out / "adapter"))
    state = trainer.state
    losses = [(h["step"], h["loss"]) for h in state.log_history if "loss" in h]
    evals = [{k: v for k, v in h.items() if k.startswith("eval_") or k in ("step", "epoch")}
             for h in state.log_history if any(k.startswith("eval_") for k in h)]
    metrics = {
        "task": cfg.task, "model_name": cfg.model_name, "base_model_path": path, "device": dev, "notes": notes,
        "data": data_info, "resumed_from": resume_from, "global_step": state.global_step,
        "epochs_done": state.epoch, "train_loss": result.training_loss,
        "first_logged_loss": losses[0][1] if losses else None, "last_logged_loss": losses[-1][1] if losses else None,
        "best_metric": state.best_metric, "best_model_checkpoint": state.best_model_checkpoint,
        "eval_history": evals, "eval_examples_during_training": len(eval_rows), "final_validation": final_eval,
        "runtime_s": runtime, "tokens_seen": state.num_input_tokens_seen,
        "tokens_this_run": tokens_run, "tokens_per_s": tokens_run / runtime if runtime > 0 else None,
        "effective_batch": accum * cfg.per_device_batch_size * world, "gradient_accumulation_steps": accum,
        **models.peak_memory_gb(), "optimizer_class": type(getattr(trainer.optimizer, "optimizer", trainer.optimizer)).__name__,
    }
    models.free_memory(trainer, model)
    if trainer.is_world_process_zero():
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
        (out / "metrics.json").write_text(json.dumps(jsonable(metrics), indent=2, ensure_ascii=False),
                                          encoding="utf-8")
    return metrics


def jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item"):
        return obj.item()
    return obj


def _training_log(output_dir: str | Path) -> list[dict]:
    path = Path(output_dir) / "training_log.jsonl"
    if not path.exists():
        raise DataError("no training log; run training first", file=str(path))
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def logged_losses(output_dir: str | Path) -> list[tuple[int, float]]:
    """Return (step, training loss) pairs from ``training_log.jsonl``."""
    return [(r["step"], r["loss"]) for r in _training_log(output_dir) if "loss" in r]


def training_curves(output_dir: str | Path) -> "pd.DataFrame":
    """Return the logged losses in long form: step, split ("train" | "validation"), loss."""
    import pandas as pd
    rows = []
    for r in _training_log(output_dir):
        if "loss" in r:
            rows.append((r["step"], "train", r["loss"]))
        if "eval_loss" in r:
            rows.append((r["step"], "validation", r["eval_loss"]))
    return pd.DataFrame(rows, columns=["step", "split", "loss"]).drop_duplicates(["step", "split"], keep="last")


def config_table(cfg: TrainConfig) -> "pd.DataFrame":
    """Return this run's settings beside the paper's Appendix D, with a flag where they differ."""
    import pandas as pd
    d = published.load()["appendix_d_training"]
    task = d["response_generation"] if cfg.task == "response" else d["score_prediction"]
    q, lora = d["response_generation"]["quantization"], d["response_generation"]["lora"]
    eval_every = (f"{task['eval_every_steps']} steps" if "eval_every_steps" in task else "every epoch")
    rows = [
        ("base model", d["base_model"], cfg.model_name),
        ("quantisation", f"{q['bits']}-bit {q['type']}, {q['compute_dtype']} compute",
         f"{'4-bit ' + cfg.bnb_4bit_quant_type if cfg.load_in_4bit else 'none'}, {cfg.bnb_4bit_compute_dtype} compute"),
        ("LoRA r / alpha / dropout", f"{lora['r']} / {lora['alpha']} / {lora['dropout']}",
         f"{cfg.lora_r} / {cfg.lora_alpha} / {cfg.lora_dropout}"),
        ("LoRA targets", ", ".join(lora["target_modules"]), ", ".join(cfg.lora_target_modules)),
        ("optimizer", task["optimizer"], cfg.optim),
        ("learning rate", f"{task['learning_rate']:g}", f"{cfg.learning_rate:g}"),
        ("warmup steps", str(task["warmup_steps"]), str(cfg.warmup_steps)),
        ("batch size", str(task["batch_size"]), str(cfg.batch_size)),
        ("epochs", str(task["epochs"]), str(cfg.epochs) + (f" (capped at {cfg.max_steps} steps)" if cfg.max_steps > 0 else "")),
        ("validation", eval_every, f"{cfg.eval_steps} steps" if cfg.eval_strategy == "steps" else "every epoch"),
        ("model selection", task["model_selection"], f"{'lowest' if not cfg.greater_is_better else 'highest'} "
                                                      f"{cfg.metric_for_best_model}"),
    ]
    df = pd.DataFrame(rows, columns=["setting", "Appendix D", "this run"]).set_index("setting")
    same = {"model selection": not (cfg.greater_is_better ^ ("highest" in task["model_selection"]))}
    df["differs"] = [("" if same.get(k, a == b) else "yes") for k, a, b in
                     zip(df.index, df["Appendix D"], df["this run"])]
    return df
