"""Checkpoints of a training run: find the newest complete one, resume from it in the same state.

Checkpoints live under ``<output_dir>/checkpoints/checkpoint-N`` (TRL/transformers layout).
"""
from __future__ import annotations

from pathlib import Path


def resumable(trainer_cls):
    """Return *trainer_cls* whose resumed runs end in the same state as uninterrupted ones.

    Two things would make them differ:

    * bitsandbytes (0.49+) switches a 4-bit layer on a CPU with AVX512-BF16 to a packed
      inference layout with bf16 block scales the first time it runs in eval mode without
      gradients, and keeps it. The first validation of a run thus changed the base weights that
      all later training steps use, so a run that had validated since its start (uninterrupted)
      and one that had not (just resumed) trained on different weights: one bf16 rounding step
      apart in the adapters (issue 9). Validation must not change the model; we keep the
      training layout. GPUs never take that path.
    * TRL casts QLoRA adapters to bf16; PEFT upcasts them to fp32 when a checkpoint is loaded.
      Casting back right after the load (before the optimizer is built) keeps the precision.

    Guarded by ``tests/test_train.py::test_resume_ends_in_the_same_state_as_an_uninterrupted_run``.
    """
    class Resumable(trainer_cls):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            keep_4bit_training_layout(self.model)

        def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
            dtypes = {n: p.dtype for n, p in self.model.named_parameters() if p.requires_grad}
            super()._load_from_checkpoint(resume_from_checkpoint, model)
            for n, p in self.model.named_parameters():
                if n in dtypes and p.dtype != dtypes[n]:
                    p.data = p.data.to(dtypes[n])

    return Resumable


def keep_4bit_training_layout(model) -> int:
    """Stop bitsandbytes 4-bit layers from repacking their weights for CPU inference; return how many."""
    n = 0
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
            n += 1
    return n


def last_checkpoint(output_dir: str | Path) -> str | None:
    """Return the newest ``checkpoint-N`` folder under ``<output_dir>/checkpoints``, if any."""
    from transformers.trainer_utils import get_last_checkpoint
    ckpt = Path(output_dir) / "checkpoints"
    return get_last_checkpoint(str(ckpt)) if ckpt.is_dir() else None
