"""The tokenized rows a training run reads: its task's SFT examples, split, capped, fitted and tokenized.

:func:`build_datasets` turns a :class:`~kokoro_nb.train.config.TrainConfig` and a corpus into
``{"input_ids", "labels"}`` rows (:func:`kokoro_nb.train.sft.iter_rows`) and counts them; the
plan (:mod:`kokoro_nb.train.plan`) counts the same rows the loop (:mod:`kokoro_nb.train.loop`)
trains on. No model and no trainer here.

>>> eval_sample(list(range(10)), 3, seed=0) == sorted(eval_sample(list(range(10)), 3, seed=0))
True
"""
from __future__ import annotations

import numpy as np

from kokoro_nb import config
from kokoro_nb.data import splits
from kokoro_nb.errors import DataError
from kokoro_nb.train import sft
from kokoro_nb.train.config import TrainConfig


def build_datasets(cfg: TrainConfig, corpus, tokenizer) -> tuple[dict, dict]:
    """Return ({"train", "validation"} lists of tokenized rows, data info) for *cfg*'s task.

    Rows are ``{"input_ids", "labels"}`` from :func:`kokoro_nb.train.sft.iter_rows` (the model's own chat
    template, -100 where no loss), which TRL uses as they are; the info counts examples, tokens and
    target tokens of each split.
    """
    info: dict = {}
    if cfg.task == "response":
        prompt = sft.SYSTEM_PROMPT if cfg.system_prompt is None else cfg.system_prompt
        ids = splits.response_split_ids(corpus, cfg.subset, cfg.seed, cfg.validation_fraction)
        data = _capped({k: sft.response_examples(corpus, ids[k], cfg.mode, system_prompt=prompt)
                        for k in ("train", "validation")}, cfg)
    else:
        prompt = sft.SCORE_SYSTEM_PROMPT if cfg.system_prompt is None else cfg.system_prompt
        ids = splits.score_split(corpus.dialogues["dialogue_id"].astype(str), cfg.seed, config.SEED)
        data = _capped({k: sft.score_examples(corpus, ids[k], system_prompt=prompt)
                        for k in ("train", "validation")}, cfg)
        for k in data:
            data[k], info[f"{k}_transcripts_cut"] = sft.fit_transcripts(data[k], tokenizer, cfg.max_length)
    info.update({f"{k}_dialogues": len(ids[k]) for k in ("train", "validation")})
    info.update({f"{k}_examples": len(v) for k, v in data.items()})
    if not data["train"]:
        raise DataError(f"no training examples for task={cfg.task} subset={cfg.subset}: "
                        "the corpus (or its sample) has no dialogue in that subset", field="subset")
    # score examples end with their one answer (per_turn = loss on the last assistant message) and
    # already fit; response examples are tokenized in the chosen mode
    mode, max_length = (cfg.mode, cfg.max_length) if cfg.task == "response" else ("per_turn", None)
    rows = {}
    for k, v in data.items():
        counts: dict = {}
        rows[k] = list(sft.iter_rows(v, tokenizer, mode, max_length, info=counts))
        info.update({f"{k}_{c}": n for c, n in counts.items() if cfg.task == "response"})
        info.update({f"{k}_{c}": n for c, n in sft.count_rows(rows[k]).items()})
    return rows, info


def eval_sample(rows: list, n: int | None, seed: int) -> list:
    """Return a fixed, seeded sample of *n* validation rows (all of them when n is None or larger)."""
    if n is None or n >= len(rows):
        return rows
    keep = np.sort(np.random.default_rng(seed).choice(len(rows), size=n, replace=False))
    return [rows[i] for i in keep]


def _capped(data: dict, cfg: TrainConfig) -> dict:
    """Keep the first max_train_examples / max_eval_examples examples (smoke runs), before any tokenizing."""
    return {"train": data["train"][:cfg.max_train_examples], "validation": data["validation"][:cfg.max_eval_examples]}
