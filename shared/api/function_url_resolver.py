"""Powertools' `LambdaFunctionUrlResolver`, imported without running `event_handler/__init__.py`.

That `__init__` imports every resolver Powertools has (AppSync pulls in asyncio, then Bedrock,
VPC Lattice, ...): about 20 ms of each cold start for code a Function URL never runs (bench
cold_start). The package is registered without its `__init__`; only the modules behind the
Function URL resolver are imported. Should anything later ask the package for one of the names
its `__init__` exports, that `__init__` runs then, once, so every import of Powertools still works.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType
from typing import Any

_PACKAGE = "aws_lambda_powertools.event_handler"


def _register_package_without_init() -> None:
    if _PACKAGE in sys.modules:
        return
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        raise ImportError(f"{_PACKAGE} is not an importable package")
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader
    ran_init = False

    def __getattr__(name: str) -> Any:
        nonlocal ran_init
        # `from package import submodule` asks the package first: a submodule is just imported.
        if importlib.util.find_spec(f"{_PACKAGE}.{name}") is not None:
            return importlib.import_module(f"{_PACKAGE}.{name}")
        if ran_init:
            raise AttributeError(f"module {_PACKAGE!r} has no attribute {name!r}")
        ran_init = True
        loader.exec_module(package)
        return getattr(package, name)

    package.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules[_PACKAGE] = package
    parent: ModuleType = importlib.import_module("aws_lambda_powertools")
    parent.event_handler = package  # type: ignore[attr-defined]


_register_package_without_init()

# ruff: noqa: E402  (these imports need the registration above)
from aws_lambda_powertools.event_handler import content_types
from aws_lambda_powertools.event_handler.api_gateway import Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.lambda_function_url import LambdaFunctionUrlResolver

__all__ = ["LambdaFunctionUrlResolver", "NotFoundError", "Response", "content_types"]
