"""Who a request runs as, and the pooled Postgres connections it runs on."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg

from devstack.storage_emulator.wire import StorageError


@dataclass(frozen=True)
class Principal:
    """Who a request runs as in Postgres: the JWT's role and its claims."""

    role: str
    claims: Mapping[str, Any]

    @property
    def sub(self) -> str | None:
        sub = self.claims.get("sub")
        return str(sub) if sub is not None else None


SERVICE_ROLE = Principal("service_role", {"role": "service_role"})


# --------------------------------------------------------------------------- connection pool


class ConnectionPool:
    """A few autocommit psycopg connections shared by request threads (psycopg_pool isn't here)."""

    def __init__(self, dsn: str, max_size: int = 8, timeout: float = 30.0) -> None:
        self._dsn = dsn
        self._idle: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(max_size)
        self._timeout = timeout
        self._closed = False

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        if not self._slots.acquire(timeout=self._timeout):
            raise StorageError(
                503,
                "DatabaseConnectionLimit",
                "The database has reached its maximum number of "
                "connections. Please try again later.",
            )
        conn: psycopg.Connection[Any] | None = None
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = psycopg.connect(
                    self._dsn, autocommit=True, application_name="storage-emulator"
                )
            yield conn
        finally:
            if conn is not None:
                reusable = (
                    not self._closed
                    and not conn.closed
                    and not conn.broken
                    and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
                )
                if reusable:
                    self._idle.put(conn)
                else:
                    conn.close()
            self._slots.release()

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


# --------------------------------------------------------------------------- uploads
