"""``python -m bdpl``: the command line."""

from bdpl.cli.app import main

main()
