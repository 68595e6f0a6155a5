"""A prepare function whose decoder dies like a segfaulting native library on one file."""

from __future__ import annotations

import os

from bindsearch.ingest.prepare import FileJob, PreparedFile, prepare_file


def prepare_or_die(job: FileJob) -> PreparedFile:
    """``prepare_file``, except that a file named ``crash*`` kills the worker process."""
    if os.path.basename(job.path).startswith("crash"):
        os._exit(139)
    return prepare_file(job)
