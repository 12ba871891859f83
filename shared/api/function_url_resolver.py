"""Powertools' `LambdaFunctionUrlResolver`, imported without running two package `__init__`s.

`aws_lambda_powertools.event_handler/__init__` imports every resolver Powertools has (AppSync pulls
in asyncio, then Bedrock, VPC Lattice, ...), and `utilities.data_classes/__init__` imports every
event class (Kinesis, S3 batch, CodePipeline with zipfile and tempfile, ...): together about 30 ms
of each cold start for code a Function URL never runs (bench cold_start). Each package is
registered without its `__init__`. A name the resolver imports from the package comes from the
submodule the `__init__` itself takes it from (read from its source, not run); a submodule is just
imported. Should anything ask the package for a name of its `__init__` otherwise, the `__init__`
runs then, once, so every import of Powertools still works.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

_PACKAGES = ("aws_lambda_powertools.event_handler", "aws_lambda_powertools.utilities.data_classes")


def _reexports(init_file: str) -> dict[str, str]:
    """`from .module import Name` in a package's `__init__`: Name -> module."""
    tree = ast.parse(Path(init_file).read_text(encoding="utf-8"))
    return {
        alias.asname or alias.name: node.module
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module
        for alias in node.names
    }


def _register_package_without_init(name: str) -> None:
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        raise ImportError(f"{name} is not an importable package")
    assert spec.origin is not None
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader
    origin = spec.origin
    reexports: dict[str, str] | None = None  # read at the first name asked for
    ran_init = False

    def __getattr__(attribute: str) -> Any:
        nonlocal ran_init, reexports
        # `from package import submodule` asks the package first: a submodule is just imported.
        if importlib.util.find_spec(f"{name}.{attribute}") is not None:
            return importlib.import_module(f"{name}.{attribute}")
        if reexports is None:
            reexports = _reexports(origin)
        if not ran_init and attribute in reexports:
            module = importlib.import_module(f"{name}.{reexports[attribute]}")
            return getattr(module, attribute)
        if ran_init:
            raise AttributeError(f"module {name!r} has no attribute {attribute!r}")
        ran_init = True
        loader.exec_module(package)
        return getattr(package, attribute)

    package.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules[name] = package
    parent_name, _, child = name.rpartition(".")
    parent: ModuleType = importlib.import_module(parent_name)
    setattr(parent, child, package)


for _package in _PACKAGES:
    _register_package_without_init(_package)

# ruff: noqa: E402  (these imports need the registration above)
from aws_lambda_powertools.event_handler import content_types
from aws_lambda_powertools.event_handler.api_gateway import Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.lambda_function_url import LambdaFunctionUrlResolver

__all__ = ["LambdaFunctionUrlResolver", "NotFoundError", "Response", "content_types"]
