"""Shared builders for unit tests."""

from __future__ import annotations

from typing import Any

from shared.settings import Settings, settings_from_env

JWT_SECRET = "unit-test-secret-unit-test-secret-0123456789"
SUPABASE_URL = "http://supabase.test"


# A complete environment for the functions (what Lambda would hold).
SETTINGS_ENV = {
    "SUPABASE_URL": SUPABASE_URL,
    "SUPABASE_SERVICE_ROLE_KEY": "service-role-key",
    "SUPABASE_JWT_SECRET": JWT_SECRET,
    "REPLICATE_API_TOKEN": "r8_test",
    "REPLICATE_TRAINER_VERSION": "a" * 64,
    "REPLICATE_DESTINATION_MODEL": "flurrty/flurrty-twins",
    "REPLICATE_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "WEBHOOK_BASE_URL": "https://status.test",
}


def make_settings(**overrides: Any) -> Settings:
    env = {**SETTINGS_ENV, **{k.upper(): str(v) for k, v in overrides.items()}}
    return settings_from_env(env)
