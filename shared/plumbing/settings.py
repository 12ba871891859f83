"""The settings every function reads, validated from the environment in one object.

In AWS the secrets are not in plain environment variables: `APP_SECRET_ARN` names a Secrets Manager
secret (a JSON object) that `shared.bootstrap.settings()` reads once per container and passes in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from shared.errors import ConfigError

SECRET_KEYS = (
    "SUPABASE_SERVICE_ROLE_KEY",
    "SUPABASE_JWT_SECRET",
    "REPLICATE_API_TOKEN",
    "REPLICATE_WEBHOOK_SECRET",
)


class Settings(BaseModel):
    """Every knob the functions read. Field names are the environment variable names, lower-cased."""

    # Built at the first get_settings() (the first request), like every model here: not at import.
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    supabase_url: str
    supabase_service_role_key: SecretStr
    supabase_jwt_secret: SecretStr | None = None  # legacy HS256 projects
    supabase_jwks_url: str | None = None  # default: <SUPABASE_URL>/auth/v1/.well-known/jwks.json
    training_photos_bucket: str = "training-photos"

    replicate_api_token: SecretStr
    replicate_base_url: str | None = None  # the emulator locally; unset = api.replicate.com
    replicate_trainer_model: str = "ostris/flux-dev-lora-trainer"
    replicate_trainer_version: str
    replicate_destination_model: str
    replicate_destination_hardware: str = "cpu"
    training_trigger_word: str = "TOK"
    training_steps: int = Field(1000, ge=3, le=6000)

    webhook_base_url: str | None = None
    replicate_webhook_secret: SecretStr | None = None

    photos_min: int = Field(3, ge=1)
    photos_max: int = Field(6, ge=1)
    photo_max_bytes: int = Field(15 * 1024 * 1024, gt=0)
    photo_min_short_side: int = Field(512, gt=0)
    photo_max_long_side: int = Field(2048, gt=0)
    # Fits the 1024 MB upload function with room to spare and keeps the worst accepted photo's
    # decode near 2 s (bench/decode.py); 48 MP phone photos (8064x6048) pass.
    photo_max_pixels: int = Field(50_000_000, gt=0)
    photo_decode_seconds: float = Field(3.0, gt=0)  # per photo; six fit the 29 s timeout
    photos_max_total_bytes: int = Field(80 * 1024 * 1024, gt=0)  # per job (signed uploads)
    # How long a signed-upload job waits for its photos; the signed URLs' own lifetime (2 h on
    # hosted Supabase) caps it.
    upload_window_seconds: int = Field(7200, ge=60)

    status_refresh_seconds: float = Field(5.0, ge=0)
    sweep_concurrency: int = Field(32, ge=1, le=64)
    training_stale_minutes: float = Field(90.0, gt=0)
    claim_timeout_seconds: float = Field(180.0, gt=0)  # longer than start_ai_training's timeout
    expected_training_seconds: float = Field(600.0, gt=0)
    training_price_per_second: float = Field(0.001528, ge=0)
    # The training queue (batch admission): trainings in flight at once, per owner, and the
    # day's budget (UTC; None: none), each admitted training reserving the estimate until its
    # bill is known. A 429 on a create holds every admission for its Retry-After, capped.
    max_concurrent_trainings: int = Field(20, ge=1)
    max_trainings_per_user: int = Field(1, ge=1)
    daily_training_budget_usd: float | None = Field(None, gt=0)
    training_cost_estimate_usd: float = Field(1.5, gt=0)
    queue_max_wait_hours: float = Field(72.0, gt=0)
    throttle_hold_max_seconds: float = Field(300.0, gt=0)
    photo_retention_days: float = Field(7.0, ge=0)  # photos kept this long after a job ends
    # A job uploaded (pending) but never started is failed and its photos removed after this.
    unstarted_job_expiry_hours: float = Field(168.0, gt=0)
    notification_sender: str | None = None
    # Previews: pictures made with a version when it completes (0: none), their prompt templates
    # (a JSON list; empty: the built-in ones), the LoRA scale, how long a create waits for the
    # picture (Prefer: wait), when Replicate cancels a prediction (Cancel-After) and the sweep
    # gives one up, how long the notice waits for them, signed URL lifetimes, the owner's daily
    # on-demand pictures, the price.
    preview_count: int = Field(4, ge=0, le=8)
    preview_prompts: tuple[str, ...] = ()
    preview_lora_scale: float = Field(1.0, ge=-1.0, le=3.0)
    preview_wait_seconds: int = Field(20, ge=0, le=40)
    preview_timeout_seconds: int = Field(300, ge=5, le=3600)
    preview_notice_wait_seconds: float = Field(300.0, ge=0)
    preview_url_seconds: int = Field(900, ge=10, le=86_400)
    preview_notice_url_seconds: int = Field(7 * 86_400, ge=60, le=30 * 86_400)
    previews_per_day: int = Field(20, ge=0, le=999)
    preview_price_per_second: float = Field(0.001525, ge=0)
    preview_cost_estimate_usd: float = Field(0.012, ge=0)

    @field_validator("preview_prompts", mode="before")
    @classmethod
    def _templates(cls, value: object) -> object:
        from shared.domain.previews import template_problem

        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else []
            except ValueError:
                raise ValueError("must be a JSON list of prompt templates") from None
        if not isinstance(value, list | tuple) or not all(isinstance(t, str) for t in value):
            raise ValueError("must be a JSON list of prompt templates")
        for template in value:
            if problem := template_problem(template):
                raise ValueError(f"{template!r}: {problem}")
        return tuple(value)

    @property
    def preview_templates(self) -> tuple[str, ...]:
        from shared.domain.previews import DEFAULT_TEMPLATES

        return self.preview_prompts or DEFAULT_TEMPLATES

    @field_validator("supabase_url", "replicate_base_url", "webhook_base_url", "supabase_jwks_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else None

    @field_validator("replicate_destination_model", "replicate_trainer_model")
    @classmethod
    def _owner_name(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*/[a-z0-9][a-z0-9_.-]*", value):
            raise ValueError("must look like owner/name in lower case")
        return value

    @field_validator("replicate_trainer_version")
    @classmethod
    def _version_id(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9a-f]{64}", value):
            raise ValueError("must be a 64-character hex version id")
        return value

    @property
    def jwks_url(self) -> str:
        return self.supabase_jwks_url or f"{self.supabase_url}/auth/v1/.well-known/jwks.json"

    @property
    def token_issuer(self) -> str:
        return f"{self.supabase_url}/auth/v1"

    @property
    def destination(self) -> tuple[str, str]:
        owner, name = self.replicate_destination_model.split("/", 1)
        return owner, name


def settings_from_env(env: Mapping[str, str], secrets: Mapping[str, str] | None = None) -> Settings:
    """Validate the environment; the error names every missing or invalid variable.

    `secrets`: the values read from the `APP_SECRET_ARN` secret (only its `SECRET_KEYS` count);
    they win over the environment."""
    values: dict[str, Any] = {k.lower(): v for k, v in env.items() if v != ""}
    values.update({k.lower(): v for k, v in (secrets or {}).items() if k in SECRET_KEYS and v})
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        missing = [str(e["loc"][0]).upper() for e in exc.errors() if e["type"] == "missing"]
        invalid = [
            f"{str(e['loc'][0]).upper()} ({e['msg']})"
            for e in exc.errors()
            if e["type"] != "missing"
        ]
        parts = []
        if missing:
            parts.append("missing required environment variables: " + ", ".join(missing))
        if invalid:
            parts.append("invalid environment variables: " + "; ".join(invalid))
        raise ConfigError(". ".join(parts)) from None
