"""The settings of a training run: Appendix D per task, named profiles, and their checks.

:class:`ResponseTrainConfig` and :class:`ScoreTrainConfig` hold the paper's Appendix D
(response generation: adamw_8bit, lr 1e-3, warmup 100, batch 8, 5 epochs, validation every 400
steps, best by validation loss; score prediction: adamw_torch_fused, lr 2e-4, batch 4, 4 epochs,
best by validation accuracy). :data:`PROFILES` names other settings (``colab``: a run a free T4
finishes in one session); :func:`make_config` builds one and :func:`validate_config` checks it.
Only settings: nothing here loads a model or reads data.

>>> ResponseTrainConfig().learning_rate, ScoreTrainConfig().optim
(0.001, 'adamw_torch_fused')
>>> make_config("response", "colab").mode
'session'
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from kokoro_nb import config
from kokoro_nb.data import splits
from kokoro_nb.errors import DataError
from kokoro_nb.train import sft

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

# Settings per task. "paper" is Appendix D; "colab" is what a free Colab T4 (sessions of a few
# hours) finishes: for responses, session mode on High at 2,048 tokens; for scores, 4,096 tokens
# (the middle of longer sessions is cut) and validation every 50 steps, since 150 steps are far
# less than the epoch after which Appendix D validates.
PROFILES = {
    "paper": {"response": {}, "score": {}},
    "colab": {"response": {"mode": "session", "subset": "high", "max_length": 2048, "max_steps": 150,
                           "eval_steps": 50, "eval_sample": 100, "logging_steps": 10},
              "score": {"max_length": 4096, "max_steps": 150, "eval_strategy": "steps", "eval_steps": 50,
                        "eval_sample": 50, "logging_steps": 10}},
}


@dataclass
class TrainConfig:
    """Settings shared by both tasks; the defaults of the subclasses are Appendix D."""
    task: str = "response"
    model_name: str = config.BASE_MODEL          # hub id, local path, or "tiny-random-llama"
    output_dir: str = "outputs/train/response"
    # data
    subset: str = "full"                         # response: low | high | full (paper 5.1.1)
    mode: str = "per_turn"                       # response: per_turn | session
    max_length: int | None = 4096                # tokens per example
    validation_fraction: float = sft.VALIDATION_FRACTION
    system_prompt: str | None = None             # None: sft.SYSTEM_PROMPT / sft.SCORE_SYSTEM_PROMPT
    max_train_examples: int | None = None        # cap training examples (smoke runs)
    max_eval_examples: int | None = None         # cap validation size (smoke runs)
    eval_sample: int | None = 1000               # validation examples scored during training (fixed, seeded);
                                                 # the whole validation set is scored once at the end
    # QLoRA (Appendix D)
    load_in_4bit: bool = True
    bnb_4bit_quant_type: str = "nf4"
    bnb_4bit_compute_dtype: str = "bfloat16"     # float16 where the GPU lacks native bf16 (T4, V100)
    bnb_4bit_use_double_quant: bool = True       # not stated in the paper; saves ~0.4 GB on 8B weights
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] = LORA_TARGETS
    # optimisation
    optim: str = "adamw_8bit"
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    batch_size: int = 8                          # effective batch per optimizer step
    per_device_batch_size: int = 1
    epochs: float = 5
    max_steps: int = -1                          # > 0 overrides epochs (smoke runs)
    eval_strategy: str = "steps"                 # steps | epoch
    eval_steps: int = 400
    metric_for_best_model: str = "eval_loss"
    greater_is_better: bool = False
    logging_steps: int = 10
    save_steps: int = 50                         # checkpoint every N optimizer steps (and after every validation):
                                                 # ~30 min on a T4 in session mode (estimate: ~16k tokens/step, ~420 tok/s)
    save_total_limit: int | None = 3             # newest N checkpoints, plus the best one
    gradient_checkpointing: bool = True          # on GPU only
    seed: int = config.SEED
    resume: bool = True                          # continue from the last checkpoint in output_dir

    def to_dict(self) -> dict:
        d = asdict(self)
        d["lora_target_modules"] = list(self.lora_target_modules)
        return d


@dataclass
class ResponseTrainConfig(TrainConfig):
    """Appendix D, response generation."""


@dataclass
class ScoreTrainConfig(TrainConfig):
    """Appendix D, score prediction (QLoRA as for responses; its own optimiser and selection)."""
    task: str = "score"
    output_dir: str = "outputs/train/score"
    max_length: int | None = 8192                # the whole dialogue plus the 20 answer lines
    optim: str = "adamw_torch_fused"
    learning_rate: float = 2e-4
    batch_size: int = 4
    epochs: float = 4
    eval_strategy: str = "epoch"
    metric_for_best_model: str = "eval_item_accuracy"
    greater_is_better: bool = True
    seed: int = config.SCORE_SPLIT_SEEDS[0]      # train/validation re-split; test fixed by config.SEED


def make_config(task: str = "response", profile: str = "paper", **overrides) -> TrainConfig:
    """Return the config of *task*: Appendix D (``profile="paper"``) or a named profile, plus *overrides*.

    ``profile="colab"`` is a run a free Colab T4 finishes in one session (:data:`PROFILES`);
    unknown names are an error. :func:`kokoro_nb.train.plan.device_plan` chooses the profile for the device.
    """
    sft._check_choice(task, sft.TASKS, "task")
    sft._check_choice(profile, tuple(PROFILES), "profile")
    overrides = {**PROFILES[profile][task], **overrides}
    cls = ResponseTrainConfig if task == "response" else ScoreTrainConfig
    names = {f.name for f in fields(cls)}
    bad = sorted(set(overrides) - names)
    if bad:
        raise DataError(f"unknown training parameter(s) {', '.join(bad)}; known: {', '.join(sorted(names))}")
    if "lora_target_modules" in overrides:
        overrides["lora_target_modules"] = tuple(overrides["lora_target_modules"])
    cfg = cls(**overrides)
    validate_config(cfg)
    return cfg


def validate_config(cfg: TrainConfig) -> None:
    """Raise DataError naming the field when a setting cannot work."""
    sft._check_choice(cfg.task, sft.TASKS, "task")
    if cfg.task == "response":
        sft._check_choice(cfg.subset, splits.SUBSETS, "subset")
        sft._check_choice(cfg.mode, sft.MODES, "mode")
    sft._check_choice(cfg.eval_strategy, ("steps", "epoch"), "eval_strategy")
    if cfg.eval_sample is not None and cfg.eval_sample < 1:
        raise DataError(f"must be >= 1 or None, got {cfg.eval_sample}", field="eval_sample")
    for name in ("batch_size", "per_device_batch_size", "lora_r", "eval_steps", "logging_steps", "save_steps"):
        if getattr(cfg, name) < 1:
            raise DataError(f"must be >= 1, got {getattr(cfg, name)}", field=name)
    if cfg.max_length is not None and cfg.max_length < 64:
        raise DataError(f"must be >= 64 tokens or None, got {cfg.max_length}", field="max_length")
    if cfg.learning_rate <= 0:
        raise DataError(f"must be > 0, got {cfg.learning_rate}", field="learning_rate")
