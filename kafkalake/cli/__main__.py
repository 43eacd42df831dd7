"""``python -m kafkalake.cli``: the same command as ``kafkalake``."""

from kafkalake.cli import main

main()
