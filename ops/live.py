"""The `live` alias of each function: check it after a deploy, move it back (or forward) by hand.

    python -m ops.live --stack-name flurrty-twin verify            (make verify-live)
    python -m ops.live --stack-name flurrty-twin rollback --function start_ai_training [--version 7]
                                                    (make rollback FUNCTION=... [VERSION=...])

Physical function names come from the stack's resources (CloudFormation DescribeStackResources),
the layer the stack deployed from its `SharedLayerArn` output. Region and credentials are boto3's
usual ones (AWS_DEFAULT_REGION or AWS_REGION, AWS_PROFILE, ...). Exit codes: 0 fine, 1 a check
failed, 2 bad input or an AWS error, with a sentence that says what to do.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import Any, TextIO

import boto3
from botocore.exceptions import BotoCoreError, ClientError

ALIAS = "live"
# Short name (the folder under functions/) -> logical id in template.yaml.
FUNCTIONS = {
    "upload_training_photos": "UploadTrainingPhotosFunction",
    "start_ai_training": "StartAiTrainingFunction",
    "check_training_status": "CheckTrainingStatusFunction",
}
LAYER_OUTPUT = "SharedLayerArn"


class OpsError(Exception):
    """Something the operator has to fix or decide; the message says what."""


@dataclass
class Stack:
    name: str
    functions: dict[str, str]  # short name -> physical name
    layer_arn: str | None


@dataclass
class Live:
    function: str
    physical: str
    live: int
    versions: list[int]
    live_layers: list[str]
    newest_layers: list[str]
    latest_layers: list[str]

    @property
    def newest(self) -> int:
        return max(self.versions)


def load_stack(cfn: Any, stack_name: str) -> Stack:
    try:
        resources = cfn.describe_stack_resources(StackName=stack_name)["StackResources"]
        stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    except ClientError as exc:
        raise OpsError(
            f"stack {stack_name!r} not found in {cfn.meta.region_name} ({exc}). Give the stack "
            "name you deployed (STACK=..., samconfig.toml's stack_name) and its region "
            "(AWS_DEFAULT_REGION=...); `sam list stack-outputs --stack-name <name>` lists a stack's outputs"
        ) from exc
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in resources
        if r["ResourceType"] == "AWS::Lambda::Function"
    }
    missing = [logical for logical in FUNCTIONS.values() if logical not in physical]
    if missing:
        raise OpsError(f"stack {stack_name!r} has no {', '.join(missing)}: is it this project's?")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    return Stack(
        name=stack_name,
        functions={short: physical[logical] for short, logical in FUNCTIONS.items()},
        layer_arn=outputs.get(LAYER_OUTPUT),
    )


def _layers(config: dict[str, Any]) -> list[str]:
    return [layer["Arn"] for layer in config.get("Layers", [])]


def read_live(lam: Any, function: str, physical: str) -> Live:
    alias = lam.get_alias(FunctionName=physical, Name=ALIAS)["FunctionVersion"]
    versions = [
        int(v["Version"])
        for page in lam.get_paginator("list_versions_by_function").paginate(FunctionName=physical)
        for v in page["Versions"]
        if v["Version"] != "$LATEST"
    ]

    def layers(qualifier: str | None = None) -> list[str]:
        extra = {"Qualifier": qualifier} if qualifier else {}
        return _layers(lam.get_function_configuration(FunctionName=physical, **extra))

    newest = str(max(versions))
    return Live(
        function=function,
        physical=physical,
        live=int(alias),
        versions=sorted(versions),
        live_layers=layers(alias),
        newest_layers=layers(newest),
        latest_layers=layers(),
    )


def _short(arn: str) -> str:
    """`name:version` of a layer version ARN."""
    return ":".join(arn.split(":")[-2:])


def _names(layers: list[str]) -> str:
    return ", ".join(map(_short, layers)) or "no layer"


def problems(state: Live, stack_layer: str | None) -> list[str]:
    """What keeps `live` from serving the last deploy; the deploy checks look at the newest
    version, so a rollback in place is reported once, not as a broken deploy."""
    found = []
    if state.live != state.newest:
        found.append(
            f"live serves version {state.live}, the newest is {state.newest}: a rollback is in "
            f"place (roll forward: make rollback FUNCTION={state.function} "
            f"VERSION={state.newest}), or the last deploy did not move the alias"
        )
    if state.newest_layers != state.latest_layers:
        found.append(
            f"$LATEST uses {_names(state.latest_layers)} but the newest version ({state.newest}) "
            f"uses {_names(state.newest_layers)}: a deploy changed the function without "
            "publishing a version; run `make redeploy`"
        )
    elif stack_layer and stack_layer not in state.newest_layers:
        found.append(
            f"the newest version ({state.newest}) uses {_names(state.newest_layers)}, not the "
            f"stack's layer {_short(stack_layer)}"
        )
    return found


def verify(cfn: Any, lam: Any, stack_name: str, out: TextIO) -> int:
    stack = load_stack(cfn, stack_name)
    print(f"stack {stack.name}: layer {_short(stack.layer_arn or '?:?')}", file=out)
    failed = 0
    for function, physical in stack.functions.items():
        state = read_live(lam, function, physical)
        found = problems(state, stack.layer_arn)
        layers = _names(state.live_layers)
        verdict = "ok" if not found else "NOT OK"
        print(
            f"{verdict:6} {function}: live -> {state.live} (newest {state.newest}), {layers}"
            f"  [{physical}]",
            file=out,
        )
        for problem in found:
            print(f"       {problem}", file=out)
        failed += bool(found)
    if failed:
        print(f"{failed} function(s) not serving the newest deploy", file=out)
        return 1
    print("every function's live alias serves its newest version with the stack's layer", file=out)
    return 0


def rollback(
    cfn: Any, lam: Any, stack_name: str, function: str, version: int | None, out: TextIO
) -> int:
    short = {v: k for k, v in FUNCTIONS.items()}.get(function, function)
    if short not in FUNCTIONS:
        raise OpsError(f"no function {function!r}: use one of {', '.join(FUNCTIONS)}")
    stack = load_stack(cfn, stack_name)
    state = read_live(lam, short, stack.functions[short])
    if version is None:
        earlier = [v for v in state.versions if v < state.live]
        if not earlier:
            raise OpsError(
                f"{short}: live is on version {state.live} and there is no earlier version "
                "to roll back to"
            )
        version = max(earlier)
    elif version not in state.versions:
        raise OpsError(
            f"{short} has no version {version}; published versions: "
            f"{', '.join(map(str, state.versions))}"
        )
    if version == state.live:
        print(f"{short}: live already serves version {version}; nothing changed", file=out)
        return 0
    lam.update_alias(FunctionName=state.physical, Name=ALIAS, FunctionVersion=str(version))
    layers = _layers(
        lam.get_function_configuration(FunctionName=state.physical, Qualifier=str(version))
    )
    print(
        f"{short}: live {state.live} -> {version} ({_names(layers)})"
        f"  [{state.physical}]\n"
        f"undo: make rollback FUNCTION={short} VERSION={state.live}\n"
        "The next deploy that publishes a new version of this function (a change in its code, "
        "in shared/, in the requirements or in its settings) moves live to that new version; "
        "a deploy that changes nothing for it leaves live here, and `make verify-live` reports "
        "the rollback until then.",
        file=out,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ops.live", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--stack-name", default="flurrty-twin")
    parser.add_argument("--region", default=None, help="default: AWS_REGION, then boto3's own")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("verify", help="live serves the newest version with the stack's layer")
    back = commands.add_parser("rollback", help="point live at an earlier (or any) version")
    back.add_argument("--function", required=True, help=", ".join(FUNCTIONS))
    back.add_argument("--version", type=int, default=None, help="default: the one before live")
    args = parser.parse_args(argv)
    try:
        # boto3 reads AWS_DEFAULT_REGION and the profile's region, not AWS_REGION: take both.
        region = args.region or os.environ.get("AWS_REGION") or None
        session = boto3.session.Session(region_name=region)
        if session.region_name is None:
            raise OpsError(
                "no AWS region: set AWS_DEFAULT_REGION to the stack's region (or pass --region)"
            )
        cfn, lam = session.client("cloudformation"), session.client("lambda")
        if args.command == "verify":
            return verify(cfn, lam, args.stack_name, sys.stdout)
        return rollback(cfn, lam, args.stack_name, args.function, args.version, sys.stdout)
    except OpsError as exc:
        print(f"{parser.prog} {args.command}: {exc}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as exc:
        print(f"{parser.prog} {args.command}: AWS refused or failed: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
