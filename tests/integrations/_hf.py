"""A tiny BERT and a dataset of random tokens for Hugging Face Trainer tests (CPU, seconds).

It imports torch and transformers at the top: import it where a test module imports them, in a
fixture after ``need_installed("transformers", ...)`` (``integrations._frameworks``), not at
collection.
"""

from __future__ import annotations

import torch
from transformers import AutoModelForSequenceClassification, BertConfig


class Tokens(torch.utils.data.Dataset):
    """Random token sequences with binary labels, in memory."""

    def __init__(self, n: int = 32, length: int = 8, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randint(0, 50, (n, length), generator=gen)
        self.y = torch.randint(0, 2, (n,), generator=gen)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {
            "input_ids": self.x[i],
            "attention_mask": torch.ones_like(self.x[i]),
            "labels": self.y[i],
        }


def tiny_bert() -> torch.nn.Module:
    """A one-layer BERT classifier of a few thousand parameters (random weights, no download)."""
    config = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=2,
    )
    return AutoModelForSequenceClassification.from_config(config)
