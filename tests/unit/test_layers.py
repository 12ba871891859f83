"""The layers of `shared/` and who may import whom (docs/architecture.md), checked on the source.

Every `import` and `from ... import` counts, at module level and inside functions (the lazy ones
included: a layer may not reach across the rules just because it does so late). The table below
is the one in docs/architecture.md; change both together.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# layer -> the layers (or single modules) it may import from `shared`
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    # The rules read their parameters (claim timeout, price, expected duration) from the frozen
    # settings value; nothing else of the plumbing.
    "domain": {"errors", "domain", "photos.rules", "plumbing.settings"},
    "photos": {"errors", "photos"},
    "contract": {"errors", "domain", "photos.rules", "contract"},
    "ports": {"errors", "domain"},
    "plumbing": {"errors", "domain", "plumbing"},
    "services": {"errors", "domain", "photos", "contract", "ports", "plumbing", "services"},
    "adapters": {"errors", "domain", "ports", "plumbing", "adapters"},
    "bootstrap": {"errors", "domain", "ports", "plumbing", "adapters", "services.deps"},
    "api": {"errors", "domain", "contract", "plumbing", "api"},
    "handlers": {"errors", "domain", "contract", "plumbing", "services", "api", "bootstrap"},
}
# Third-party clients of the outside world: only adapters import them (and the composition root,
# which builds the clients the adapters use).
SDKS = {"postgrest", "storage3", "supabase", "replicate", "boto3", "botocore"}
SDK_OWNERS = {"adapters", "bootstrap"}
# Imported at first use, never when a module loads (cold start; tests/unit/test_cold_import.py
# checks the behaviour). The one exception is the decoder, itself imported at the first photo.
LAZY = SDKS | {"httpx", "jwt", "PIL", "pillow_heif"}
EAGER_OK = {("shared.photos.normalise", "PIL")}


def layer_of(module: str) -> str:
    if module.startswith("functions."):
        return "handlers"
    parts = module.split(".")
    assert parts[0] == "shared", module
    if len(parts) == 1:
        return "package"
    return {"errors": "errors", "contract": "contract", "ports": "ports"}.get(parts[1], parts[1])


def allows(layer: str, target: str) -> bool:
    """Whether `layer` may import the `shared` module `target` (dotted, without `shared.`)."""
    return any(target == rule or target.startswith(rule + ".") for rule in ALLOWED[layer])


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted((REPO / "shared").rglob("*.py")):
        yield ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"), path
    for path in sorted((REPO / "functions").glob("*/app.py")):
        yield f"functions.{path.parent.name}", path


def imports(module: str, path: Path) -> Iterator[tuple[str, bool, int]]:
    """(imported module, run when the module loads, line) for every import in the file; those
    under `if TYPE_CHECKING:` never run, but they are still a dependency on that layer."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, id(node) in top, node.lineno
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{module}:{node.lineno}: use absolute imports"
            base = node.module or ""
            if base == "shared":  # `from shared import bootstrap`: the names are modules
                for alias in node.names:
                    yield f"shared.{alias.name}", id(node) in top, node.lineno
            else:
                yield base, id(node) in top, node.lineno


def violations(sources: Iterator[tuple[str, Path]]) -> list[str]:
    found = []
    for module, path in sources:
        layer = layer_of(module)
        for imported, at_top, line in imports(module, path):
            root = imported.split(".")[0]
            where = (
                f"{path.name if not path.is_relative_to(REPO) else path.relative_to(REPO)}:{line}"
            )
            if root == "shared" and imported != "shared":
                target = imported.removeprefix("shared.")
                if layer != "package" and not allows(layer, target):
                    found.append(f"{where}: {layer} may not import shared.{target}")
            if root in SDKS and layer not in SDK_OWNERS:
                found.append(f"{where}: only adapters import {root} ({module} is {layer})")
            if root in LAZY and at_top and (module, root) not in EAGER_OK:
                found.append(f"{where}: {root} is imported at module level in {module}")
    return found


def test_every_import_follows_the_layer_rules() -> None:
    assert violations(modules()) == []


def test_every_module_belongs_to_a_known_layer() -> None:
    unknown = {m for m, _ in modules() if layer_of(m) not in ALLOWED and m != "shared"}
    assert unknown == set()


def test_only_adapters_call_supabase_auth() -> None:
    callers = [
        str(path.relative_to(REPO))
        for module, path in modules()
        if "/auth/v1/admin" in path.read_text() and layer_of(module) != "adapters"
    ]
    assert callers == []


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("shared.domain.job", "from shared.services.deps import Deps", "domain may not import"),
        ("shared.services.start", "from shared.adapters.replicate import X", "services may not"),
        ("shared.api.app", "def f():\n    from shared.bootstrap import deps", "api may not import"),
        ("shared.services.status", "def f():\n    import replicate", "only adapters import"),
        ("shared.adapters.replicate", "import replicate", "imported at module level"),
        ("functions.x", "from shared.adapters.replicate import X", "handlers may not import"),
    ],
)
def test_the_checker_catches_a_wrong_import(
    tmp_path: Path, module: str, source: str, expected: str
) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(source + "\n")
    found = violations(iter([(module, bad)]))
    assert any(expected in v for v in found), found
