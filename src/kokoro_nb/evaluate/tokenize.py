"""Tokenizers of the evaluation protocol: a registry of named tokenizers, each with a signature.

Every metric of :mod:`kokoro_nb.evaluate.metrics` reads the same tokens; the signature names
the tokenizer and its versions so a printed score says how its text was split. Not the subword
tokenizers of the models (those are :mod:`transformers`').

>>> tok = get_tokenizer("space")
>>> tok("a b  c"), tok.signature()
(['a', 'b', 'c'], 'space')
>>> get_tokenizer("char")("はい、 そう")
['は', 'い', '、', 'そ', 'う']
"""
from __future__ import annotations

import importlib.metadata as _md

from kokoro_nb.errors import DataError, MissingDependencyError


def dist_version(dist: str) -> str:
    """Return an installed distribution's version ("absent" when it is not installed)."""
    try:
        return _md.version(dist)
    except _md.PackageNotFoundError:
        return "absent"


_TOKENIZERS: dict[str, type] = {}


def register_tokenizer(cls: type) -> type:
    """Register a tokenizer class under its ``name`` (class decorator)."""
    _TOKENIZERS[cls.name] = cls
    return cls


class Tokenizer:
    """Base class: ``tok(text) -> list[str]`` and ``tok.signature()``.

    ``tokenize`` is an alias so that an instance can be handed to rouge-score directly.
    """
    name = "base"

    def __call__(self, text: str) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def tokenize(self, text: str) -> list[str]:
        return self(text)

    def signature(self) -> str:
        return self.name


@register_tokenizer
class JaUnidicTokenizer(Tokenizer):
    """Japanese words: fugashi (MeCab) with unidic-lite, surface forms, whitespace dropped.

    >>> JaUnidicTokenizer()("お話を 聞かせて\\nください。")
    ['お', '話', 'を', '聞か', 'せ', 'て', 'ください', '。']
    """
    name = "ja-unidic"

    def __init__(self):
        try:
            import fugashi
            import unidic_lite
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise MissingDependencyError(
                "the ja-unidic tokenizer needs fugashi and unidic-lite: "
                "pip install fugashi unidic-lite") from exc
        # Name unidic-lite explicitly: fugashi would prefer a full unidic if one were installed.
        d = unidic_lite.DICDIR
        self._tagger = fugashi.Tagger(f'-d "{d}" -r "{d}/mecabrc"')

    def __call__(self, text: str) -> list[str]:
        # Split on whitespace first so no token spans it, then drop whitespace-only tokens
        # (MeCab returns full-width spaces as tokens).
        out: list[str] = []
        for chunk in text.split():
            out.extend(w.surface for w in self._tagger(chunk) if w.surface.strip())
        return out

    def signature(self) -> str:
        return (f"ja-unidic(fugashi-{dist_version('fugashi')},unidic-lite-{dist_version('unidic-lite')},"
                "surface,punct-kept,ws-dropped)")


@register_tokenizer
class CharTokenizer(Tokenizer):
    """Characters, whitespace dropped.

    >>> CharTokenizer()("はい、 そう")
    ['は', 'い', '、', 'そ', 'う']
    """
    name = "char"

    def __call__(self, text: str) -> list[str]:
        return [c for c in text if not c.isspace()]

    def signature(self) -> str:
        return "char(ws-dropped)"


@register_tokenizer
class SpaceTokenizer(Tokenizer):
    """Whitespace-separated tokens, for text that is already tokenised (tests, other languages)."""
    name = "space"

    def __call__(self, text: str) -> list[str]:
        return text.split()


def tokenizer_names() -> tuple[str, ...]:
    """Return the registered tokenizer names."""
    return tuple(_TOKENIZERS)


def get_tokenizer(tokenizer: str | Tokenizer = "ja-unidic") -> Tokenizer:
    """Return a tokenizer instance from a registered name (or pass an instance through)."""
    if isinstance(tokenizer, Tokenizer):
        return tokenizer
    if tokenizer not in _TOKENIZERS:
        raise DataError(f"unknown tokenizer {tokenizer!r}; choose one of {', '.join(_TOKENIZERS)}",
                        field="tokenizer")
    return _TOKENIZERS[tokenizer]()
