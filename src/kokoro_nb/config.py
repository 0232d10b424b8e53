"""The one place for configuration: seeds, model ids, data locations, cache folder."""
from __future__ import annotations

import os
from pathlib import Path

SEED = 42
SCORE_SPLIT_SEEDS = (0, 1, 2, 3, 4)          # paper Table 5: five train/validation re-splits

BASE_MODEL = "tokyotech-llm/Llama-3.1-Swallow-8B-Instruct-v0.3"
TINY_MODEL = "tiny-random-llama"               # built in code for CPU smoke runs
# The authors' fine-tuned models (KokoroChat README): Swallow-8B trained on each response subset.
RELEASED_MODELS = {"low": "UEC-InabaLab/KokoroChat-Low", "high": "UEC-InabaLab/KokoroChat-High",
                   "full": "UEC-InabaLab/KokoroChat-Full"}

KOKOROCHAT_ENV = "KOKOROCHAT_DIR"
PSY_INSIGHT_ENV = "PSY_INSIGHT_DIR"
CACHE_ENV = "KOKORO_CACHE_DIR"
ARCHIVE_CACHE_ENV = "KOKORO_ARCHIVE_CACHE"     # a folder kept across runtimes (Colab: on Drive)
MIRROR_ENV = "KOKORO_DOWNLOAD_MIRROR"          # serves github.com's paths (tests, local mirrors)
REQUIRE_DATA_ENV = "KOKORO_REQUIRE_DATA"

# Upstream sources, pinned. Download code verifies every file against the SHA-256 manifest.
KOKOROCHAT_REPO = "UEC-InabaLab/KokoroChat"
KOKOROCHAT_COMMIT = "44aa9d8ad21f17413973f5ccfc45970659a2fb16"
KOKOROCHAT_HF_DATASET = "UEC-InabaLab/KokoroChat"
TRANSLATION_ENV = "KOKOROCHAT_EN_DIR"
TRANSLATION_REPO = "UEC-InabaLab/MultilingualKokoroChat"       # English half, LREC 2026
TRANSLATION_COMMIT = "26e755ce19c3345ba71ef66c8f18a049354c5226"
PSY_INSIGHT_REPO = "ckqqqq/Psy-Insight"
PSY_INSIGHT_COMMIT = "da55aec6d73f4cd0076fbf5fbb9b6d90673e2790"


def cache_dir() -> Path:
    """Return the user cache folder (``KOKORO_CACHE_DIR`` overrides the platform default)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir
    return Path(user_cache_dir("kokoro-nb"))


def data_required() -> bool:
    """True when real-data tests must fail rather than skip (``KOKORO_REQUIRE_DATA=1``)."""
    return os.environ.get(REQUIRE_DATA_ENV, "").strip() not in ("", "0", "false", "no")
