"""Commands run as processes: a migrated database of their own for the audit rows they write,
and a port where no Redis listens."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.processes import MANAGE


@pytest.fixture(scope="session", autouse=True)
def process_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``DJANGO_DB_PATH`` for the ``manage.py`` processes tests start: a migrated SQLite file,
    as a deployed portal has (the demo's default path does not exist in a fresh checkout)."""
    path = tmp_path_factory.mktemp("process-db") / "db.sqlite3"
    subprocess.run(
        [sys.executable, str(MANAGE), "migrate", "--verbosity", "0"],
        env={**os.environ, "DJANGO_DB_PATH": str(path)},
        cwd=MANAGE.parent,
        check=True,
        capture_output=True,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_DB_PATH", str(path))
        yield path


@pytest.fixture()
def process_audit_rows(process_database: Path) -> Callable[[], list[dict[str, Any]]]:
    """Reads the audit rows processes wrote since the test began, oldest first (``counts`` as
    stored: JSON text)."""

    def read(since: int = 0) -> list[dict[str, Any]]:
        with sqlite3.connect(process_database) as connection:
            connection.row_factory = sqlite3.Row
            rows = connection.execute(
                "SELECT * FROM blobcache_auditentry WHERE id > ? ORDER BY id", (since,)
            ).fetchall()
        return [dict(row) for row in rows]

    already = max((row["id"] for row in read()), default=0)
    return lambda: read(already)


@pytest.fixture()
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
