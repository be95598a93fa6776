"""``python -m eventual``: the command line."""

from eventual.cli import main

main()
