"""Write a label-prior score file for a dataset's test split, in the format `tagrank eval --scores` reads.

    python scripts/make_prior_scores.py nuswide ../shared/data/nuswide prior.parquet [--labels concepts|all]

Every test image gets each label's training frequency. It proves the --scores path end to end
without images (NUS-WIDE's photos are the user's own download) and is the floor every method must clear.
"""

from __future__ import annotations

import argparse

from tagrank.images.datasets import load_dataset
from tagrank.evaluation.protocols import prior_scores, write_score_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("root")
    parser.add_argument("out")
    parser.add_argument("--labels", choices=["concepts", "all"], default="all")
    args = parser.parse_args()
    test = load_dataset(args.dataset, args.root, "test")
    train = load_dataset(args.dataset, args.root, "train")
    labels = test.concepts if args.labels == "concepts" and test.concepts else test.labels
    write_score_file(args.out, test.ids, labels, prior_scores(train, labels, len(test)))
    print(f"wrote {args.out}: {len(test)} images x {len(labels)} labels")


if __name__ == "__main__":
    main()
