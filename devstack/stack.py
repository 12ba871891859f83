"""The whole local stack in one object: Postgres, PostgREST, the Supabase gateway (REST + Storage
emulator + local Auth), the Replicate emulator (or the real Replicate), the three Function URLs
with template.yaml's CORS, and the playground page."""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.function_urls import FunctionUrls, template_cors
from devstack.gateway import SupabaseGateway
from devstack.playground import Playground
from devstack.ports import LOOPBACK, Lifecycle, free_port
from devstack.postgres import LocalPostgres
from devstack.postgrest import LocalPostgrest
from devstack.replicate_emulator import TRAINER_VERSION, ReplicateEmulator
from devstack.replicate_emulator.common import new_webhook_secret
from devstack.schema import apply_schema, create_user
from devstack.tokens import anon_key, service_role_key, user_access_token

FUNCTIONS = ("upload_training_photos", "start_ai_training", "check_training_status")
DESTINATION_NAME = "flurrty-twins"
# Browser origins the local Function URLs allow besides the playground's own (a Vite dev server).
DEV_ORIGINS = ("http://localhost:5173", "http://127.0.0.1:5173")


def local_allowed_origins(playground_origin: str) -> list[str]:
    """The local stand-in for template.yaml's `AllowedOrigins`: the playground's own origin, then
    `ALLOWED_ORIGINS` (comma separated) when set, else the usual dev-server origins. The
    playground is always in: its port is new on every start."""
    configured = os.environ.get("ALLOWED_ORIGINS")
    if configured is None:
        others = list(DEV_ORIGINS)
    else:
        others = [origin.strip() for origin in configured.split(",") if origin.strip()]
    return [playground_origin, *(origin for origin in others if origin != playground_origin)]


@dataclass
class StackOptions:
    data_dir: Path
    schedule_seconds: float | None = 3.0
    boot_seconds: float = 0.5
    train_seconds: float = 4.0
    training_steps: int = 1000
    real_replicate_token: str | None = None  # train on the real Replicate instead of the emulator
    extra_env: dict[str, str] = field(default_factory=dict)


class LocalStack(Lifecycle):
    def __init__(self, options: StackOptions):
        self.options = options
        self.jwt_secret = secrets.token_urlsafe(32)
        self.replicate_token = options.real_replicate_token or "r8_local_" + secrets.token_hex(12)
        self.webhook_secret = new_webhook_secret()
        self.pg: LocalPostgres | None = None
        self.rest: LocalPostgrest | None = None
        self.gateway: SupabaseGateway | None = None
        self.replicate: ReplicateEmulator | None = None
        self.functions: FunctionUrls | None = None
        self.playground: Playground | None = None
        self.allowed_origins: list[str] = []
        self._owned: list[Any] = []
        self._saved_env: dict[str, str | None] = {}

    # -- lifecycle -----------------------------------------------------------------------------
    def start(
        self,
        pg: LocalPostgres | None = None,
        rest: LocalPostgrest | None = None,
        jwt_secret: str | None = None,
    ) -> LocalStack:
        """Start what is not given; a test session may hand in its own Postgres and PostgREST."""
        try:
            self._start(pg, rest, jwt_secret)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(
        self, pg: LocalPostgres | None, rest: LocalPostgrest | None, jwt_secret: str | None
    ) -> None:
        data = self.options.data_dir
        data.mkdir(parents=True, exist_ok=True)
        if jwt_secret:
            self.jwt_secret = jwt_secret
        if pg is None:
            pg = LocalPostgres(data / "pg")
            pg.start()
            self._owned.append(pg)
            apply_schema(pg.dsn())
        self.pg = pg
        if rest is None:
            rest = LocalPostgrest(pg.dsn(), self.jwt_secret)
            rest.start()
            self._owned.append(rest)
        self.rest = rest
        self.gateway = SupabaseGateway(
            postgrest_url=rest.url,
            database_url=pg.dsn(),
            jwt_secret=self.jwt_secret,
            data_dir=data / "storage",
        )
        self.gateway.start()
        self._owned.append(self.gateway)
        if self.options.real_replicate_token is None:
            self.replicate = ReplicateEmulator(
                api_token=self.replicate_token,
                webhook_secret=self.webhook_secret,
                boot_seconds=self.options.boot_seconds,
                train_seconds=self.options.train_seconds,
            )
            self.replicate.start()
            self._owned.append(self.replicate)
        playground_port = free_port()
        self.allowed_origins = local_allowed_origins(f"http://{LOOPBACK}:{playground_port}")
        self.functions = FunctionUrls(
            {name: free_port() for name in FUNCTIONS},
            self.options.schedule_seconds,
            cors=template_cors({"AllowedOrigins": self.allowed_origins}),
        )
        self._apply_env(self.function_env())
        self.functions.start()
        self._owned.append(self.functions)
        self.playground = Playground(self.playground_config(), playground_port)
        self.playground.start()
        self._owned.append(self.playground)

    def stop(self) -> None:
        for component in reversed(self._owned):
            try:
                component.stop()
            except Exception:
                continue
        self._owned.clear()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
        _reset_function_caches()

    # -- configuration -------------------------------------------------------------------------
    @property
    def supabase_url(self) -> str:
        assert self.gateway is not None
        return self.gateway.url

    @property
    def service_role_key(self) -> str:
        return service_role_key(self.jwt_secret)

    def url(self, function: str) -> str:
        assert self.functions is not None
        return self.functions.url(function)

    def sign_in(self, email: str | None = None) -> tuple[str, str]:
        """A new user of this stack and an access token for them: (user id, token)."""
        assert self.pg is not None
        user_id = create_user(self.pg.dsn(), email)
        return user_id, user_access_token(self.jwt_secret, self.supabase_url, user_id)

    def playground_config(self) -> dict[str, Any]:
        """What the playground page calls: only public URLs and the public anon key."""
        return {
            "uploadUrl": self.url("upload_training_photos"),
            "startUrl": self.url("start_ai_training"),
            "statusUrl": self.url("check_training_status"),
            "supabaseUrl": self.supabase_url,
            "supabaseAnonKey": anon_key(self.jwt_secret),
            "statusRefreshSeconds": float(self.function_env()["STATUS_REFRESH_SECONDS"]),
        }

    def function_env(self) -> dict[str, str]:
        """The environment the handlers run with (what template.yaml sets in AWS)."""
        env = {
            "SUPABASE_URL": self.supabase_url,
            "SUPABASE_SERVICE_ROLE_KEY": self.service_role_key,
            "SUPABASE_JWT_SECRET": self.jwt_secret,
            "TRAINING_PHOTOS_BUCKET": "training-photos",
            "REPLICATE_API_TOKEN": self.replicate_token,
            "TRAINING_STEPS": str(self.options.training_steps),
            "STATUS_REFRESH_SECONDS": "1",
            "POWERTOOLS_SERVICE_NAME": "flurrty-twin-local",
            "POWERTOOLS_METRICS_NAMESPACE": "FlurrtyTwinLocal",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
        }
        if self.replicate is not None:
            env.update(
                REPLICATE_BASE_URL=self.replicate.base_url,
                REPLICATE_TRAINER_VERSION=TRAINER_VERSION,
                REPLICATE_DESTINATION_MODEL=f"{self.replicate.owner}/{DESTINATION_NAME}",
                WEBHOOK_BASE_URL=self.url("check_training_status").rstrip("/"),
                REPLICATE_WEBHOOK_SECRET=self.webhook_secret,
                # The estimate's fallback until a job has completed: the emulator's timing.
                EXPECTED_TRAINING_SECONDS=str(
                    self.options.boot_seconds + self.options.train_seconds
                ),
            )
        else:
            # Real Replicate cannot reach 127.0.0.1, so no webhooks: the schedule does the work.
            for key in ("REPLICATE_TRAINER_VERSION", "REPLICATE_DESTINATION_MODEL"):
                if not os.environ.get(key):
                    raise SystemExit(f"{key} must be set to train on the real Replicate")
                env[key] = os.environ[key]
        env.update(self.options.extra_env)
        return env

    def _apply_env(self, env: dict[str, str]) -> None:
        for key, value in env.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value
        if self.replicate is None:
            self._saved_env.setdefault("REPLICATE_BASE_URL", os.environ.get("REPLICATE_BASE_URL"))
            os.environ.pop("REPLICATE_BASE_URL", None)
        _reset_function_caches()

    def stack_env(self) -> dict[str, str]:
        """What `make up` writes to .local/stack.env for other tools."""
        assert self.pg is not None
        env = {
            "SUPABASE_URL": self.supabase_url,
            "SUPABASE_SERVICE_ROLE_KEY": self.service_role_key,
            "SUPABASE_ANON_KEY": anon_key(self.jwt_secret),
            "SUPABASE_JWT_SECRET": self.jwt_secret,
            "DATABASE_URL": self.pg.dsn(),
            "REPLICATE_API_TOKEN": self.replicate_token,
            "UPLOAD_URL": self.url("upload_training_photos"),
            "START_URL": self.url("start_ai_training"),
            "STATUS_URL": self.url("check_training_status"),
            "ALLOWED_ORIGINS": ",".join(self.allowed_origins),
        }
        if self.playground is not None:
            env["PLAYGROUND_URL"] = self.playground.url
        if self.replicate is not None:
            env["REPLICATE_BASE_URL"] = self.replicate.base_url
        return env


def _reset_function_caches() -> None:
    from shared import bootstrap

    bootstrap.reset()


def fresh_data_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path
