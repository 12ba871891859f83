"""What a cold start loads, checked by behaviour in fresh processes, never by a clock:
a handler's import brings no SDK and builds no pydantic schema; a request refused before the
network loads no HTTP client; SnapStart or provisioned concurrency import every path's SDKs
during init; Powertools' event_handler package still works for anyone importing from it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.helpers import SETTINGS_ENV

REPO = Path(__file__).resolve().parents[2]
FUNCTIONS = ("upload_training_photos", "start_ai_training", "check_training_status")
# Loaded only on the paths that use them. pydantic.plugin._loader is imported by the first
# schema build, so its absence means no model was built at import.
LAZY = (
    "httpx",
    "postgrest",
    "storage3",
    "replicate",
    "jwt",
    "cryptography",
    "PIL",
    "pillow_heif",
    "boto3",
    "asyncio",
    "aws_lambda_powertools.event_handler.appsync",
    "pydantic.plugin._loader",
)
# Our own code a function's import leaves for later: another function's models, and the routes
# and branches of a function that its most frequent requests (a training job's status, its
# webhook) never run. Each loads at its first use, or during an init that runs ahead of time.
ON_DEMAND = {
    "upload_training_photos": {
        "shared.contract.start",
        "shared.contract.status",
        "shared.domain.queue",
    },
    "start_ai_training": {
        "shared.contract.upload",
        "shared.contract.status",
        "shared.domain.trainer_logs",
        "shared.plumbing.multipart",
    },
    "check_training_status": {
        "shared.contract.jobs",
        "shared.contract.twins",
        "shared.contract.upload",
        "shared.plumbing.multipart",
        "shared.services.launch",
        "shared.services.listing",
        "shared.services.notices",
        "shared.services.preview_requests",
        "shared.services.previews",
        "shared.services.privacy",
        "shared.services.start",
        "shared.services.sweep",
        "shared.services.twins",
    },
}
PRELOADED = {
    "upload_training_photos": {"jwt", "httpx", "postgrest", "storage3", "PIL"},
    "start_ai_training": {"jwt", "httpx", "postgrest", "storage3", "replicate"},
    "check_training_status": {"jwt", "httpx", "postgrest", "storage3", "replicate"},
}

IMPORT_HANDLER = """
import importlib.util, json, sys
name = sys.argv[1]
spec = importlib.util.spec_from_file_location(name + "_app", f"functions/{name}/app.py")
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
request = json.loads(sys.argv[2])
status = None
if request:
    from devstack.function_urls import LambdaContext, build_event
    event = build_event(request["method"], request["path"], [], b"", "127.0.0.1")
    status = app.handler(event, LambdaContext(name, 30))["statusCode"]
print(json.dumps({"status": status, "loaded": sorted(m for m in json.loads(sys.argv[3]) if m in sys.modules)}))
"""


def run_handler(
    name: str, request: dict[str, str] | None = None, **env: str
) -> tuple[int | None, set[str]]:
    environment = {
        **os.environ,
        **SETTINGS_ENV,
        "PYTHONPATH": str(REPO),
        "POWERTOOLS_LOG_LEVEL": "ERROR",
        **env,
    }
    watched = sorted(set(LAZY) | set().union(*PRELOADED.values()) | ON_DEMAND[name])
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            IMPORT_HANDLER,
            name,
            json.dumps(request or {}),
            json.dumps(watched),
        ],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    return answer["status"], set(answer["loaded"])


@pytest.mark.parametrize("name", FUNCTIONS)
def test_importing_a_handler_loads_no_sdk_and_builds_no_schema(name: str) -> None:
    _, loaded = run_handler(name, AWS_LAMBDA_INITIALIZATION_TYPE="on-demand")
    assert loaded == set(), f"{name} imports {sorted(loaded)} before any request needs them"


# Every `from shared... import` inside a function of the handler or of a use case it loaded.
LATE_IMPORTS = """
import ast, importlib.util, json, sys
name = sys.argv[1]
spec = importlib.util.spec_from_file_location(name + "_app", f"functions/{name}/app.py")
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
files = [app.__file__] + [
    m.__file__ for n, m in list(sys.modules.items()) if n.startswith("shared.services.")
]
late = set()
for path in files:
    tree = ast.parse(open(path).read())
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and id(node) not in top and node.module:
            if node.module.startswith("shared."):
                late.add(node.module)
print(json.dumps({"late": sorted(late), "missing": sorted(late - set(sys.modules))}))
"""


# Imported late inside a module this function shares with another, on a path it never runs:
# photos are decoded by the upload function only (the twin routes use intake's other parts).
NOT_ON_ITS_PATHS = {"check_training_status": ["shared.photos.normalise"]}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_init_ahead_of_time_leaves_none_of_our_code_for_the_first_request(name: str) -> None:
    environment = {**os.environ, **SETTINGS_ENV, "PYTHONPATH": str(REPO)}
    environment["AWS_LAMBDA_INITIALIZATION_TYPE"] = "snap-start"
    result = subprocess.run(
        [sys.executable, "-c", LATE_IMPORTS, name],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    missing = [m for m in answer["missing"] if m not in NOT_ON_ITS_PATHS.get(name, [])]
    assert missing == [], f"{name}: preload {missing} in its warmup list"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_a_request_refused_before_the_network_loads_no_http_client(name: str) -> None:
    # No Authorization header: 401 from the token check, which never needed Supabase or PyJWT.
    path = "/?jobId=4b0ed6a5-8f5e-4a49-a2a4-3a0b0ed6a5f1"
    method = "GET" if name == "check_training_status" else "POST"
    status, loaded = run_handler(name, {"method": method, "path": path})
    assert status == 401
    assert not loaded & {"httpx", "postgrest", "storage3", "replicate", "jwt", "PIL"}, loaded


@pytest.mark.parametrize("init_type", ["snap-start", "provisioned-concurrency"])
@pytest.mark.parametrize("name", FUNCTIONS)
def test_init_ahead_of_time_imports_every_path_sdk(name: str, init_type: str) -> None:
    _, loaded = run_handler(name, AWS_LAMBDA_INITIALIZATION_TYPE=init_type)
    assert PRELOADED[name] <= loaded, f"missing {sorted(PRELOADED[name] - loaded)}"
    assert "pydantic.plugin._loader" in loaded  # the models were built during init too


def test_powertools_event_handler_package_still_exports_everything() -> None:
    script = """
import sys
import shared.api.app  # registers the packages without running their __init__
assert "aws_lambda_powertools.event_handler.appsync" not in sys.modules
assert "aws_lambda_powertools.utilities.data_classes.kinesis_firehose_event" not in sys.modules
from aws_lambda_powertools.utilities.data_classes import LambdaFunctionUrlEvent, S3Event
from aws_lambda_powertools.utilities.data_classes.lambda_function_url_event import (
    LambdaFunctionUrlEvent as FromItsModule,
)
assert LambdaFunctionUrlEvent is FromItsModule
assert S3Event.__module__ == "aws_lambda_powertools.utilities.data_classes.s3_event"
import aws_lambda_powertools.event_handler as package
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, AppSyncResolver, content_types
from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver
assert package.LambdaFunctionUrlResolver is shared.api.function_url_resolver.LambdaFunctionUrlResolver
assert content_types.APPLICATION_JSON == "application/json"
assert AppSyncResolver.__module__ == "aws_lambda_powertools.event_handler.appsync"
try:
    package.NoSuchName
except AttributeError:
    pass
else:
    raise AssertionError("a missing name must raise AttributeError")
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_each_adapter_is_built_with_its_module_at_its_ports_first_call() -> None:
    script = """
import sys
from shared import bootstrap
deps = bootstrap.deps()
built = [m for m in sys.modules if m.startswith("shared.adapters.")]
assert built == [], built
deps.jobs.get  # the job store's first use: no call, no network
assert "shared.adapters.postgrest_jobs" in sys.modules
assert "shared.adapters.replicate" not in sys.modules
assert "shared.adapters.postgrest_previews" not in sys.modules
assert deps.jobs.get.__self__ is deps.jobs.get.__self__  # built once
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={**os.environ, **SETTINGS_ENV, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_powertools_imported_first_is_left_as_it_is() -> None:
    script = """
import aws_lambda_powertools.event_handler as package
import shared.api.app
assert package.LambdaFunctionUrlResolver is shared.api.function_url_resolver.LambdaFunctionUrlResolver
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_every_client_shares_one_tls_context(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each TLS context loads the whole CA bundle; a start path builds three clients.
    from shared import bootstrap

    for key, value in SETTINGS_ENV.items():
        monkeypatch.setenv(key, value)
    bootstrap.reset()
    try:
        https = [
            bootstrap.postgrest_client().session,
            bootstrap.storage_client()._client,
            bootstrap.storage_stream_http(),
            bootstrap.replicate_client()._client,
        ]
        contexts = {id(http._transport._pool._ssl_context) for http in https}
        assert contexts == {id(bootstrap.tls_context())}
    finally:
        bootstrap.reset()
