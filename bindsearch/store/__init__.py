"""The index's LanceDB tables: schemas, the stable item id, and every LanceDB read and write.

``bindsearch.store`` is the only package that talks to LanceDB; the search layer gets the
``items`` table from :meth:`Store.items_table`.
"""

from __future__ import annotations

from bindsearch.store.lance import ContentKey, ErrorRecord, FileState, Store
from bindsearch.store.schema import (
    ERRORS_SCHEMA,
    ITEM_KINDS,
    META_SCHEMA,
    conform_item_rows,
    items_schema,
    make_item_id,
)

__all__ = [
    "ERRORS_SCHEMA",
    "ITEM_KINDS",
    "META_SCHEMA",
    "ContentKey",
    "ErrorRecord",
    "FileState",
    "Store",
    "conform_item_rows",
    "items_schema",
    "make_item_id",
]
