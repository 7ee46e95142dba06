"""A tiny Lightning regressor, its data and a quiet CPU trainer, for tests of the callback.

Imported by fixtures that have skipped without ``lightning`` and ``torch`` (the import needs
them). Shared by the integration probes of session 23 (each defined the same module before).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from greenprint.integrations.lightning import GreenprintCallback


class Regressor(pl.LightningModule):
    """One linear layer fitted by SGD, logging ``train_loss`` and ``val_loss`` (its ``lr`` a
    hyper-parameter the callback records)."""

    def __init__(self, lr: float = 0.1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def trainer(callback: object, **options: Any) -> pl.Trainer:
    """A CPU trainer with no logger, checkpoint, progress bar or summary, and ``callback``."""
    return pl.Trainer(
        accelerator="cpu",
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **options,
    )


def lightning_kit() -> dict[str, Any]:
    """The module class, the callback class, the trainer factory and loaders of fixed data:
    ``train`` (64 examples; ``loader`` is the same) and ``held_out`` (32)."""
    torch.manual_seed(0)
    train = TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
    held_out = TensorDataset(torch.randn(32, 4), torch.randn(32, 1))
    return {
        "Regressor": Regressor,
        "Callback": GreenprintCallback,
        "trainer": trainer,
        "train": lambda: DataLoader(train, batch_size=16),
        "loader": lambda: DataLoader(train, batch_size=16),
        "held_out": lambda: DataLoader(held_out, batch_size=16),
    }
