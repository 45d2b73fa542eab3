"""Ranking: the top tags of a vocabulary for each photo.

    engine      the exact top-K engine (torch scan, quadratic form or direct product; FAISS)
    search      how a vocabulary is searched: exact or approximate (frequent tags, clusters)
    confidence  scores as the chance that a tag is right
"""
