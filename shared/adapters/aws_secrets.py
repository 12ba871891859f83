"""The app secret from AWS Secrets Manager: one JSON object holding every secret setting."""

from __future__ import annotations

import json

from shared.errors import ConfigError


def read_app_secret(arn: str) -> dict[str, str]:
    import boto3  # only in AWS (the Lambda runtime ships it), and only with APP_SECRET_ARN set

    raw = boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
    values = json.loads(raw)
    if not isinstance(values, dict):
        raise ConfigError(f"secret {arn} must hold a JSON object")
    return {str(k): str(v) for k, v in values.items()}
