"""Where bindsearch keeps its files, resolved from the environment at call time (never at import)."""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable naming bindsearch's home (weights cache and converted tensors).
HOME_ENV = "BINDSEARCH_HOME"
#: Environment variable naming a local weights file to use instead of downloading.
WEIGHTS_ENV = "BINDSEARCH_WEIGHTS"


def home_dir() -> Path:
    """bindsearch's cache directory: ``$BINDSEARCH_HOME`` or the user cache dir."""
    explicit = os.environ.get(HOME_ENV)
    if explicit:
        return Path(explicit).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("bindsearch"))


def weights_dir() -> Path:
    """Directory where downloaded checkpoints and their converted tensors live."""
    return home_dir() / "weights"


def weights_override() -> Path | None:
    """A local weights file named by ``$BINDSEARCH_WEIGHTS``, if set."""
    value = os.environ.get(WEIGHTS_ENV)
    return Path(value).expanduser() if value else None
