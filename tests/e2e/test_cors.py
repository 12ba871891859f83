"""CORS on the local stack as in AWS and Supabase: the Function URLs answer with template.yaml's
`FunctionUrlConfig.Cors` (origins from `AllowedOrigins`, overridden locally), and the Supabase
gateway with Kong's default cors plugin, for the browser's signed PUT and GET included."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from devstack.function_urls import UrlCors, template_cors
from devstack.sample_photos import make_photo
from devstack.stack import DEV_ORIGINS, LocalStack, local_allowed_origins
from devstack.tokens import service_role_key
from supabase import create_client
from tests.e2e.conftest import User

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
REFUSED = "https://evil.example"
BUCKET = "training-photos"
STATUS = "check_training_status"
KONG_DEFAULT_METHODS = "GET,HEAD,PUT,PATCH,POST,DELETE,OPTIONS,TRACE,CONNECT"


class _AnyTag(yaml.SafeLoader):
    """Reads template.yaml on its own (not through devstack's parser): `!Ref X` becomes {"Ref": X}."""


_AnyTag.add_multi_constructor(
    "!", lambda loader, tag, node: {tag: loader.construct_scalar(node)} if tag == "Ref" else None
)


def template_url_cors() -> dict[str, dict[str, Any]]:
    """Each function's FunctionUrlConfig.Cors exactly as template.yaml writes it."""
    template = yaml.load(TEMPLATE.read_text(), Loader=_AnyTag)
    out = {}
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        cors = (props.get("FunctionUrlConfig") or {}).get("Cors")
        if resource["Type"] == "AWS::Serverless::Function" and cors:
            out[Path(props["CodeUri"]).name] = cors
    return out


FUNCTION_CORS = template_url_cors()


def preflight(
    http: httpx.Client, url: str, origin: str, method: str = "POST", headers: str | None = None
) -> httpx.Response:
    request_headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        request_headers["Access-Control-Request-Headers"] = headers
    return http.options(url, headers=request_headers)


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {
        k.lower(): v for k, v in response.headers.items() if k.lower().startswith("access-control-")
    }


def test_the_template_configures_cors_on_every_function_from_the_allowed_origins_parameter() -> (
    None
):
    assert set(FUNCTION_CORS) == {
        "upload_training_photos",
        "start_ai_training",
        "check_training_status",
    }
    for cors in FUNCTION_CORS.values():
        assert cors["AllowOrigins"] == {"Ref": "AllowedOrigins"}


@pytest.mark.parametrize("function", sorted(FUNCTION_CORS))
@pytest.mark.parametrize("origin", ["playground", *DEV_ORIGINS])
def test_preflight_from_an_allowed_origin_is_answered_by_the_url_with_the_templates_values(
    stack: LocalStack, http: httpx.Client, function: str, origin: str
) -> None:
    assert stack.playground is not None
    origin = stack.playground.origin if origin == "playground" else origin
    cors = FUNCTION_CORS[function]
    response = preflight(
        http, stack.url(function), origin, cors["AllowMethods"][0], "authorization,content-type"
    )

    assert response.status_code == 200
    assert response.content == b""  # the handler would have answered an OPTIONS with JSON
    assert response.headers["vary"] == "Origin"
    assert cors_headers(response) == {
        "access-control-allow-origin": origin,
        "access-control-allow-methods": ",".join(cors["AllowMethods"]),
        "access-control-allow-headers": ",".join(cors["AllowHeaders"]),
        "access-control-max-age": str(cors["MaxAge"]),
    }


@pytest.mark.parametrize("function", sorted(FUNCTION_CORS))
@pytest.mark.parametrize("origin", [REFUSED, "https://flurrty.me", "http://localhost:5174"])
def test_preflight_from_a_refused_origin_gets_no_cors_headers(
    stack: LocalStack, http: httpx.Client, function: str, origin: str
) -> None:
    response = preflight(http, stack.url(function), origin, "POST", "authorization")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["vary"] == "Origin"
    assert cors_headers(response) == {}


def test_actual_responses_carry_the_allowed_origin_and_only_it(
    stack: LocalStack, http: httpx.Client, user: User
) -> None:
    assert stack.playground is not None
    allowed = stack.playground.origin
    url = stack.url("check_training_status")
    job = str(uuid.uuid4())

    ok = http.get(url, params={"jobId": job}, headers={**user.headers, "Origin": allowed})
    assert ok.status_code == 404  # the function ran: an unknown job
    assert ok.json()["error"]["code"] == "job_not_found"
    assert cors_headers(ok) == {
        "access-control-allow-origin": allowed,
        "access-control-expose-headers": ",".join(FUNCTION_CORS[STATUS]["ExposeHeaders"]),
    }
    assert "Origin" in ok.headers["vary"]

    unauthenticated = http.post(
        stack.url("start_ai_training"), json={"jobId": job}, headers={"Origin": allowed}
    )
    assert unauthenticated.status_code == 401
    assert cors_headers(unauthenticated) == {"access-control-allow-origin": allowed}

    refused = http.get(url, params={"jobId": job}, headers={**user.headers, "Origin": REFUSED})
    assert refused.status_code == 404  # a server-side client is not stopped; a browser would be
    assert cors_headers(refused) == {}
    assert refused.headers["vary"] == "Origin"

    no_origin = http.get(url, params={"jobId": job}, headers=user.headers)
    assert cors_headers(no_origin) == {}


def test_an_options_request_that_is_no_preflight_reaches_the_function(
    stack: LocalStack, http: httpx.Client
) -> None:
    response = http.options(stack.url("check_training_status"), headers={"Origin": DEV_ORIGINS[0]})
    assert (
        response.content
    )  # the handler's own answer (a JSON error), not the URL's empty preflight
    assert cors_headers(response)["access-control-allow-origin"] == DEV_ORIGINS[0]


def test_template_cors_reads_the_template_and_takes_the_local_origins_as_a_parameter_override() -> (
    None
):
    deployed = template_cors()
    local = template_cors({"AllowedOrigins": ["http://127.0.0.1:1234"]})
    for name, cors in FUNCTION_CORS.items():
        expected = UrlCors(
            allow_origins=(
                "https://flurrty.me",
                "https://www.flurrty.me",
            ),  # the parameter's default
            allow_methods=tuple(cors["AllowMethods"]),
            allow_headers=tuple(cors["AllowHeaders"]),
            expose_headers=tuple(cors.get("ExposeHeaders", ())),
            max_age=cors["MaxAge"],
        )
        assert deployed[name] == expected
        assert local[name].allow_origins == ("http://127.0.0.1:1234",)
        assert local[name].allow_methods == expected.allow_methods


def test_the_local_origins_are_the_playground_and_allowed_origins_when_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ALLOWED_ORIGINS", raising=False)
    assert local_allowed_origins("http://127.0.0.1:9") == ["http://127.0.0.1:9", *DEV_ORIGINS]
    monkeypatch.setenv("ALLOWED_ORIGINS", " https://app.example , http://localhost:3000,")
    assert local_allowed_origins("http://127.0.0.1:9") == [
        "http://127.0.0.1:9",
        "https://app.example",
        "http://localhost:3000",
    ]
    monkeypatch.setenv("ALLOWED_ORIGINS", "")
    assert local_allowed_origins("http://127.0.0.1:9") == ["http://127.0.0.1:9"]


# --------------------------------------------------------------------------- Supabase gateway


@pytest.fixture
def photo_jpeg() -> bytes:
    return make_photo(640, 640, seed=4242)


@pytest.fixture
def signed_upload(stack: LocalStack, user: User) -> dict[str, str]:
    """A signed upload URL for one path in the user's folder, as the upload function issues."""
    client = create_client(stack.supabase_url, service_role_key(stack.jwt_secret))
    path = f"{user.id}/{uuid.uuid4()}/upload/01"
    signed = client.storage.from_(BUCKET).create_signed_upload_url(path)
    return {"path": path, "url": signed["signed_url"]}


def test_storage_preflight_for_the_signed_put_is_kongs_default_answer(
    stack: LocalStack, http: httpx.Client, signed_upload: dict[str, str]
) -> None:
    response = preflight(http, signed_upload["url"], REFUSED, "PUT", "content-type,x-upsert")
    assert response.status_code == 200
    assert response.content == b""
    assert cors_headers(response) == {
        "access-control-allow-origin": "*",
        "access-control-allow-headers": "content-type,x-upsert",
        "access-control-allow-methods": KONG_DEFAULT_METHODS,
    }
    assert "vary" not in response.headers  # Kong adds none for the wildcard origin


def test_the_browsers_signed_put_and_signed_get_are_readable_cross_origin(
    stack: LocalStack, http: httpx.Client, signed_upload: dict[str, str], photo_jpeg: bytes
) -> None:
    origin = DEV_ORIGINS[0]
    put = http.put(
        signed_upload["url"],
        content=photo_jpeg,
        headers={"Content-Type": "image/jpeg", "Origin": origin},
    )
    assert put.status_code == 200, put.text
    assert cors_headers(put) == {"access-control-allow-origin": "*"}

    client = create_client(stack.supabase_url, service_role_key(stack.jwt_secret))
    url = str(
        client.storage.from_(BUCKET).create_signed_url(signed_upload["path"], 60)["signedURL"]
    )
    get = http.get(url, headers={"Origin": origin})
    assert get.status_code == 200 and get.content == photo_jpeg
    assert cors_headers(get) == {"access-control-allow-origin": "*"}

    # A Storage error is readable too (Kong's header filter runs on every response).
    missing = http.get(url.replace("/upload/01", "/upload/99"), headers={"Origin": origin})
    assert missing.status_code == 400
    assert cors_headers(missing) == {"access-control-allow-origin": "*"}

    # Without an Origin (not a browser) Kong adds nothing.
    assert cors_headers(http.get(url)) == {}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/auth/v1/signup"),
        ("POST", "/auth/v1/token?grant_type=password"),
        ("GET", "/rest/v1/ai_training_jobs"),
    ],
)
def test_auth_and_rest_answer_preflights_before_the_apikey_check_and_cors_every_refusal(
    stack: LocalStack, http: httpx.Client, method: str, path: str
) -> None:
    url = stack.supabase_url + path
    response = preflight(
        http, url, DEV_ORIGINS[1], method, "apikey,content-type,x-supabase-api-version"
    )
    assert response.status_code == 200
    assert cors_headers(response)["access-control-allow-origin"] == "*"
    assert (
        cors_headers(response)["access-control-allow-headers"]
        == "apikey,content-type,x-supabase-api-version"
    )

    refused = http.request(method, url, headers={"Origin": DEV_ORIGINS[1]})
    assert refused.status_code == 401
    assert refused.json() == {"message": "No API key found in request"}
    assert cors_headers(refused) == {"access-control-allow-origin": "*"}
