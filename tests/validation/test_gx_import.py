"""GX imported the cheap way builds the same models as GX imported plainly.

``import_gx`` lets pydantic v1 copy a model's inherited fields shallowly while GX defines its
models. Every pydantic v1 model GX defines is described, field by field (types, aliases,
defaults, validators, config, sub-fields) and by its JSON schema, in two fresh processes: one
importing GX plainly, one through ``import_gx``. The descriptions must be equal.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import types

DESCRIBE = r"""
import json, re, sys
from omnisync.validation import gx_import

if sys.argv[1] == "plain":
    gx_import.defer_unused_imports()
    import great_expectations  # noqa: F401
else:
    gx_import.import_gx()
from pydantic.v1 import BaseModel

ADDRESS = re.compile(r" at 0x[0-9a-f]+")


def text(value):
    return ADDRESS.sub("", repr(value))


def names(functions):
    return [getattr(f, "__qualname__", text(f)) for f in functions or ()]


def field(f):
    if f is None:
        return None
    info = f.field_info
    return {
        "name": f.name, "alias": f.alias, "has_alias": f.has_alias, "required": text(f.required),
        "type": text(f.type_), "outer": text(f.outer_type_), "shape": f.shape,
        "allow_none": f.allow_none, "always": f.validate_always, "default": text(f.default),
        "factory": names([f.default_factory] if f.default_factory else []),
        "validators": names(f.validators), "pre": names(f.pre_validators),
        "post": names(f.post_validators),
        "class_validators": {k: names([v.func]) for k, v in f.class_validators.items()},
        "info": text(info), "extra": text(info.extra), "config": text(f.model_config),
        "sub": [field(s) for s in f.sub_fields or ()], "key": field(f.key_field),
        "mapping": {k: field(v) for k, v in (f.sub_fields_mapping or {}).items()},
        "discriminator": f.discriminator_key,
    }


def schema(model):
    try:
        return json.loads(model.schema_json())
    except Exception as error:  # some of GX's models have no schema; the same both ways
        return f"{type(error).__name__}: {ADDRESS.sub('', str(error))}"


seen, models = set(), {}
todo = list(BaseModel.__subclasses__())
while todo:
    model = todo.pop()
    if model in seen:
        continue
    seen.add(model)
    todo.extend(model.__subclasses__())
    key = f"{model.__module__}.{model.__qualname__}"
    models.setdefault(key, []).append(
        {"fields": {n: field(f) for n, f in model.__fields__.items()}, "schema": schema(model)}
    )
for described in models.values():
    described.sort(key=lambda d: json.dumps(d, sort_keys=True, default=str))
print(json.dumps(models, sort_keys=True, default=str))
"""


def described(how: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", DESCRIBE, how], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_import_gx_builds_every_model_as_a_plain_import_does() -> None:
    plain, cheap = described("plain"), described("cheap")
    gx_models = [name for name in plain if name.startswith("great_expectations.")]
    assert len(gx_models) > 200, "the description did not reach GX's models"
    assert sorted(cheap) == sorted(plain)
    differing = [name for name in plain if plain[name] != cheap[name]]
    assert not differing, f"{len(differing)} models differ, first: {differing[:5]}"


#: compiled on its own: this module's ``from __future__ import annotations`` would leave its
#: annotations as text for pydantic to look up among this module's globals
FAMILY = """
from typing import List, Literal, Optional, Union

from pydantic.v1 import BaseModel, Field, validator


class Cat(BaseModel):
    kind: Literal["cat"]
    lives: int = 9


class Dog(BaseModel):
    kind: Literal["dog"]
    good: bool = True


class Base(BaseModel):
    name: str = Field("x", alias="Name")
    tags: list[str] = []
    child: Optional["Child"] = None  # resolved by the subclass below
    children: List["Child"] = []  # the same, in a sub-field
    pet: Union[Cat, Dog] = Field(None, discriminator="kind")
    secret: str = Field("s", exclude=True)

    @validator("tags", each_item=True)
    def no_blanks(cls, value):
        return value.strip()


class Sub(Base):
    class Config:
        fields = {"name": {"alias": "SubName"}, "tags": {"exclude": {0}}}

    @validator("name")
    def shout(cls, value):
        return value.upper()


class Child(BaseModel):
    value: int


Sub.update_forward_refs(Child=Child)
base, sub = Base(Name=" a ", tags=[" t "]), Sub(SubName="b", tags=["u "], child={"value": 3})
sub.tags.append("v")
behaviour = {
    "base_alias": Base.__fields__["name"].alias,
    "sub_alias": Sub.__fields__["name"].alias,
    "base": base.dict(by_alias=True),
    "sub": sub.dict(by_alias=True),
    "base_child_open": type(Base.__fields__["child"].type_).__name__,
    "base_children_open": type(Base.__fields__["children"].sub_fields[0].type_).__name__,
    "base_name_info": repr(Base.__fields__["name"].field_info),
    "base_tags_info": repr(Base.__fields__["tags"].field_info),
    "fresh_default": Sub().tags,
    "sub_schema": Sub.schema(),  # the base has an open forward reference: no schema
    "sub_pet": Sub(SubName="c", pet={"kind": "dog"}).dict()["pet"],
    "base_validators": sorted(Base.__fields__["name"].class_validators),
    "sub_validators": sorted(Sub.__fields__["name"].class_validators),
}
"""


_FAMILIES = itertools.count()


def _family_behaviour() -> dict[str, object]:
    """What a small model family does: a subclass that renames an inherited field's alias,
    adds a validator to it, excludes part of another and resolves a forward reference its base
    leaves open; with a mutable default and a discriminated union."""
    module = types.ModuleType(f"omnisync_model_family_{next(_FAMILIES)}")  # a validator once
    sys.modules[module.__name__] = module  # where pydantic resolves the forward reference
    try:
        exec(compile(FAMILY, "family", "exec", dont_inherit=True), module.__dict__)
    finally:
        del sys.modules[module.__name__]
    behaviour: dict[str, object] = module.behaviour
    return behaviour


def test_a_model_family_behaves_the_same_with_fields_copied_shallowly() -> None:
    """The cases GX's own models may not exercise: what a subclass changes of an inherited
    field (alias, exclude, validators, a forward reference) stays off its base."""
    from omnisync.validation.gx_import import _fields_copied_shallowly

    plain = _family_behaviour()
    with _fields_copied_shallowly():
        cheap = _family_behaviour()
    assert cheap == plain
    assert plain["base_alias"] == "Name" and plain["sub_alias"] == "SubName"
    assert plain["base_validators"] == [] and plain["sub_validators"] == ["shout"]
    assert plain["fresh_default"] == []
    assert plain["base_child_open"] == plain["base_children_open"] == "ForwardRef"
    assert "SubName" not in str(plain["base_name_info"])


def test_a_model_another_thread_defines_meanwhile_is_built_by_pydantic_itself() -> None:
    """The copy is the importing thread's: another thread's models (Prefect builds some at run
    time) keep pydantic's deep copy of their bases' fields, defaults included."""
    import threading

    from pydantic.v1 import BaseModel

    from omnisync.validation.gx_import import _fields_copied_shallowly

    shared: dict[str, bool] = {}

    def define() -> None:
        class Base(BaseModel):
            tags: list[str] = []

        class Sub(Base):
            pass

        shared["default"] = Sub.__fields__["tags"].default is Base.__fields__["tags"].default

    with _fields_copied_shallowly():
        other = threading.Thread(target=define)
        other.start()
        other.join()
    assert shared == {"default": False}


#: where GX's modules are imported, and what reaches the caller when the import fails
WHERE = r"""
import sys, threading
from omnisync.validation import gx_import


class Watch:
    '''Notes the thread that looks for GX's package, then lets the usual finders find it.'''

    def find_spec(self, name, path=None, target=None):
        if name == "great_expectations":
            seen.append(threading.current_thread().name)
            if sys.argv[1] == "broken" or (sys.argv[1] == "failed-unread" and len(seen) == 1):
                raise ImportError("GX broken for the test")
        return None


seen = []
sys.meta_path.insert(0, Watch())
if sys.argv[1] == "failed-unread":  # an import started ahead fails, and nobody asks for it
    gx_import.start_import().wait()
    print(seen, gx_import.import_gx().__name__)
    sys.exit(0)
if sys.argv[1] == "interrupted":  # Ctrl-C while the caller waits, then GX asked for again
    import signal

    def stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    try:
        gx_import.import_gx()
    except KeyboardInterrupt:
        gx = gx_import.import_gx()
        print("whole" if hasattr(gx, "ExpectationSuite") and hasattr(gx, "get_context") else "half")
    sys.exit(0)
try:
    gx = gx_import.import_gx()
except ImportError as error:
    print(seen, "raised:", error)
else:
    print(seen, gx.__name__, gx_import.import_gx() is gx)
"""


def where(how: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", WHERE, how], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_gx_is_imported_on_a_thread_of_its_own_and_its_failure_reaches_the_caller() -> None:
    # Its frames then start at one depth whoever calls it (Python 3.11 maps and unmaps a frame
    # chunk each time the stack crosses one's edge: docs/performance.md).
    assert where("works") == "['omnisync-gx-import'] great_expectations True"
    assert where("broken") == "['omnisync-gx-import'] raised: GX broken for the test"
    # one started ahead (before planning) that failed with nobody to raise it to is tried
    # again by the next caller, not raised to it (a review)
    twice = "['omnisync-gx-import', 'omnisync-gx-import'] great_expectations"
    assert where("failed-unread") == twice


def test_a_caller_stopped_while_gx_imports_leaves_the_next_one_waiting_for_the_whole_module() -> (
    None
):
    """Found reading the change again: the import goes on on its thread after its caller is
    interrupted (Ctrl-C), and the next caller found GX in ``sys.modules`` half made."""
    assert where("interrupted") == "whole"
