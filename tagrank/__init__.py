"""tagrank: rank any vocabulary of tags for a photo, including tags never seen in training.

The subpackages follow the data:

    labels/       label encoders, vocabularies, the FAISS label index   (tags -> vectors)
    images/       photo decoding, the pretrained CNN, the feature cache, dataset readers (photos -> features)
    methods/      heads and losses, one registered class per method      (features, vectors -> scores)
    training/     the one trainer (one process or many), the trial log
    ranking/      the top-K engine, exact or approximate search, confidences
    evaluation/   NUS-WIDE style metrics and protocols, benchmark reports
    serve/        the HTTP service

and around them: ``config`` (configs/*.toml as dataclasses), ``model`` (saved models), ``tagger`` (the
Python API users call), ``output`` and ``batch`` (writing ranked tags, batch runs), ``cli`` (the
``tagrank`` command, a thin layer over the API).
"""

__version__ = "0.1.0"

# The public API, imported on first use so that `tagrank --help` does not pay for torch and gensim.
_EXPORTS = {
    "LabelIndex": "tagrank.labels.index",
    "Tagger": "tagrank.tagger",
    "TaggingModel": "tagrank.model",
    "evaluate": "tagrank.evaluation.protocols",
    "TagrankError": "tagrank.errors",
    "LabelEncoder": "tagrank.labels.encoders",
    "WordVectors": "tagrank.labels.encoders.word_vectors",
    "load_encoder": "tagrank.labels.encoders",
    "read_vocabulary": "tagrank.labels.vocab",
    "load_vocabulary": "tagrank.labels.vocab",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tagrank' has no attribute {name!r}")
