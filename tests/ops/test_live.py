"""`make verify-live` and `make rollback` (ops.live) against moto's Lambda and CloudFormation.

moto's CloudFormation cannot run the SAM transform, nor create Lambda aliases, layer versions
or Function URLs, so the stack here holds the three functions (physical names are
CloudFormation's) and the `SharedLayerArn` output, and `deploy()` makes the Lambda API calls a
deploy of our transformed template makes: a new layer version when the layer changed, each
function's $LATEST updated, and, when the version's logical id changed, PublishVersion and the
alias moved to it. `publish=False` is issue 15: the layer moved, the versions did not.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from ops import live

STACK = "flurrty-twin"


def _zip(text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("python/shared/__init__.py", text)
    return buffer.getvalue()


TEMPLATE = {
    "Parameters": {"LayerArn": {"Type": "String"}},
    "Resources": {
        "Role": {
            "Type": "AWS::IAM::Role",
            "Properties": {"AssumeRolePolicyDocument": {"Statement": []}},
        },
        **{
            logical: {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Runtime": "python3.12",
                    "Handler": "app.handler",
                    "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                    "Code": {"ZipFile": "def handler(event, context):\n    return None\n"},
                },
            }
            for logical in live.FUNCTIONS.values()
        },
    },
    "Outputs": {"SharedLayerArn": {"Value": {"Ref": "LayerArn"}}},
}


class World:
    """One region of moto holding the stack; `deploy` does what CloudFormation would."""

    def __init__(self) -> None:
        self.cfn = boto3.client("cloudformation")
        self.lam = boto3.client("lambda")
        self.layer = self._publish_layer("layer 1")
        self.cfn.create_stack(
            StackName=STACK,
            TemplateBody=json.dumps(TEMPLATE),
            Parameters=[{"ParameterKey": "LayerArn", "ParameterValue": self.layer}],
            Capabilities=["CAPABILITY_IAM"],
        )
        self.physical = live.load_stack(self.cfn, STACK).functions
        for name in live.FUNCTIONS:
            self.lam.update_function_configuration(
                FunctionName=self.physical[name], Layers=[self.layer]
            )
            version = self.lam.publish_version(FunctionName=self.physical[name])["Version"]
            self.lam.create_alias(
                FunctionName=self.physical[name], Name="live", FunctionVersion=version
            )

    def _publish_layer(self, content: str) -> str:
        return str(
            self.lam.publish_layer_version(
                LayerName=f"{STACK}-shared", Content={"ZipFile": _zip(content)}
            )["LayerVersionArn"]
        )

    def deploy(self, layer_content: str, *, publish: bool = True) -> None:
        self.layer = self._publish_layer(layer_content)
        for physical in self.physical.values():
            self.lam.update_function_configuration(FunctionName=physical, Layers=[self.layer])
            if publish:
                version = self.lam.publish_version(FunctionName=physical)["Version"]
                self.lam.update_alias(FunctionName=physical, Name="live", FunctionVersion=version)
        self.cfn.update_stack(
            StackName=STACK,
            UsePreviousTemplate=True,
            Parameters=[{"ParameterKey": "LayerArn", "ParameterValue": self.layer}],
            Capabilities=["CAPABILITY_IAM"],
        )

    def alias(self, name: str) -> str:
        return str(
            self.lam.get_alias(FunctionName=self.physical[name], Name="live")["FunctionVersion"]
        )


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield World()


def run(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = live.main(["--stack-name", STACK, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_after_a_deploy_every_live_alias_serves_the_newest_version_and_layer(world, capsys) -> None:
    world.deploy("layer 2")
    code, out, _ = run("verify", capsys=capsys)
    assert code == 0, out
    assert out.count("ok     ") == 3 and "live -> 2 (newest 2), flurrty-twin-shared:2" in out


def test_a_deploy_that_moved_the_layer_but_published_nothing_is_caught(world, capsys) -> None:
    world.deploy("layer 2 with a fix", publish=False)  # what issue 15's template did
    code, out, _ = run("verify", capsys=capsys)
    assert code == 1
    assert out.count("NOT OK") == 3
    assert (
        "$LATEST uses flurrty-twin-shared:2 but the newest version (1) uses flurrty-twin-shared:1"
        in out
    )


def test_rollback_moves_live_to_the_previous_version_and_says_how_to_undo(world, capsys) -> None:
    world.deploy("layer 2")
    code, out, _ = run("rollback", "--function", "start_ai_training", capsys=capsys)
    assert code == 0
    assert world.alias("start_ai_training") == "1"
    assert world.alias("upload_training_photos") == "2"  # the others are untouched
    assert "start_ai_training: live 2 -> 1 (flurrty-twin-shared:1)" in out
    assert "undo: make rollback FUNCTION=start_ai_training VERSION=2" in out

    code, out, _ = run("verify", capsys=capsys)
    assert code == 1 and out.count("NOT OK") == 1
    assert "live serves version 1, the newest is 2: a rollback is in place" in out
    assert "$LATEST" not in out and "stack's layer" not in out  # the deploy itself is fine

    # Rolling forward is the same command with a version.
    code, _, _ = run(
        "rollback", "--function", "StartAiTrainingFunction", "--version", "2", capsys=capsys
    )
    assert code == 0 and world.alias("start_ai_training") == "2"
    assert run("verify", capsys=capsys)[0] == 0


def test_the_next_publishing_deploy_ends_a_rollback(world, capsys) -> None:
    world.deploy("layer 2")
    run("rollback", "--function", "check_training_status", capsys=capsys)
    world.deploy("layer 3")
    assert world.alias("check_training_status") == "3"
    assert run("verify", capsys=capsys)[0] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--function", "start"], "no function 'start': use one of upload_training_photos"),
        (["--function", "start_ai_training"], "no earlier version to roll back to"),
        (
            ["--function", "start_ai_training", "--version", "9"],
            "has no version 9; published versions: 1",
        ),
    ],
)
def test_bad_rollbacks_say_what_to_fix_and_change_nothing(world, capsys, args, message) -> None:
    code, _, err = run("rollback", *args, capsys=capsys)
    assert code == 2 and message in err
    assert all(world.alias(name) == "1" for name in live.FUNCTIONS)


def test_an_unknown_stack_names_what_to_check(world, capsys) -> None:
    code = live.main(["--stack-name", "flurrty-twin-typo", "verify"])
    err = capsys.readouterr().err
    assert code == 2
    assert "stack 'flurrty-twin-typo' not found in us-east-1" in err and "AWS_DEFAULT_REGION" in err


def test_the_region_may_come_from_aws_region_and_its_absence_is_explained(
    world, capsys, monkeypatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    assert run("verify", capsys=capsys)[0] == 0
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    code, _, err = run("verify", capsys=capsys)
    assert code == 2 and "set AWS_DEFAULT_REGION to the stack's region" in err


def test_functions_not_on_the_layer_the_stack_deployed_are_caught(world, capsys) -> None:
    world.deploy("layer 2")
    newer = world.lam.publish_layer_version(
        LayerName=f"{STACK}-shared", Content={"ZipFile": _zip("layer 3")}
    )["LayerVersionArn"]
    world.cfn.update_stack(
        StackName=STACK,
        UsePreviousTemplate=True,
        Parameters=[{"ParameterKey": "LayerArn", "ParameterValue": newer}],
        Capabilities=["CAPABILITY_IAM"],
    )
    code, out, _ = run("verify", capsys=capsys)
    assert code == 1 and out.count("NOT OK") == 3
    assert "the newest version (2) uses flurrty-twin-shared:2, not the stack's layer" in out
