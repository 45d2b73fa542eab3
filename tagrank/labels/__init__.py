"""The label side: tags -> vectors -> the index the ranker searches.

    encoders/   label encoders (wordllama, MiniLM, GloVe, a user's file)   tags -> vectors
    vocab       vocabularies: a user's tag file or a named list              the tags asked for
    index       the label index: a vocabulary's vectors, precomputed, in FAISS
"""
