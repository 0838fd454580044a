"""Persistence: one async interface, two backends (SQLite embedded, PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from aos.store.base import Conflict, NotFound, Store, StoreError, StoreUnavailable


async def open_store(url: str, *, schema: str | None = None) -> Store:
    """Open (and migrate) the store at ``url``.

    ``sqlite:///ABSOLUTE/PATH`` (or a bare path) selects the embedded backend;
    ``postgresql://...`` (optionally ``?schema=NAME``, or ``schema=``) selects
    PostgreSQL. Raises :class:`StoreUnavailable` naming the URL and the cause.
    """
    scheme = urlsplit(url).scheme
    if scheme in ("postgresql", "postgres"):
        from aos.store.postgres import PostgresStore

        return await PostgresStore.open(url, schema=schema)
    if scheme in ("sqlite", ""):
        from aos.store.sqlite import SQLiteStore

        path = unquote(url.removeprefix("sqlite://")) if scheme else url
        return await SQLiteStore.open(Path(path))
    raise StoreUnavailable(
        f"unsupported database URL scheme {scheme!r} in {url}: "
        "use sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
    )


def backend_of(url: str) -> str:
    """``sqlite`` or ``postgres``: which backend ``url`` selects."""
    return "postgres" if urlsplit(url).scheme in ("postgresql", "postgres") else "sqlite"


__all__ = [
    "Conflict",
    "NotFound",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "backend_of",
    "open_store",
]
