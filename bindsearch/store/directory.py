"""What may serve as an index directory: checks made before LanceDB touches a directory.

``lancedb.connect`` creates a missing directory and later writes tables into whatever folder it
is given, so these checks keep a typo in ``--index`` from creating an empty index somewhere, and
keep bindsearch from writing tables into a folder of someone's files.
"""

from __future__ import annotations

import os
from pathlib import Path

from bindsearch.errors import ConfigError


def prepare_directory(directory: Path, create: bool) -> None:
    """Check that ``directory`` can hold an index; create it (empty) if ``create``."""
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"index path {directory} is a file; pass a directory for the index")
    if not create:
        if not directory.is_dir():
            raise ConfigError(
                f"no bindsearch index at {directory}: the directory does not exist. "
                "Pass the --index of an existing index, or ingest into this one first."
            )
        return
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create index directory {directory}: {exc}") from exc
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(f"index directory {directory} is not writable; pass another --index")


def check_is_index(directory: Path, table_names: set[str], marker: str, create: bool) -> None:
    """Refuse a directory that is not an index, unless ``create`` and it is empty.

    ``table_names`` are the LanceDB tables in ``directory``; the ``marker`` table (``meta``)
    is what makes a directory a bindsearch index.
    """
    if marker in table_names:
        return
    if not create:
        raise ConfigError(
            f"{directory} is not a bindsearch index (it has no {marker!r} table). "
            "Pass the --index of an existing index, or ingest into this one first."
        )
    if any(directory.iterdir()):
        raise ConfigError(
            f"{directory} is not empty and is not a bindsearch index; refusing to write "
            "tables into it. Pass a new or empty directory as --index."
        )
