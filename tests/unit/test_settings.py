import pytest

from shared.errors import ConfigError
from shared.plumbing.settings import settings_from_env
from tests.unit.helpers import make_settings


def test_missing_variables_are_named():
    with pytest.raises(ConfigError) as info:
        settings_from_env({"SUPABASE_URL": "http://x"})
    message = str(info.value)
    for name in (
        "SUPABASE_SERVICE_ROLE_KEY",
        "REPLICATE_API_TOKEN",
        "REPLICATE_TRAINER_VERSION",
        "REPLICATE_DESTINATION_MODEL",
    ):
        assert name in message


def test_invalid_values_are_named():
    with pytest.raises(ConfigError) as info:
        make_settings(replicate_trainer_version="latest", training_steps="0")
    assert "REPLICATE_TRAINER_VERSION" in str(info.value) and "TRAINING_STEPS" in str(info.value)


def test_secrets_do_not_show_in_repr():
    settings = make_settings()
    assert "service-role-key" not in repr(settings)
    assert "r8_test" not in repr(settings)


def test_photo_limits_follow_the_settings():
    from shared.services.intake import photo_limits

    limits = photo_limits(make_settings(photo_max_pixels="30000000", photo_decode_seconds="1.5"))
    assert (limits.max_pixels, limits.max_decode_seconds) == (30_000_000, 1.5)
