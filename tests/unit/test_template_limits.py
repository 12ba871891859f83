"""Limits of template.yaml that cfn-lint cannot see: a function version's Description holds at
most 256 characters, and ours is built from parameter values (see `Globals` in the template), so
the longest values the parameters allow must still fit, or a deploy fails half-way."""

from __future__ import annotations

import re
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
LAMBDA_VERSION_DESCRIPTION_MAX = 256

# The longest value each parameter accepts (its AllowedPattern, AllowedValues or MaxValue), or a
# generous one where the template cannot bound it (a price typed with many decimals).
LONGEST = {
    "ConfigRevision": "x" * 16,
    "LogLevel": "CRITICAL",
    "EnableSnapStart": "false",
    "ReplicateTrainerVersion": "f" * 64,
    "TrainingSteps": "6000",
    "TrainingTriggerWord": "T" * 32,
    "PhotosMin": "20",
    "PhotosMax": "20",
    "PhotoMaxBytes": "52428800",
    "PhotoMinShortSide": "4096",
    "PhotoMaxLongSide": "8192",
    "PhotosMaxTotalBytes": "314572800",
    "UploadWindowSeconds": "7200",
    "PhotoRetentionDays": "365",
    "UnstartedJobExpiryHours": "8760",
    "StatusRefreshSeconds": "300",
    "SweepConcurrency": "64",
    "TrainingStaleMinutes": "1440",
    "TrainingPricePerSecond": "0.0015280000",
    "MaxConcurrentTrainings": "1000",
    "MaxTrainingsPerUser": "20",
    "DailyTrainingBudgetUsd": "1234567.89",
    "TrainingCostEstimateUsd": "1.5000000000",
    "QueueMaxWaitHours": "720",
    "PreviewCount": "8",
    "PreviewsPerDay": "999",
}


def version_descriptions() -> list[str]:
    """Each `VersionDescription: !Sub >-` block, folded as YAML folds it (lines joined by spaces)."""
    lines = TEMPLATE.read_text().splitlines()
    blocks = []
    for i, line in enumerate(lines):
        if line.strip() == "VersionDescription: !Sub >-":
            indent = len(line) - len(line.lstrip()) + 2
            body = []
            for following in lines[i + 1 :]:
                if len(following) - len(following.lstrip()) < indent or not following.strip():
                    break
                body.append(following.strip())
            blocks.append(" ".join(body))
    return blocks


def test_every_version_description_fits_with_the_longest_parameter_values() -> None:
    blocks = version_descriptions()
    assert len(blocks) == 3, "one per function"
    for block in blocks:
        names = re.findall(r"\$\{(\w+)\}", block)
        assert set(names) <= set(LONGEST), f"add the longest value of {set(names) - set(LONGEST)}"
        rendered = re.sub(r"\$\{(\w+)\}", lambda m: LONGEST[m.group(1)], block)
        assert len(rendered) <= LAMBDA_VERSION_DESCRIPTION_MAX, (len(rendered), rendered)


def test_the_longest_values_match_the_template_bounds() -> None:
    text = TEMPLATE.read_text()
    for name in (
        "PhotosMaxTotalBytes",
        "UploadWindowSeconds",
        "PhotoRetentionDays",
        "UnstartedJobExpiryHours",
        "PhotoMaxBytes",
    ):
        declared = re.search(rf"\n  {name}:\n(?:    .*\n)*?    MaxValue: (\d+)\n", text)
        assert declared is not None, name
        assert declared.group(1) == LONGEST[name], name
