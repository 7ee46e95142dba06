"""Options and helpers shared by the subcommands."""

from __future__ import annotations

import click

from greenprint.carbon._intensity import applied_intensity

__all__ = ["applied_intensity", "ledger_option", "study_option"]

ledger_option = click.option(
    "--ledger",
    "ledger",
    default=None,
    metavar="PATH|URL",
    help="Ledger file or database URL [default: GREENPRINT_LEDGER, config, ./greenprint.db].",
)
study_option = click.option("--study", default=None, help="Study name.")
