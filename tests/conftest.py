"""Every test gets its own user state folder: the default ledger and outbox live there (see
digest/config/folders.py), and tests must neither share one nor touch the real one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def session_state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """For module- and session-scoped fixtures, which run before the per-test one below."""
    home = tmp_path_factory.mktemp("session-state-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_STATE_HOME", str(home))
        yield home


@pytest.fixture(autouse=True)
def private_state_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("state-home")
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    return home


def state_env() -> dict[str, str]:
    """An environment with nothing in it but the test's own state folder: for `load_settings(env=...)`,
    which would otherwise fall back to the user's ~/.local/state."""
    home = os.environ.get("XDG_STATE_HOME")  # set for every test (above); a helper process may run without
    return {"XDG_STATE_HOME": home} if home else {}
