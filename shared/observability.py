"""Structured logging and metrics singletons (Powertools), one per function container."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

logger = Logger()  # service name from POWERTOOLS_SERVICE_NAME
metrics = Metrics(namespace="FlurrtyTwin")
