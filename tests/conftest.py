"""Shared fixtures: an isolated bindsearch home per test, and small model configs."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Never touch the user's cache: every test gets its own BINDSEARCH_HOME."""
    monkeypatch.setenv("BINDSEARCH_HOME", str(tmp_path_factory.mktemp("bindsearch-home")))
    monkeypatch.delenv("BINDSEARCH_WEIGHTS", raising=False)


@pytest.fixture(autouse=True, scope="session")
def _few_threads():
    """Two cores on CI: keep torch from oversubscribing them."""
    torch.set_num_threads(2)
