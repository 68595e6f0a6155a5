"""The ``bindsearch`` command line. Thin: parses input, calls the library, renders results."""

from bindsearch.cli.app import app, main

__all__ = ["app", "main"]
