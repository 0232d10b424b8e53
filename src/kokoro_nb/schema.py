"""One schema for counseling corpora, declared before any data is read.

Every loader maps its source into two tables with these columns; the validators and the
statistics read the same declarations. KokoroChat fills the score columns; Psy-Insight fills
the label columns; what a source lacks is missing (``<NA>``), never invented.
"""
from __future__ import annotations

from dataclasses import dataclass

ROLES = ("counselor", "client")

KOKOROCHAT_CITATION = """@inproceedings{qi2025kokorochat,
  title     = {KokoroChat: A Japanese Psychological Counseling Dialogue Dataset Collected via Role-Playing by Trained Counselors},
  author    = {Zhiyang Qi and Takumasa Kaneko and Keiko Takamizo and Mariko Ukiyo and Michimasa Inaba},
  booktitle = {Proceedings of the 63rd Annual Meeting of the Association for Computational Linguistics},
  year      = {2025},
  url       = {https://github.com/UEC-InabaLab/KokoroChat}
}"""
KOKOROCHAT_LICENSE = "CC BY-NC-ND 4.0"
MULTILINGUAL_CITATION = """@inproceedings{suzuki2026multilingualkokorochat,
  title     = {Multilingual KokoroChat: A Multi-LLM Ensemble Translation Method for Creating a Multilingual Counseling Dialogue Dataset},
  author    = {Ryoma Suzuki and Zhiyang Qi and Michimasa Inaba},
  booktitle = {Proceedings of the Fifteenth Language Resources and Evaluation Conference},
  year      = {2026},
  url       = {https://github.com/UEC-InabaLab/MultilingualKokoroChat}
}"""
MULTILINGUAL_LICENSE = KOKOROCHAT_LICENSE
PSY_INSIGHT_LICENSE = "inherited from its raw sources (MIT / Apache-2.0)"


@dataclass(frozen=True)
class Item:
    """One of the 20 client-feedback items (paper Table 2)."""
    code: str       # D1..D20, paper order
    key_en: str     # key in review_by_client_en (upstream spelling kept)
    key_jp: str     # key in review_by_client_jp
    label_en: str   # paper Table 2 wording


ITEMS: tuple[Item, ...] = tuple(Item(f"D{i}", en, jp, label) for i, (en, jp, label) in enumerate([
    ("felt_heard_and_understood", "聴いてもらえた、わかってもらえたと感じた", "Felt heard and understood"),
    ("felt_respected", "尊重されたと感じた", "Felt respected"),
    ("gained_new_insights", "新しい気づきや体験があった", "Gained new insights"),
    ("felt_hopeful_or_expectant", "希望や期待を感じられた", "Felt hopeful or expectant"),
    ("concerns_were_addressed", "取り組みたかったことを扱えた", "Concerns were addressed"),
    ("thought_through_concerns_together", "一緒に考えながら取り組めた", "Thought through concerns together"),
    ("conversation_had_good_rhythm", "やりとりのリズムがあっていた", "The conversation had a good rhythm"),
    ("conversation_felt_comfortable", "居心地のよいやりとりだった", "The conversation felt comfortable"),
    ("felt_appropriate_and_satisfying", "全体として適切でよかった", "Felt appropriate and satisfying"),
    ("conversation_was_valuable", "今回の相談は価値があった", "The conversation was valuable"),
    ("conversation_started_smoothly", "相談開始の円滑さ", "The conversation started smoothly"),
    ("conversation_ended_well", "相談終了のタイミング（不必要に聴きすぎていないか）、円滑さ", "The conversation ended well"),
    ("showed_acceptance_and_empathy", "受容・共感", "Showed acceptance and empathy"),
    ("provided_acknowledgment_and_affirmation", "肯定・承認", "Provided acknowledgment and affirmation"),
    ("asked_effective_questions", "的確な質問による会話の促進", "Asked effective questions to foster dialogue"),
    ("summarized_key_points_effectively", "要約", "Summarized key points effectively"),
    ("clarified_issues_cleraly", "問題の明確化", "Clarified issues clearly"),
    ("helped_identify_goals", "この相談での目標の明確化", "Helped identify goals for the conversation"),
    ("offered_actionable_suggestions", "次の行動につながる提案", "Offered actionable suggestions"),
    ("encouraged_and_instilled_hope", "勇気づけ・希望の喚起", "Encouraged and instilled hope"),
], start=1))
ITEM_CODES: tuple[str, ...] = tuple(it.code for it in ITEMS)
ITEM_MIN, ITEM_MAX = 0, 5
SCORE_MIN, SCORE_MAX = 0, 100


@dataclass(frozen=True)
class Flag:
    """A screening item of paper Appendix A.3; upstream marks it with the string 'チェックあり'."""
    key: str
    key_jp: str
    label_en: str
    label_ja: str
    rule: str        # how it changed the released total score


FLAGS: tuple[Flag, ...] = (
    Flag("harmful_due_to_ignorance", "無理解と軽率さによる傷つけ発言",
         "Harmful remarks due to ignorance or carelessness", "無理解と軽率さによる傷つけ発言", "zero"),
    Flag("other_potentially_unethical", "その他の倫理違反が疑われる発言",
         "Other potentially unethical remarks", "その他の倫理違反が疑われる発言", "zero"),
    Flag("unwilling_to_continue", "離脱", "Unwilling to continue", "離脱", "halve"),
)
FLAG_KEYS: tuple[str, ...] = tuple(f.key for f in FLAGS)
FLAG_CHECKED = "チェックあり"

# The 11 predefined issue types (paper section 4.1), English and Japanese as upstream writes them.
TOPICS: dict[str, str] = {
    "Family Issues (Non-Spousal)": "家庭内問題（夫婦以外）",
    "Workplace Issues": "職場問題",
    "Mental Health Issues": "心理的問題",
    "School Issues": "学校問題",
    "Career and Educational Issues": "進路・キャリア問題",
    "Romantic Issues": "恋愛問題",
    "Family Issues (Spouse)": "家庭内問題（夫婦）",
    "Interpersonal Issues": "人間関係",
    "Financial Issues": "経済的問題",
    "Physical Health Issues": "身体的健康問題",
    "Others": "その他",
}

# Table columns and their pandas dtypes. Loaders build exactly these, in this order.
DIALOGUE_COLUMNS: dict[str, str] = {
    "dialogue_id": "string",
    "corpus": "string",             # kokorochat | psy-insight
    "language": "string",           # ja | en | zh
    "topic": "string",              # main topic, English
    "topic_ja": "string",           # main topic, Japanese (KokoroChat)
    "subtopic": "string",           # free-text sub-topic (KokoroChat)
    "psychotherapy": "string",      # Psy-Insight
    "counselor_id": "Int64",
    "client_id": "Int64",
    "evaluation_id": "Int64",
    "evaluated_at": "datetime64[s]",
    "started_at": "datetime64[s]",
    "ended_at": "datetime64[s]",
    "n_utterances": "int32",
    **{code: "Int8" for code in ITEM_CODES},
    "score": "Int16",
    **{key: "boolean" for key in FLAG_KEYS},
    "source_file": "string",
}
UTTERANCE_COLUMNS: dict[str, str] = {
    "dialogue_id": "string",
    "position": "int32",            # 0-based order within the dialogue
    "role": "category",             # counselor | client
    "time": "datetime64[s]",
    "text": "string",
    "n_chars": "int32",             # length in characters (Python str length)
    "text_en": "string",            # English translation (Multilingual KokoroChat); <NA> if none
    "n_words_en": "Int32",          # whitespace-separated words of text_en; <NA> if none
    "strategy": "string",           # Psy-Insight supporter labels, '|'-joined
    "emotion": "string",            # Psy-Insight seeker labels, '|'-joined
}
TURN_COLUMNS: tuple[str, ...] = ("dialogue_id", "turn", "role", "text", "text_en", "n_chars", "n_messages",
                                 "start_time", "end_time", "first_position")

# Multilingual KokoroChat (English half): English/en<id>.json, one file per KokoroChat dialogue.
TRANSLATION_FOLDER = "English"
TRANSLATION_PREFIX = "en"
TRANSLATION_MESSAGE_FIELDS = ("role", "time", "origin", "content")   # origin = the Japanese text
