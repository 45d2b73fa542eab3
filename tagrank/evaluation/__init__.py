"""Evaluation: exact metrics and the protocols that feed them.

    metrics    NUS-WIDE top-K per-class and overall P/R/F1, mAP, N+ (vectorised)
    protocols  which labels are ranked, which photos count, where the scores come from
    markdown   the benchmark reports' tables and regenerated sections
"""
