"""Which deploys publish new function versions and move `live` (issue 15).

Run by `make template-check` after `sam build`. Each case is a real `sam build` of a copy of the
repository's sources, a real `sam package` (to S3 in moto, on 127.0.0.1) and the pinned SAM
translator's transform (ops/sam_transform.py): the CloudFormation template a `sam deploy` of that
build would create. A function's `AWS::Lambda::Version` logical id is what decides: a new id is a
new published version and the `live` alias moves to it; the same id publishes nothing.

- a rebuild with no change (in another directory, so another scratch path) publishes nothing;
- a change in shared/ alone publishes a new version of every function and moves every alias;
- a change in one function's code publishes that function only.

The before/after version resources are written to .aws-sam/version-publishing.json.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / ".aws-sam" / "build"
SAM_VENV = Path(os.environ.get("TEMPLATE_SAM_VENV", ROOT / ".local" / "sam-venv")).resolve()
SAM = str(SAM_VENV / "bin" / "sam")
LAMBDA_PYTHON = os.environ.get("TEMPLATE_LAMBDA_PYTHON", "")
SOURCES = ("template.yaml", "samconfig.toml", "requirements.txt", "constraints.txt")
SOURCE_DIRS = ("functions", "shared")
FUNCTIONS = (
    "UploadTrainingPhotosFunction",
    "StartAiTrainingFunction",
    "CheckTrainingStatusFunction",
)
BUCKET = "flurrty-twin-artifacts"
REPORT = ROOT / ".aws-sam" / "version-publishing.json"

pytestmark = pytest.mark.skipif(
    not (BUILD / "template.yaml").is_file() or not LAMBDA_PYTHON,
    reason="needs `make template-check` (a fresh sam build and TEMPLATE_LAMBDA_PYTHON)",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def sam_env() -> Iterator[dict[str, str]]:
    """Environment for the SAM tools: every AWS call goes to moto on 127.0.0.1."""
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "SAM_CLI_TELEMETRY": "0",
        # sam build needs Lambda's python3.12 first on PATH.
        "PATH": f"{Path(LAMBDA_PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        env.pop(key, None)
    s3 = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket=BUCKET)
    try:
        yield env
    finally:
        server.stop()


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"


def _build_copy(dest: Path, env: dict[str, str], change: Callable[[Path], None] | None) -> Path:
    """`sam build` of a copy of the sources (optionally changed); returns the build directory."""
    dest.mkdir(parents=True)
    for name in SOURCES:
        shutil.copy2(ROOT / name, dest / name)
    for name in SOURCE_DIRS:
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    if change:
        change(dest)
    build = dest / ".aws-sam" / "build"
    _run(
        [SAM, "build", "--template-file", "template.yaml", "--build-dir", str(build)],
        dest,
        env,
    )
    return build


def _deployed(build: Path, work: Path, env: dict[str, str]) -> dict[str, Any]:
    """What `sam deploy` of this build would create: versions, aliases and the layer."""
    work.mkdir(parents=True, exist_ok=True)
    packaged = work / "packaged.yaml"
    _run(
        [
            *(SAM, "package", "--template-file", str(build / "template.yaml")),
            *("--s3-bucket", BUCKET, "--output-template-file", str(packaged)),
        ],
        work,
        env,
    )
    result = subprocess.run(
        [str(SAM_VENV / "bin" / "python"), str(ROOT / "ops" / "sam_transform.py"), str(packaged)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    resources = json.loads(result.stdout)["Resources"]
    versions = {}
    aliases = {}
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::Lambda::Version":
            function = resource["Properties"]["FunctionName"]["Ref"]
            versions[function] = {"LogicalId": logical_id, **resource}
        elif resource["Type"] == "AWS::Lambda::Alias" and resource["Properties"]["Name"] == "live":
            function = resource["Properties"]["FunctionName"]["Ref"]
            aliases[function] = resource["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
    (layer,) = (k for k, r in resources.items() if r["Type"] == "AWS::Lambda::LayerVersion")
    assert set(versions) == set(FUNCTIONS), versions.keys()
    return {"versions": versions, "aliases": aliases, "layer": layer}


def _version_ids(deployed: dict[str, Any]) -> dict[str, str]:
    return {name: v["LogicalId"] for name, v in deployed["versions"].items()}


@pytest.fixture(scope="module")
def base(sam_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The build `make template-check` just made from the repository itself."""
    return _deployed(BUILD, tmp_path_factory.mktemp("base"), sam_env)


@pytest.fixture(scope="module")
def rebuilt(sam_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("rebuilt")
    return _deployed(_build_copy(work / "src", sam_env, None), work, sam_env)


def _fix_in_shared(src: Path) -> None:
    path = src / "shared" / "retry.py"
    path.write_text(path.read_text() + "\n# a fix in shared/ only\n")


def _fix_in_start(src: Path) -> None:
    path = src / "functions" / "start_ai_training" / "app.py"
    path.write_text(path.read_text() + "\n# a fix in start_ai_training only\n")


@pytest.fixture(scope="module")
def shared_fixed(
    sam_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("shared-fixed")
    return _deployed(_build_copy(work / "src", sam_env, _fix_in_shared), work, sam_env)


@pytest.fixture(scope="module")
def start_fixed(
    sam_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("start-fixed")
    return _deployed(_build_copy(work / "src", sam_env, _fix_in_start), work, sam_env)


def test_a_rebuild_without_changes_publishes_nothing(
    base: dict[str, Any], rebuilt: dict[str, Any]
) -> None:
    assert _version_ids(rebuilt) == _version_ids(base)
    assert rebuilt["layer"] == base["layer"], "an unchanged layer must not publish a layer version"


def test_a_change_in_shared_publishes_every_function_and_moves_live(
    base: dict[str, Any], shared_fixed: dict[str, Any]
) -> None:
    REPORT.write_text(
        json.dumps({"before": base, "after_shared_change": shared_fixed}, indent=1, sort_keys=True)
    )
    assert shared_fixed["layer"] != base["layer"]
    before, after = _version_ids(base), _version_ids(shared_fixed)
    for function in FUNCTIONS:
        assert after[function] != before[function], f"{function} would keep its old version"
        assert shared_fixed["aliases"][function] == after[function], f"{function}: live not moved"


def test_a_change_in_one_function_publishes_that_function_only(
    base: dict[str, Any], start_fixed: dict[str, Any]
) -> None:
    before, after = _version_ids(base), _version_ids(start_fixed)
    assert start_fixed["layer"] == base["layer"]
    assert after["StartAiTrainingFunction"] != before["StartAiTrainingFunction"]
    for function in ("UploadTrainingPhotosFunction", "CheckTrainingStatusFunction"):
        assert after[function] == before[function], f"{function} changed without a change"
