"""``python -m bindsearch``: the command line."""

from bindsearch.cli import main

main()
