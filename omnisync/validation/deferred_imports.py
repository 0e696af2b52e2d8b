"""GX's imports that omnisync's suites never use, loaded on first use instead of at start-up."""

from __future__ import annotations

from typing import Any

#: modules GX imports for expectations and data sources omnisync's suites never use (KL
#: divergence and its charts, JSON schemas, S3 batches): a good part of every run's start
#: (docs/performance.md), and boto3's clients. They load on first use instead.
_DEFERRED = ("scipy.stats", "altair", "jsonschema", "boto3")


def defer_unused_imports() -> None:
    """Put load-on-first-use modules in ``sys.modules`` for :data:`_DEFERRED` (stdlib
    ``LazyLoader``). Python 3.11's import statement reads ``__spec__`` of a module it finds in
    ``sys.modules``, which would load it at once: that one attribute is answered without loading,
    and a submodule is also set on its package so that ``from package import name`` finds it."""
    import importlib.util
    import sys
    import types

    class Deferred(importlib.util._LazyModule):  # type: ignore[name-defined,misc]
        def __getattribute__(self, attr: str) -> Any:
            if attr == "__spec__":
                return types.ModuleType.__getattribute__(self, "__dict__")["__spec__"]
            return super().__getattribute__(attr)

    for name in _DEFERRED:
        if name in sys.modules:
            continue
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            continue
        loader = importlib.util.LazyLoader(spec.loader)
        spec.loader = loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        loader.exec_module(module)
        module.__class__ = Deferred
        package, _, child = name.rpartition(".")
        if package:
            setattr(sys.modules[package], child, module)
