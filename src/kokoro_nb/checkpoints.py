"""Checkpoints of a training run: find the newest complete one, resume from it in the same state.

Checkpoints live under ``<output_dir>/checkpoints/checkpoint-N`` (TRL/transformers layout).
"""
from __future__ import annotations

from pathlib import Path


def resumable(trainer_cls):
    """Return *trainer_cls* whose resume keeps the adapter dtypes it was trained with.

    TRL casts QLoRA adapters to bf16; PEFT upcasts them to fp32 when a checkpoint is loaded, so a
    resumed run would continue in another precision than an uninterrupted one. Casting back
    right after the load (before the optimizer is built) makes both runs identical
    (``tests/test_train.py::test_resume_ends_in_the_same_state_as_an_uninterrupted_run``).
    """
    class Resumable(trainer_cls):
        def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
            dtypes = {n: p.dtype for n, p in self.model.named_parameters() if p.requires_grad}
            super()._load_from_checkpoint(resume_from_checkpoint, model)
            for n, p in self.model.named_parameters():
                if n in dtypes and p.dtype != dtypes[n]:
                    p.data = p.data.to(dtypes[n])

    return Resumable


def last_checkpoint(output_dir: str | Path) -> str | None:
    """Return the newest ``checkpoint-N`` folder under ``<output_dir>/checkpoints``, if any."""
    from transformers.trainer_utils import get_last_checkpoint
    ckpt = Path(output_dir) / "checkpoints"
    return get_last_checkpoint(str(ckpt)) if ckpt.is_dir() else None
