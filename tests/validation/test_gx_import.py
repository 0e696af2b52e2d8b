"""GX imported the cheap way builds the same models as GX imported plainly.

``import_gx`` lets pydantic v1 copy a model's inherited fields shallowly while GX defines its
models. Every pydantic v1 model GX defines is described, field by field (types, aliases,
defaults, validators, config, sub-fields) and by its JSON schema, in two fresh processes: one
importing GX plainly, one through ``import_gx``. The descriptions must be equal.
"""

from __future__ import annotations

import json
import subprocess
import sys

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
