"""Shared fixtures: an isolated bindsearch home per test, and small model configs."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Before any test module is collected: stop with one message if a compiled piece is broken.

    A torchaudio (or torchvision, PyAV, FAISS, ...) wheel built for another torch fails at
    import with an undefined symbol; without this check that surfaces as collection errors in
    every module that imports it.
    """
    from bindsearch.doctor import failure_message, run_checks

    failed = [check for check in run_checks() if not check.ok]
    if failed:
        pytest.exit(failure_message(failed), returncode=4)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Never touch the user's cache: every test gets its own BINDSEARCH_HOME."""
    monkeypatch.setenv("BINDSEARCH_HOME", str(tmp_path_factory.mktemp("bindsearch-home")))
    monkeypatch.delenv("BINDSEARCH_WEIGHTS", raising=False)


@pytest.fixture(autouse=True, scope="session")
def _few_threads():
    """Two cores on CI: keep torch from oversubscribing them."""
    import torch

    torch.set_num_threads(2)
