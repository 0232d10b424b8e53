"""Checkpoints of a training run: saved completely or not at all, resumed in the same state.

Checkpoints live under ``<output_dir>/checkpoints/checkpoint-N`` (the transformers layout).
The trainer writes a checkpoint's files in place, so a session that dies mid-save (a Colab
disconnect, a full Drive) leaves a folder that looks like a checkpoint but is not one. After
every file of a checkpoint is written, :func:`mark_complete` writes ``COMPLETE_MARKER``, a
manifest of every file's size and SHA-256, atomically (temporary file, then rename). Resume
uses only the newest checkpoint whose manifest matches its files (:func:`last_checkpoint`), so
a truncated or corrupted newest checkpoint falls back to the previous one.

>>> COMPLETE_MARKER
'checkpoint_complete.json'
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

COMPLETE_MARKER = "checkpoint_complete.json"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def resumable(trainer_cls):
    """Return *trainer_cls* whose checkpoints are atomic and whose resumed runs end in the same state.

    Two things would make a resumed run differ from an uninterrupted one:

    * bitsandbytes (0.50; ``Linear4bit.forward``) switches a 4-bit layer on a CPU with AVX512-BF16 to a packed
      inference layout with bf16 block scales the first time it runs in eval mode without
      gradients, and keeps it. The first validation of a run thus changed the base weights that
      all later training steps use, so a run that had validated since its start (uninterrupted)
      and one that had not (just resumed) trained on different weights: one bf16 rounding step
      apart in the adapters. Validation must not change the model; we keep the training
      layout. GPUs never take that path.
    * TRL (1.16, ``trainer/sft_trainer.py``) casts QLoRA adapters to bf16; PEFT upcasts them to
      fp32 when a checkpoint is loaded. Casting back right after the load (before the optimizer
      is built) keeps the dtype the run started with.

    Under fp16 mixed precision (GPUs without native bf16: T4, V100) the trainable weights are made
    float32 as soon as the trainer is built (:func:`keep_trainable_fp32`), and a resume restores
    them as float32: the fp16 GradScaler unscales gradients with a CUDA kernel that has no bf16
    version, so bf16 LoRA weights would stop the run at its first optimizer step.

    Guarded by ``tests/train/test_train.py::test_resume_ends_in_the_same_state_as_an_uninterrupted_run``.
    """
    class Resumable(trainer_cls):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            keep_4bit_training_layout(self.model)
            if self.args.fp16:
                keep_trainable_fp32(self.model)

        def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
            dtypes = {n: p.dtype for n, p in self.model.named_parameters() if p.requires_grad}
            super()._load_from_checkpoint(resume_from_checkpoint, model)
            for n, p in self.model.named_parameters():
                if n in dtypes and p.dtype != dtypes[n]:
                    p.data = p.data.to(dtypes[n])

        def _save_checkpoint(self, model, trial):
            folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
            if self.args.should_save:                   # a re-save (after a resume) is incomplete until marked
                (folder / COMPLETE_MARKER).unlink(missing_ok=True)
            super()._save_checkpoint(model, trial)
            self.accelerator.wait_for_everyone()        # every process has written its RNG state
            if self.args.should_save and folder.is_dir():
                mark_complete(folder, self.state.global_step)

        def load_best_adapter(self) -> str | None:
            """Load the best checkpoint's weights (what ``load_best_model_at_end`` does); return its path."""
            best = self.state.best_model_checkpoint
            if best and is_complete(best):
                self._load_best_model()
                return best
            return None

    return Resumable


def keep_trainable_fp32(model) -> int:
    """Cast every trainable 16-bit parameter of *model* to float32 (fp16 AMP's master weights); return how many."""
    import torch
    n = 0
    for p in model.parameters():
        if p.requires_grad and p.dtype in (torch.float16, torch.bfloat16):
            p.data = p.data.to(torch.float32)
            n += 1
    return n


def keep_4bit_training_layout(model) -> int:
    """Stop bitsandbytes 4-bit layers from repacking their weights for CPU inference; return how many."""
    n = 0
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
            n += 1
    return n


def save_after_evaluation():
    """Return a callback that checkpoints every evaluated state, so the best one is always on disk."""
    from transformers import TrainerCallback

    class SaveAfterEvaluation(TrainerCallback):
        def on_evaluate(self, args, state, control, **kw):
            control.should_save = True

    return SaveAfterEvaluation()


# --------------------------------------------------------------------------- completion marker

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != COMPLETE_MARKER
                  and not p.name.startswith(".tmp-"))


def mark_complete(folder: str | Path, step: int | None = None) -> Path:
    """Write *folder*'s manifest (size and SHA-256 of every file) atomically; return its path."""
    folder = Path(folder)
    manifest = {"step": step, "files": {p.relative_to(folder).as_posix(): {"bytes": p.stat().st_size,
                                                                          "sha256": _sha256(p)}
                                        for p in _files(folder)}}
    tmp = folder / f".tmp-{COMPLETE_MARKER}"
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / COMPLETE_MARKER)           # atomic on POSIX and on Drive's FUSE mount
    return folder / COMPLETE_MARKER


def check_complete(folder: str | Path) -> str | None:
    """Return why *folder* is not a complete checkpoint (missing marker, file missing/truncated/changed), or None."""
    folder = Path(folder)
    marker = folder / COMPLETE_MARKER
    if not marker.is_file():
        return f"no {COMPLETE_MARKER} (the save did not finish)"
    try:
        files = json.loads(marker.read_text(encoding="utf-8"))["files"]
    except (ValueError, KeyError, TypeError):
        return f"unreadable {COMPLETE_MARKER}"
    for name, want in files.items():
        p = folder / name
        if not p.is_file():
            return f"{name} missing"
        if p.stat().st_size != want["bytes"]:
            return f"{name} has {p.stat().st_size} bytes, {want['bytes']} written"
        if _sha256(p) != want["sha256"]:
            return f"{name} changed since it was written (SHA-256 differs)"
    return None


def is_complete(folder: str | Path) -> bool:
    """Return whether *folder* is a checkpoint whose every file is as it was written."""
    return check_complete(folder) is None


def checkpoint_folders(checkpoint_dir: str | Path) -> list[Path]:
    """Return the ``checkpoint-N`` folders under *checkpoint_dir*, oldest step first."""
    root = Path(checkpoint_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _CHECKPOINT_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def last_checkpoint(output_dir: str | Path, *, skipped: list | None = None) -> str | None:
    """Return the newest complete ``checkpoint-N`` under ``<output_dir>/checkpoints``, if any.

    Newer incomplete ones are appended to *skipped* as (path, reason).
    """
    for folder in reversed(checkpoint_folders(Path(output_dir) / "checkpoints")):
        reason = check_complete(folder)
        if reason is None:
            return str(folder)
        if skipped is not None:
            skipped.append((str(folder), reason))
    return None


def finished_step(checkpoint: str | Path, max_steps: int, epochs: float) -> int | None:
    """Return the checkpoint's step if its run already reached the end (*max_steps* > 0, else *epochs*).

    Resuming such a run would make the Trainer take one step past the end before it looks at
    the limit, so a finished run is reported, not trained again.
    """
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text(encoding="utf-8"))
    step = int(state.get("global_step") or 0)
    if max_steps and max_steps > 0:
        done = step >= max_steps
    else:
        done = step >= int(state.get("max_steps") or 0) > 0 and float(state.get("epoch") or 0) >= epochs - 1e-6
    return step if done else None


def remove_incomplete(skipped: list) -> list[str]:
    """Delete the incomplete checkpoints listed in *skipped* (they would be re-saved into); return lines to print."""
    lines = []
    for path, reason in skipped:
        shutil.rmtree(path, ignore_errors=True)
        lines.append(f"removed incomplete checkpoint {Path(path).name}: {reason}")
    return lines
