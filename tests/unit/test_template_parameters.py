"""`sam deploy --guided` asks for template parameters in file order: the ones that need a
decision come first, and every one after them has a default (docs/deploy.md, step 3)."""

from __future__ import annotations

import re
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
DECISIONS = [
    "SupabaseUrl",
    "AppSecretArn",
    "ReplicateTrainerVersion",
    "ReplicateDestinationModel",
    "AllowedOrigins",
    "NotificationSender",
    "AlarmTopicArn",
]


def parameters() -> list[tuple[str, bool]]:
    """(name, has a Default) for each parameter, in file order."""
    text = TEMPLATE.read_text()
    block = text[text.index("\nParameters:\n") : text.index("\nConditions:\n")]
    found = []
    for match in re.finditer(r"^  ([A-Za-z0-9]+):\n((?:    .*\n|\n)*)", block, re.MULTILINE):
        found.append((match.group(1), "\n    Default:" in "\n" + match.group(2)))
    return found


def test_the_decisions_come_first_and_everything_after_has_a_default() -> None:
    found = parameters()
    assert [name for name, _ in found[: len(DECISIONS)]] == DECISIONS
    without_default = [name for name, has_default in found if not has_default]
    assert set(without_default) <= set(DECISIONS), without_default
    assert len(found) > len(DECISIONS)


def test_deploy_docs_name_every_decision() -> None:
    deploy = (TEMPLATE.parent / "docs" / "deploy.md").read_text()
    for name in DECISIONS:
        assert f"| `{name}` |" in deploy, name
