"""Options and helpers shared by the subcommands."""

from __future__ import annotations

import click

from greenprint.carbon._intensity import applied_intensity

__all__ = ["applied_intensity", "ledger_option", "pue_option", "study_option"]

ledger_option = click.option(
    "--ledger",
    "ledger",
    default=None,
    metavar="PATH|URL",
    help="Ledger file or database URL [default: GREENPRINT_LEDGER, config, ./greenprint.db].",
)
study_option = click.option("--study", default=None, help="Study name.")
pue_option = click.option(
    "--pue",
    default=None,
    metavar="PUE|PRESET",
    help="Data-centre PUE, a number in [1, 3] or a preset (google, aws, azure...) "
    "[default: GREENPRINT_PUE, config, 1.0].",
)
