"""show.overview: chapter 01's figure and facts."""
from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import pytest

import kokoro_nb
from kokoro_nb.data import translation
from kokoro_nb import published
from kokoro_nb.describe import stats
from kokoro_nb.show import overview
from kokoro_nb.testing.synthetic import write_translation


def chapter_facts(corpus, excerpt: pd.DataFrame) -> dict:
    """Every glue key of chapter 01, composed as the chapter composes them."""
    rules = published.value("filtering_rules")
    q = stats.quality_rules(corpus, min_utterances=rules["min_utterances"],
                            min_minutes=rules["min_duration_minutes"])
    return {**overview.corpus_facts(corpus.dialogues, stats.overall_statistics(corpus),
                                    stats.collection_window(corpus)),
            **overview.rule_facts(corpus.dialogues, q, rules), **overview.excerpt_facts(excerpt)}

matplotlib.use("Agg")


def sessions(minutes, counselors=("a", "b"), clients=("b", "c")) -> pd.DataFrame:
    start = pd.Timestamp("2020-01-01 10:00")
    return pd.DataFrame({"started_at": [start] * len(minutes),
                         "ended_at": [start + pd.Timedelta(minutes=m) for m in minutes],
                         "n_utterances": [30 + i for i in range(len(minutes))],
                         "counselor_id": list(counselors), "client_id": list(clients)})


def test_facts_cover_every_reference_of_the_prose(synthetic_kokorochat_dir, tmp_path, prose_keys):
    corpus = kokoro_nb.load_kokorochat(synthetic_kokorochat_dir, progress=False)
    english = corpus.with_english(write_translation(tmp_path / "en", synthetic_kokorochat_dir))
    excerpt = translation.bilingual_excerpt(english, n_messages=6, seed=42)
    facts = chapter_facts(corpus, excerpt)
    assert set(facts) == prose_keys("01_corpus_overview")
    assert facts["ov_dialogues"] == 20 and facts["ov_excerpt_id"] == excerpt.attrs["dialogue_id"]


def test_corpus_facts_count_people_in_both_roles():
    d = sessions([60, 90])
    o = {"dialogues": 2, "utterances": {"total": 61}, "speakers": {"total": 3, "counselor": 2, "client": 2},
         "avg_utterances_per_dialogue": {"total": 30.5},
         "avg_chars_per_utterance": {"counselor": 20.0, "client": 10.0}}
    f = overview.corpus_facts(d, o, {"first": "2020-01-01", "last": "2020-01-01"})
    assert f["ov_both_roles"] == 1 and f["ov_pairs"] == 2 and f["ov_first"] == "2020-01-01"


def test_rule_facts_sum_the_violations_and_measure_minutes():
    f = overview.rule_facts(sessions([20, 60]), {"under_30_utterances": 0, "under_30_minutes": 1},
                            {"min_utterances": 30, "min_duration_minutes": 30})
    assert f["ov_rule_violations"] == 1 and f["ov_min_minutes"] == 20.0 and f["ov_median_minutes"] == 40.0
    assert f["ov_min_utt"] == 30 and f["ov_rule_min_minutes"] == 30


@pytest.mark.parametrize("lang, word", [("en", "session length"), ("ja", "対話時間")])
def test_duration_figure_pools_long_sessions_and_marks_the_minimum(lang, word):
    fig = overview.duration_figure(sessions([20, 400]), 30, lang=lang)
    ax = fig.axes[0]
    assert word in ax.get_xlabel() and len(ax.patches) == 60
    assert max(p.get_x() + p.get_width() for p in ax.patches) == pytest.approx(overview.DURATION_CLIP)
    assert [line.get_xdata()[0] for line in ax.lines] == [30]
    plt.close(fig)
