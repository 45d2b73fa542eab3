"""Precompute the MiniLM vectors of every named vocabulary, shipped in the package.

    python scripts/make_encoder_table.py

Writes tagrank/labels/encoders/tables/minilm.safetensors (float16 vectors of the normalised tags of
vocab/*.txt, the ImageNet class names among them, in sorted order) and its
sha256 beside it. With them a plain `tagrank rank` never runs the transformer. The same installed
weights give the same bytes.
"""

from __future__ import annotations

import json

import numpy as np
from safetensors.numpy import save

from tagrank.checksums import file_sha256
from tagrank.labels.encoders.minilm import TABLE, MiniLMEncoder, model_folder
from tagrank.labels.vocab import load_vocabulary, named_vocabularies


def main() -> None:
    encoder = MiniLMEncoder(model_folder(), table=None)
    texts = sorted({encoder.normalise(tag) for name in named_vocabularies() for tag in load_vocabulary(name)} - {""})
    vectors = encoder.compute(texts)
    meta = {"tagrank": json.dumps({"texts": texts, "weights": encoder.checksum, "encoder": encoder.describe(),
                                   "made_by": "scripts/make_encoder_table.py"}, ensure_ascii=False)}
    TABLE.parent.mkdir(parents=True, exist_ok=True)
    TABLE.write_bytes(save({"vectors": np.ascontiguousarray(vectors)}, metadata=meta))
    digest = file_sha256(TABLE)
    TABLE.with_suffix(".sha256").write_text(f"{digest}  {TABLE.name}\n", encoding="ascii")
    print(f"wrote {TABLE}: {len(texts)} tags, {TABLE.stat().st_size / 1e6:.1f} MB, sha256 {digest}")


if __name__ == "__main__":
    main()
