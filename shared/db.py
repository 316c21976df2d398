"""Database engine and sessions, one engine per process (re-created after fork)."""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from diarq.shared.errors import ConfigError
from diarq.shared.settings import Settings, get_settings

_lock = threading.Lock()
_engines: dict[tuple[int, str], tuple[Engine, sessionmaker[Session]]] = {}


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 (DB-API types)
    # WAL lets the API read while a worker writes; busy_timeout makes concurrent
    # writers from several processes wait instead of failing with "database is locked".
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def _get(settings: Settings | None) -> tuple[Engine, sessionmaker[Session]]:
    url = (settings or get_settings()).database_url
    key = (os.getpid(), url)
    with _lock:
        found = _engines.get(key)
        if found is None:
            # a forked child must not share the parent's pooled connections
            for (pid, old_url), (engine, _) in list(_engines.items()):
                if pid != os.getpid():
                    engine.dispose(close=False)
                    del _engines[(pid, old_url)]
            engine = make_engine(url)
            found = (engine, sessionmaker(engine, expire_on_commit=False))
            _engines[key] = found
        return found


def get_engine(settings: Settings | None = None) -> Engine:
    return _get(settings)[0]


@contextmanager
def session_scope(settings: Settings | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = _get(settings)[1]()
    try:
        yield session
        session.commit()
    except BaseException:
        # a failed rollback must not replace the error that got us here: a soft time
        # limit (or any signal) raised while a query waits leaves the connection busy
        # ("another command is already in progress"), and the worker must still see the
        # time limit, not a database error it would retry. The connection is discarded.
        with suppress(Exception):
            session.rollback()
        raise
    finally:
        session.close()


def check_database(settings: Settings | None = None) -> None:
    with get_engine(settings).connect() as conn:
        conn.execute(text("SELECT 1"))


def migrations_dir() -> Path:
    """The folder of the ``diarq.migrations`` package (a checkout's migrations/, or the
    installed copy): found, not imported, because its env.py runs under Alembic."""
    spec = importlib.util.find_spec("diarq.migrations")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the diarq.migrations package is missing: reinstall diarq")
    return Path(next(iter(spec.submodule_search_locations)))


def alembic_config(settings: Settings | None = None):  # noqa: ANN201 (alembic type)
    from alembic.config import Config

    cfg = Config(str(migrations_dir() / "alembic.ini"))
    cfg.attributes["database_url"] = (settings or get_settings()).database_url
    return cfg


def upgrade(settings: Settings | None = None, revision: str = "head") -> None:
    """Apply Alembic migrations (what `diarq db upgrade` runs)."""
    from alembic import command
    from sqlalchemy.exc import OperationalError

    try:
        command.upgrade(alembic_config(settings), revision)
    except OperationalError as exc:
        url = (settings or get_settings()).database_url
        raise ConfigError(
            f"cannot reach the database ({type(exc.orig).__name__}); check DIARQ_DATABASE_URL "
            f"(now {_hide_password(url)}) and that the server is running"
        ) from None


def _hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable URL>"
