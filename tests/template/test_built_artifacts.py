"""The `sam build` output, checked the way Lambda will use it.

Run by `make template-check` after `sam build` (ci/template.mk); skipped when there is no build.

Each handler is imported in a fresh Python 3.12 (Lambda's runtime) with an empty environment and a
`sys.path` of only the built function directory, the layer's `python/` and the standard library:
no repository root, no site-packages. So a module missing from the function or the layer, a
`shared` module left out of the layer, or a handler that needs settings at import time fails here
and not at the first cold start.

The layer is built for arm64 and its native wheels (pydantic_core, pillow, pillow_heif,
cryptography, ...) cannot be loaded on an x86_64 host. On such a host `template-check` builds a
host-native twin of the layer with the same shared/Makefile, the same pins and the same sources,
only the wheel platform differs (LAYER_ARCH), and the import runs against that twin. The tests
below make the substitution honest: the twin must hold exactly the same distributions at the same
versions and the same `shared` files as the real layer, and every native library in the real layer
must be an aarch64 ELF. On an aarch64 host the real layer is imported directly.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / ".aws-sam" / "build"
TWIN = ROOT / ".aws-sam" / "import-check" / "SharedLayer" / "python"
LAYER = BUILD / "SharedLayer" / "python"

# Logical id in template.yaml -> source directory under functions/.
FUNCTIONS = {
    "UploadTrainingPhotosFunction": "upload_training_photos",
    "StartAiTrainingFunction": "start_ai_training",
    "CheckTrainingStatusFunction": "check_training_status",
}

EM_AARCH64 = 183  # ELF e_machine of arm64

pytestmark = pytest.mark.skipif(
    not BUILD.is_dir(), reason="no .aws-sam/build: run `make template-check` (sam build) first"
)


def _lambda_python() -> str | None:
    """A CPython 3.12 to import with, like Lambda's python3.12 runtime."""
    candidates = [os.environ.get("TEMPLATE_LAMBDA_PYTHON", "")]
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    candidates.append(str(Path(pyenv_root) / "versions" / "3.12.1" / "bin" / "python3.12"))
    candidates.append(shutil.which("python3.12") or "")
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _import_layer() -> Path:
    """The layer directory the handlers can be imported with on this host."""
    return LAYER if platform.machine() == "aarch64" else TWIN


def _dists(python_dir: Path) -> set[str]:
    """`name-version` of every distribution installed in a layer's python/ directory."""
    return {p.name.removesuffix(".dist-info").lower() for p in python_dir.glob("*.dist-info")}


def _files(root: Path) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def _pins() -> dict[str, str]:
    """Exact pins of requirements.txt, names normalised the way wheels spell them."""
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==([^\s;]+)", line)
        assert match, f"requirements.txt line is not an exact pin: {line!r}"
        pins[re.sub(r"[-_.]+", "_", match.group(1)).lower()] = match.group(2)
    return pins


def test_layer_holds_the_shared_package_and_nothing_from_the_build() -> None:
    package = LAYER / "shared"
    assert (package / "__init__.py").is_file()
    sources = {
        str(p.relative_to(ROOT / "shared"))
        for p in (ROOT / "shared").rglob("*.py")
        if "tests" not in p.parts and "__pycache__" not in p.parts
    }
    shipped = {str(p.relative_to(package)) for p in package.rglob("*.py")}
    assert sources == shipped, "the layer's shared/ differs from the repository's shared/"
    assert not (package / "Makefile").exists()
    assert not (LAYER / "bin").exists(), "console scripts should not be in the layer"


def test_layer_has_every_pinned_requirement_at_its_pin() -> None:
    installed = {}
    for dist in _dists(LAYER):
        name, _, version = dist.rpartition("-")
        installed[re.sub(r"[-_.]+", "_", name)] = version
    for name, version in _pins().items():
        assert installed.get(name) == version, (
            f"{name}: layer has {installed.get(name)}, pin {version}"
        )


def test_layer_native_code_is_arm64() -> None:
    native = [p for p in LAYER.rglob("*.so*") if p.is_file()]
    assert native, "expected native extensions (pydantic_core, pillow, cryptography)"
    wrong = []
    for path in native:
        header = path.read_bytes()[:20]
        if header[:4] != b"\x7fELF":
            continue
        machine = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
        if machine != EM_AARCH64:
            wrong.append(f"{path.relative_to(LAYER)} (e_machine {machine})")
    assert not wrong, "non-arm64 native code in the arm64 layer: " + ", ".join(wrong)


def test_layer_bytecode_is_precompiled_and_never_stale() -> None:
    # /opt is read-only in Lambda: a module without usable bytecode is compiled at every cold start.
    # Flags 0b01 in a .pyc header = hash-based and unchecked (PEP 552): valid whatever the mtimes.
    missing, checked = [], []
    for source in sorted((LAYER / "shared").rglob("*.py")):
        pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-312.pyc"
        if not pyc.is_file():
            missing.append(str(source.relative_to(LAYER)))
            continue
        flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
        if flags != 0b01:
            checked.append(str(pyc.relative_to(LAYER)))
    assert not missing, f"no bytecode for {missing}"
    assert not checked, f"bytecode that Lambda would re-validate: {checked}"


def test_functions_ship_only_their_handler() -> None:
    for logical_id in FUNCTIONS:
        built = BUILD / logical_id
        assert (built / "app.py").is_file(), f"{logical_id}: app.py missing from the build"
        assert not (built / "shared").exists(), f"{logical_id}: shared/ belongs in the layer"


def test_import_twin_matches_the_real_layer() -> None:
    layer = _import_layer()
    if layer == LAYER:
        pytest.skip("aarch64 host: the real layer is imported directly")
    if not layer.is_dir():
        pytest.skip("no host-native twin of the layer: `make template-check` builds it")
    assert _dists(layer) == _dists(LAYER), "the twin's distributions differ from the real layer's"
    assert _files(layer / "shared") == _files(LAYER / "shared")


PROBE = r"""
import json, os, sys
fn_dir, layer_dir = sys.argv[1], sys.argv[2]
stdlib = [p for p in sys.path if p]
sys.path[:] = [fn_dir, layer_dir, *stdlib]
import app
assert callable(getattr(app, "handler", None)), "app.handler is missing or not callable"
import shared
allowed = tuple(os.path.realpath(p) for p in (fn_dir, layer_dir, *stdlib))
outside = sorted(
    name for name, module in list(sys.modules.items())
    if getattr(module, "__file__", None)
    and not os.path.realpath(module.__file__).startswith(allowed)
)
print(json.dumps({"shared": shared.__file__, "outside": outside, "modules": len(sys.modules)}))
"""


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_handler_imports_like_lambda(logical_id: str, tmp_path: Path) -> None:
    python = _lambda_python()
    if python is None:
        pytest.skip("no Python 3.12 interpreter (TEMPLATE_LAMBDA_PYTHON) to import with")
    layer = _import_layer()
    if not layer.is_dir():
        pytest.skip(f"no {layer.relative_to(ROOT)}: `make template-check` builds it")
    function_dir = BUILD / logical_id
    # -I: ignore PYTHON* variables, user site and the current directory; -S: no site-packages.
    # The environment is empty: settings must not be needed until the first request.
    result = subprocess.run(
        [python, "-I", "-S", "-B", "-c", PROBE, str(function_dir), str(layer)],
        cwd=tmp_path,
        env={"LANG": "C.UTF-8"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"importing {logical_id}/app.py failed:\n{result.stderr}"
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(report["shared"]).resolve().is_relative_to(layer.resolve())
    assert report["outside"] == [], f"modules loaded from outside the bundle: {report['outside']}"


def test_probe_runs_with_a_real_3_12() -> None:
    python = _lambda_python()
    if python is None:
        pytest.skip("no Python 3.12 interpreter")
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version == "(3, 12)", f"{python} is not Python 3.12 ({version})"
