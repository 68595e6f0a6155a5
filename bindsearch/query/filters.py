"""Result filters -> one LanceDB SQL predicate."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from bindsearch.errors import ConfigError

#: Values of the ``modality`` column.
ROW_MODALITIES = ("image", "video", "audio", "text", "depth", "thermal", "imu")


def sql_string(value: str) -> str:
    """A SQL string literal (single quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def glob_to_like(pattern: str) -> str:
    """A shell-style glob (``*``, ``?``) as a SQL LIKE pattern with ``\\`` as escape."""
    out = []
    for ch in pattern:
        if ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        elif ch in "%_\\":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


@dataclass(frozen=True)
class Filters:
    """Which rows a search may return.

    ``modalities``: result modalities (``image``, ``video`` ...). ``path``: an absolute path
    prefix (a folder) or a glob with ``*``/``?`` matched against the whole absolute path.
    ``where``: a SQL predicate on the table's columns in LanceDB syntax. ``segments``: also
    return segment rows (moments inside long media); by default only whole-file rows.
    """

    modalities: Sequence[str] = field(default_factory=tuple)
    path: str | None = None
    where: str | None = None
    segments: bool = False

    def __post_init__(self) -> None:
        unknown = sorted(set(self.modalities) - set(ROW_MODALITIES))
        if unknown:
            raise ConfigError(
                f"unknown modality filter {', '.join(unknown)}; use {', '.join(ROW_MODALITIES)}"
            )

    def predicate(self) -> str | None:
        """The SQL predicate, or ``None`` when every row qualifies."""
        clauses = []
        if not self.segments:
            clauses.append("start_s IS NULL")
        if self.modalities:
            clauses.append(f"modality IN ({', '.join(sql_string(m) for m in self.modalities)})")
        if self.path:
            clauses.append(self._path_clause(self.path))
        if self.where:
            clauses.append(f"({self.where})")
        return " AND ".join(clauses) if clauses else None

    @staticmethod
    def _path_clause(path: str) -> str:
        if any(ch in path for ch in "*?"):
            return f"path LIKE {sql_string(glob_to_like(os.path.abspath(path)))} ESCAPE '\\'"
        prefix = os.path.abspath(path)
        folder = prefix.rstrip(os.sep) + os.sep
        like = sql_string(glob_to_like(folder) + "%")
        return f"(path = {sql_string(prefix)} OR path LIKE {like} ESCAPE '\\')"
