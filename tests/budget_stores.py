"""Where the shared-budget tests keep their budgets: a file, or a row of a real PostgreSQL
database (the `budget_store` fixture of conftest.py runs a test on each).

    place = budget_store.place("b")          # a Path, or a BudgetRow of this test's own
    with budget_store.state(place).edit() as document: ...
    budget_store.config()                    # the tally.toml keys that choose this store

Each test on PostgreSQL has a database of its own (`budgets_<random>`) on the session's server
(`postgres_server.py`): rows named as in a directory (`b`, `bitstamp-<fingerprint>`) do not meet
another test's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from postgres_server import PostgresServer

from pipelines.database_url import DatabaseUrl
from pipelines.http import BudgetPlace, BudgetRow
from pipelines.http._pgstate import TABLE, PgState
from pipelines.http._statefile import StateFile


@dataclass(frozen=True)
class BudgetStore:
    kind: str  # "file" or "postgresql"
    directory: Path
    server: PostgresServer | None = None
    database: str = ""

    @classmethod
    def on_files(cls, directory: Path) -> BudgetStore:
        return cls("file", directory)

    @classmethod
    def on_postgres(cls, server: PostgresServer, directory: Path) -> BudgetStore:
        database = f"budgets_{uuid.uuid4().hex[:10]}"
        server.execute(f'CREATE DATABASE "{database}"')
        return cls("postgresql", directory, server, database)

    @property
    def url(self) -> DatabaseUrl:
        assert self.server is not None, "a store on files has no URL"
        return DatabaseUrl(self.server.url(self.database))

    def place(self, name: str) -> BudgetPlace:
        if self.server is None:
            return self.directory / f"{name}.json"
        return BudgetRow(self.url, name)

    def state(self, place: BudgetPlace) -> StateFile | PgState:
        if isinstance(place, BudgetRow):
            return PgState(place.url, place.name)
        return StateFile(place)

    def config(self) -> dict[str, Any]:
        """The keys of tally.toml that put a sync's budgets in this store."""
        return {} if self.server is None else {"rate_budget_url": str(self.url)}

    def fetch(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        """The rows of `query` ($1 placeholders) in this store's database."""
        assert self.server is not None, "a store on files has no database"
        return self.server.fetch(query, *args, database=self.database)

    def raw(self, place: BudgetPlace) -> str:
        """The document as stored (the file's text, the row's `document`)."""
        if isinstance(place, BudgetRow):
            rows = self.fetch(f"SELECT document FROM {TABLE} WHERE name = $1", place.name)
            return str(rows[0][0]) if rows else ""
        return place.read_text(encoding="utf-8") if place.exists() else ""

    def write_raw(self, place: BudgetPlace, text: str) -> None:
        """Store `text` as the document, as a foreign writer (or a crash) would."""
        if isinstance(place, BudgetRow):
            assert self.server is not None
            state = PgState(place.url, place.name)
            with state.edit():  # the table, made if missing
                pass
            state.close()
            self.server.execute(
                f"INSERT INTO {TABLE} (name, document) VALUES ($1, $2)"
                " ON CONFLICT (name) DO UPDATE SET document = excluded.document",
                place.name,
                text,
                database=self.database,
            )
        else:
            place.write_text(text, encoding="utf-8")
