"""Transform a packaged SAM template into the CloudFormation template a deploy would create.

Runs with the pinned SAM tools' interpreter (it imports samtranslator, the same library and version
that `sam validate` and cfn-lint use):

    .local/sam-venv/bin/python ops/sam_transform.py packaged.yaml > transformed.json

A packaged template (`sam package`) has S3 locations in place of local paths: the translator
refuses local paths, and the S3 keys (content checksums) are what decides which versions change.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import boto3
from samcli.yamlhelper import yaml_parse
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform

# Values for the parameters without a default: only used where the translator resolves parameters.
REQUIRED_PARAMETERS = {
    "SupabaseUrl": "https://example.supabase.co",
    "AppSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:flurrty-AbCdEf",
    "ReplicateTrainerVersion": "0" * 64,
    "ReplicateDestinationModel": "owner/model",
}


def transformed(packaged: Path) -> dict[str, Any]:
    template = yaml_parse(packaged.read_text())
    # AWS managed policy names (none today) would be looked up through IAM, as `sam validate` does.
    loader = ManagedPolicyLoader(boto3.client("iam"))
    return transform(template, dict(REQUIRED_PARAMETERS), loader)


if __name__ == "__main__":
    json.dump(transformed(Path(sys.argv[1])), sys.stdout, indent=1, sort_keys=True, default=str)
