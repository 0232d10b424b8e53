"""Small synthetic corpora in the upstream layouts, for tests and quick notebook runs.

Nothing here comes from the released data: texts are built from a few stock phrases, so the
files can be generated anywhere and committed nowhere.

>>> import tempfile, pathlib
>>> d = write_kokorochat(pathlib.Path(tempfile.mkdtemp()), n_dialogues=3)
>>> len(list((d / "kokorochat_dialogues").glob("*.json")))
3
"""
from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path

from kokoro_nb.schema import FLAG_CHECKED, FLAGS, ITEMS, TOPICS

_COUNSELOR = ["こんにちは。相談員です。", "お話を聞かせていただけますか。", "それはつらかったですね。",
              "どのようなお気持ちでしたか。", "少し整理してみましょう。", "ご自身ではどう思われますか。",
              "よく頑張ってこられましたね。", "次に何ができそうでしょうか。", "ありがとうございました。"]
_CLIENT = ["こんにちは。よろしくお願いします。", "職場での人間関係に悩んでいます。", "はい。",
           "最近よく眠れません。", "家族にも相談しにくくて。", "そうかもしれません。",
           "少し気持ちが楽になりました。", "ありがとうございます。"]


def _dialogue(rng: random.Random, start: datetime, n_messages: int) -> list[dict]:
    out, t, role = [], start, "counselor"
    for i in range(n_messages):
        pool = _COUNSELOR if role == "counselor" else _CLIENT
        out.append({"role": role, "time": t.strftime("%Y-%m-%dT%H:%M:%S"),
                    "utterance": rng.choice(pool)})
        t += timedelta(seconds=rng.randint(20, 90))
        # Same-speaker runs happen in the real data; keep some so turn merging is exercised.
        if rng.random() < 0.7:
            role = "client" if role == "counselor" else "counselor"
    return out


def kokorochat_record(rng: random.Random, i: int) -> dict:
    """Return one synthetic dialogue file's content in the upstream JSON structure."""
    start = datetime(2021, 1, 1, 10) + timedelta(days=i, minutes=rng.randint(0, 600))
    dialogue = _dialogue(rng, start, rng.randint(40, 80))
    items = [rng.randint(1, 5) for _ in ITEMS]
    flags = {f.key: None for f in FLAGS}
    score = sum(items)
    if i % 7 == 3:
        flags["unwilling_to_continue"] = FLAG_CHECKED
        score //= 2
    topic = list(TOPICS)[i % len(TOPICS)]
    end = datetime.fromisoformat(dialogue[-1]["time"]) + timedelta(minutes=5)
    en = {"evaluation_id": i, "evaluation_created_at": end.strftime("%Y-%m-%dT%H:%M:%S"),
          "client_id": 100 + i % 5, "counselor_id": 200 + i % 4, "score": score,
          **{it.key_en: v for it, v in zip(ITEMS, items)}, **flags}
    jp = {"評価ID": i, "評価作成日時": en["evaluation_created_at"], "クライアント役ID": en["client_id"],
          "カウンセラー役ID": en["counselor_id"], "点数": score,
          **{it.key_jp: v for it, v in zip(ITEMS, items)},
          **{f.key_jp: flags[f.key] for f in FLAGS}}
    return {"dialogue": dialogue,
            "topic": {"main_jp": TOPICS[topic], "main_en": topic, "sub": "合成データの相談"},
            "review_by_client_jp": jp, "review_by_client_en": en}


def write_kokorochat(root: Path, n_dialogues: int = 20, seed: int = 0) -> Path:
    """Write a synthetic corpus in the upstream layout under *root*; return *root*."""
    rng = random.Random(seed)
    folder = Path(root) / "kokorochat_dialogues"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, n_dialogues + 1):
        rec = kokorochat_record(rng, i)
        (folder / f"{i}.json").write_text(json.dumps(rec, ensure_ascii=False, indent=2),
                                          encoding="utf-8")
    return Path(root)


# Stock English for the stock Japanese phrases (synthetic; not from any release).
_ENGLISH = dict(zip(_COUNSELOR + _CLIENT, [
    "Hello. I am the counselor.", "Could you tell me what is on your mind?", "That must have been hard.",
    "How did you feel then?", "Let us sort things out a little.", "What do you think yourself?",
    "You have done very well to get this far.", "What might you be able to do next?", "Thank you very much.",
    "Hello. Thank you for having me.", "I am struggling with relationships at work.", "Yes.",
    "I have not been sleeping well lately.", "It is hard to talk to my family about it too.",
    "That may be so.", "I feel a little lighter now.", "Thank you."]))


def write_translation(root: Path, kokorochat_root: Path, *, missing: tuple[str, ...] = ("3",),
                      empty: tuple[tuple[str, int], ...] = (("1", 2),)) -> Path:
    """Write a synthetic English translation (``English/en<id>.json``) of a synthetic KokoroChat.

    Dialogues in *missing* get no file; the messages (id, position) in *empty* get an empty
    translation, as in the release. Return *root*.
    """
    folder = Path(root) / "English"
    folder.mkdir(parents=True, exist_ok=True)
    for f in sorted((Path(kokorochat_root) / "kokorochat_dialogues").glob("*.json")):
        if f.stem in missing:
            continue
        rec = json.loads(f.read_text(encoding="utf-8"))
        dialogue = [{"role": m["role"], "time": m["time"], "origin": m["utterance"],
                     "content": "" if (f.stem, i) in empty else _ENGLISH.get(m["utterance"], "(synthetic)")}
                    for i, m in enumerate(rec["dialogue"])]
        out = {"dialogue": dialogue, "topic": rec["topic"], "review_by_client": rec["review_by_client_en"]}
        (folder / f"en{f.stem}.json").write_text(json.dumps(out, ensure_ascii=False, indent=2), encoding="utf-8")
    return Path(root)


def write_psy_insight(root: Path, n_sessions: int = 6, seed: int = 0) -> Path:
    """Write synthetic Psy-Insight files (``data/en_…``, ``data/cn_…``) under *root*; return it."""
    rng = random.Random(seed)
    folder = Path(root) / "data"
    folder.mkdir(parents=True, exist_ok=True)
    topics = ["Ongoing Depression", "Partner Relationship Issues", "Job Crisis"]
    for lang, seeker, supporter in (("en", "I feel low.", "What happened?"),
                                    ("cn", "我很难过。", "发生了什么？")):
        sessions = []
        for s in range(n_sessions):
            turns = []
            for t in range(rng.randint(4, 10)):
                if t % 2 == 0:
                    turns.append({"speaker": "Seeker", "participant": "Client", "content": seeker,
                                  "id": f"{s}-{t}", "emotional label": [rng.choice(["Sadness", "Anxiety"])]})
                else:
                    turns.append({"speaker": "Supporter", "participant": "Therapist", "content": supporter,
                                  "id": f"{s}-{t}", "strategy": [rng.choice(["Question", "Reflection"])]})
            sessions.append({"dialog_id": f"{s:06d}", "theme": "", "psychotherapy": "Cognitive Behaviour Therapy",
                             "topic": topics[s % len(topics)], "stage": "", "guide": "", "is_same_qa": 0,
                             "is_same_session": 0, "background": "", "reasoning": "", "summary": "",
                             "dialog": turns})
        (folder / f"{lang}_data_version7.json").write_text(json.dumps(sessions, ensure_ascii=False),
                                                           encoding="utf-8")
    return Path(root)
