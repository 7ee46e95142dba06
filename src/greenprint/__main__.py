"""``python -m greenprint``."""

from greenprint.cli import main

main()
