"""A tiny Lightning regressor and a quiet CPU trainer, for tests that nest a fit in a run.

Imported inside tests that have skipped without ``lightning`` (the import needs it).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch


class Regressor(pl.LightningModule):
    """One linear layer fitted by SGD on (x, y) batches with a mean squared error."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def quiet_trainer(*callbacks: Any, max_epochs: int) -> pl.Trainer:
    """A CPU trainer with no logger, checkpoint, progress bar or summary, and ``callbacks``."""
    return pl.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
    )


class DDPRegressor(pl.LightningModule):
    """One linear layer fitted by SGD, its training loss logged summed over ranks; each rank
    ends its process group at the end of the fit.

    Defined here, not in a test, so that ``ddp_spawn`` can pickle it by name to its ranks.
    """

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss, sync_dist=True)
        return loss

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def on_fit_end(self) -> None:
        # each spawned rank ends its process group, as torch asks of every distributed program:
        # Lightning does so at exit for NCCL only, and a rank that exits with gloo's threads
        # alive can abort ("terminate called without an active exception", SIGABRT,
        # pytorch/pytorch#190489)
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
