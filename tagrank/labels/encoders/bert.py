"""A BERT encoder in plain torch: all-MiniLM-L6-v2's forward pass without transformers.

sentence-transformers and transformers cost 5–6 s of imports on every start; the forward pass of a
6-layer BERT is a few dozen lines. The weights are read from the package's ``model.safetensors`` and
the WordPiece tokenizer from its ``tokenizer.json`` (``tokenizers``). Output: the mean of the last
layer's token states over the real tokens, unit length (sentence-transformers' Pooling + Normalize).
tests/test_encoders.py checks the vectors against reference vectors made by sentence-transformers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class BertConfig:
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    layer_norm_eps: float
    max_seq_length: int  # sentence-transformers' truncation, shorter than the position table

    @classmethod
    def read(cls, folder: Path) -> "BertConfig":
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        if config.get("hidden_act", "gelu") != "gelu" or config.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError("only BERT with GELU and absolute positions is supported")
        sentence = folder / "sentence_bert_config.json"
        limit = json.loads(sentence.read_text(encoding="utf-8"))["max_seq_length"] if sentence.is_file() else 512
        return cls(config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"],
                   config["intermediate_size"], config["layer_norm_eps"], min(limit, config["max_position_embeddings"]))


class Bert:
    """BERT's encoder as functions over a state dict (no nn.Module: nothing is trained)."""

    def __init__(self, weights: dict[str, torch.Tensor], config: BertConfig):
        self.w = weights
        self.config = config

    @classmethod
    def load(cls, folder: Path) -> "Bert":
        from safetensors.torch import load_file

        return cls(load_file(str(folder / "model.safetensors")), BertConfig.read(folder))

    def _norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self.w[f"{name}.weight"], self.w[f"{name}.bias"], self.config.layer_norm_eps)

    def _dense(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"])

    def _layer(self, x: torch.Tensor, mask: torch.Tensor, i: int) -> torch.Tensor:
        name, heads = f"encoder.layer.{i}", self.config.num_attention_heads
        B, T, H = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(B, T, heads, H // heads).transpose(1, 2)

        q, k, v = (split(self._dense(x, f"{name}.attention.self.{part}")) for part in ("query", "key", "value"))
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        attended = attended.transpose(1, 2).reshape(B, T, H)
        x = self._norm(x + self._dense(attended, f"{name}.attention.output.dense"), f"{name}.attention.output.LayerNorm")
        inner = F.gelu(self._dense(x, f"{name}.intermediate.dense"))
        return self._norm(x + self._dense(inner, f"{name}.output.dense"), f"{name}.output.LayerNorm")

    @torch.inference_mode()
    def sentence_vectors(self, ids: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """Unit mean-pooled vectors (B, H) of token ids (B, T), ``real`` (B, T) marking tokens that are not padding."""
        T = ids.shape[1]
        x = (self.w["embeddings.word_embeddings.weight"][ids]
             + self.w["embeddings.position_embeddings.weight"][:T][None]
             + self.w["embeddings.token_type_embeddings.weight"][0][None, None])
        x = self._norm(x, "embeddings.LayerNorm")
        # additive mask: padding keys get -inf-like weight (a large negative, as BERT uses, to keep rows finite)
        mask = (~real[:, None, None, :]).to(x.dtype) * torch.finfo(x.dtype).min
        for i in range(self.config.num_hidden_layers):
            x = self._layer(x, mask, i)
        weights = real[:, :, None].to(x.dtype)
        pooled = (x * weights).sum(1) / weights.sum(1).clamp_min(1e-9)
        return F.normalize(pooled, dim=1)


class SentenceEncoder:
    """Texts -> unit vectors with a BERT folder in sentence-transformers' layout (tokenizer.json, safetensors)."""

    def __init__(self, folder: Path):
        from tokenizers import Tokenizer

        self.bert = Bert.load(folder)
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.bert.config.max_seq_length)

    @property
    def dim(self) -> int:
        return self.bert.config.hidden_size

    def encode(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        """(len(texts), H) float32 unit vectors. Texts are batched by token length, so padding stays short."""
        encodings = self.tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = torch.zeros(len(texts), self.dim)
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            width = max(len(encodings[i].ids) for i in rows)
            ids = torch.zeros(len(rows), width, dtype=torch.long)
            real = torch.zeros(len(rows), width, dtype=torch.bool)
            for r, i in enumerate(rows):
                tokens = encodings[i].ids
                ids[r, :len(tokens)] = torch.tensor(tokens, dtype=torch.long)
                real[r, :len(tokens)] = True
            out[rows] = self.bert.sentence_vectors(ids, real)
        return out

