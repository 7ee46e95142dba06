"""``python -m greenprint.cli``."""

from greenprint.cli import main

main()
