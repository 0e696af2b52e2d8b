"""Importing GX at the least cost: what it imports and never uses loads on first use, and its
pydantic models are built without deep-copying their bases' fields."""

from __future__ import annotations

import copy
import importlib
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from omnisync.lasting_imports import lasting_imports

#: modules GX imports for expectations and data sources omnisync's suites never use (KL
#: divergence and its charts, JSON schemas, S3 batches): a good part of every run's start
#: (docs/performance.md), and boto3's clients. They load on first use instead.
_DEFERRED = ("scipy.stats", "altair", "jsonschema", "boto3")


#: the name of the thread importing GX
IMPORT_THREAD = "omnisync-gx-import"
#: set by the thread importing GX when it ends, while one runs: a caller stopped while it waited
#: (Ctrl-C) leaves it running, and the next caller waits for it instead of taking GX half made.
#: An event, not ``Thread.join``: Python 3.11 marks a thread stopped when a join is interrupted.
_importing: threading.Event | None = None
_failed: list[BaseException] = []


def import_gx() -> ModuleType:
    """``great_expectations``, imported with :func:`defer_unused_imports` and
    :func:`_fields_copied_shallowly` (by :func:`start_import`, or now), once it is. Callers hold
    one lock around it: both change state shared by every thread for the length of the import.
    A failed import is raised to its caller, and tried again by the next."""
    importing = start_import()
    if importing is None:
        return sys.modules["great_expectations"]
    importing.wait()
    global _importing
    _importing = None
    if _failed:
        raise _failed[0]
    return sys.modules["great_expectations"]


def start_import() -> threading.Event | None:
    """Start importing GX on a thread of its own, unless it is imported or being imported, and
    return at once: the event set when it ends (None: GX was imported already). The caller holds
    :func:`import_gx`'s lock, and no other thread may import anything GX imports until the event
    is set: two threads importing one package's modules can each wait for the other's, and Python
    then hands one of them the module half made (tests/validation/test_gx_overlap.py).

    The import runs under :func:`~omnisync.lasting_imports.lasting_imports`, once per process:
    a long-lived one (a Prefect or Dask worker) freezes once, keeping what its first run had alive
    then (its client, its engine) out of the cycle collector's passes, and nothing after. Not from
    a module's own import of a module GX imports: its thread would wait for that module's import,
    which waits for it (Python's import-deadlock check cannot see a thread)."""
    global _importing
    if _importing is not None and not (_importing.is_set() and _failed):
        return _importing
    # (an import that failed, its failure raised to nobody, is tried again, not raised again)
    _importing = None
    if "great_expectations" in sys.modules:  # imported before, by omnisync or not
        return None
    defer_unused_imports()
    _failed.clear()
    # On a thread of its own, so that its frames start at the same depth whoever calls it:
    # the command line, a Prefect task or a Dask worker. Python 3.11 keeps frames in 16 KiB
    # chunks and maps and unmaps a chunk each time the stack crosses into it and back; the
    # import's hundreds of nested class definitions crossed a boundary about 27,000 times
    # under the command line's frames, against about 4,200 on a fresh thread: 0.1-0.15
    # CPU-s of a run (docs/performance.md).
    _importing = threading.Event()
    thread = threading.Thread(target=_import, args=(_importing,), name=IMPORT_THREAD, daemon=True)
    thread.start()
    return _importing


def _import(done: threading.Event) -> None:
    try:
        with lasting_imports(), _fields_copied_shallowly():
            importlib.import_module("great_expectations")
    except BaseException as exc:  # handed to the caller's thread, which raises it
        _failed.append(exc)
    finally:
        done.set()


@contextmanager
def _fields_copied_shallowly() -> Iterator[None]:
    """While GX's several hundred pydantic v1 models are defined, a model copies its bases'
    fields with :func:`_field_copy` instead of ``copy.deepcopy``.

    pydantic v1 deep-copies every base's fields for each subclass it builds: types, validators,
    defaults and all, about a third of GX's import (docs/performance.md). A subclass only sets
    a field's config, alias, include and exclude, adds validators (all on the field, its
    ``field_info`` and ``class_validators``) and resolves forward references (on the field and
    its sub-fields), so those are what is copied; types, functions and defaults are shared, as
    pydantic itself shares them between a model and its instances' fields.
    ``tests/validation/test_gx_import.py`` holds every GX model's fields equal both ways. Models
    defined after the import are built by pydantic's own code again."""
    try:
        main: Any = importlib.import_module("pydantic.v1.main")  # its module globals are set
    except ImportError:  # a pydantic without v1: GX would not import either; nothing to speed
        yield
        return
    deep = main.smart_deepcopy
    model_field = main.ModelField
    importing = threading.get_ident()  # a model another thread defines meanwhile: pydantic's way

    def fields_copy(value: Any) -> Any:
        if (
            threading.get_ident() == importing
            and isinstance(value, dict)
            and all(type(f) is model_field for f in value.values())
        ):
            return {name: _field_copy(f) for name, f in value.items()}
        return deep(value)

    main.smart_deepcopy = fields_copy
    try:
        yield
    finally:
        main.smart_deepcopy = deep


def _field_copy(field: Any) -> Any:
    """A pydantic v1 ``ModelField`` with its own copy of what a subclass may change."""
    copied = copy.copy(field)
    copied.field_info = copy.copy(field.field_info)
    copied.class_validators = dict(field.class_validators)
    if field.sub_fields is not None:
        copied.sub_fields = [_field_copy(sub) for sub in field.sub_fields]
    if field.sub_fields_mapping is not None:
        copied.sub_fields_mapping = {
            key: _field_copy(sub) for key, sub in field.sub_fields_mapping.items()
        }
    if field.key_field is not None:
        copied.key_field = _field_copy(field.key_field)
    return copied


def defer_unused_imports() -> None:
    """Put load-on-first-use modules in ``sys.modules`` for :data:`_DEFERRED` (stdlib
    ``LazyLoader``). Python 3.11's import statement reads ``__spec__`` of a module it finds in
    ``sys.modules``, which would load it at once: that one attribute is answered without loading,
    and a submodule is also set on its package so that ``from package import name`` finds it."""
    import importlib.util
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
