"""Ledger databases for the tests: a SQLite file and, when DIGEST_TEST_POSTGRES_URL is set
(postgresql+psycopg://user:password@127.0.0.1:5432/db), PostgreSQL; each test gets its own schema there.
Without the variable the PostgreSQL case is skipped with the reason shown in the summary."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from digest.sender.ledger import Ledger

POSTGRES_ENV = "DIGEST_TEST_POSTGRES_URL"


def postgres_url() -> str:
    url = os.environ.get(POSTGRES_ENV, "")
    if not url:
        pytest.skip(f"PostgreSQL not configured: set {POSTGRES_ENV}=postgresql+psycopg://user:pass@127.0.0.1:5432/db")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL nobody else uses: a new SQLite file, or a new schema in the test PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'digest.sqlite3'}"
        return
    base = sa.make_url(postgres_url())
    schema = f"digest_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    opened = Ledger(ledger_url, max_attempts=3, retry_base_seconds=60)
    yield opened
    opened.close()
