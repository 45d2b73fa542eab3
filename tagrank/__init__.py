"""tagrank: rank any vocabulary of tags for a photo, including tags never seen in training.

The modules follow the data:

    encoders/, vocab      label encoders and vocabulary files        (tags -> vectors)
    label_index           the FAISS label index                      (vectors, precomputed)
    images, backbone      decoding and the pretrained CNN            (photos -> features)
    features, datasets    the feature cache and dataset readers
    methods/              heads and losses, one registered class per method
    config, train         configuration dataclasses and the one trainer
    model, ranking        saved models and the top-K ranking engine
    tagger                the Python API users call
    metrics, evaluate     NUS-WIDE style metrics and protocols
    cli                   the `tagrank` command, a thin layer over the above
"""

__version__ = "0.1.0"

# The public API, imported on first use so that `tagrank --help` does not pay for torch and gensim.
_EXPORTS = {
    "LabelIndex": "tagrank.label_index",
    "Tagger": "tagrank.tagger",
    "TaggingModel": "tagrank.model",
    "evaluate": "tagrank.evaluate",
    "TagrankError": "tagrank.errors",
    "LabelEncoder": "tagrank.encoders",
    "WordVectors": "tagrank.encoders.word_vectors",
    "load_encoder": "tagrank.encoders",
    "read_vocabulary": "tagrank.vocab",
    "load_vocabulary": "tagrank.vocab",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tagrank' has no attribute {name!r}")
