"""JSON Schemas shipped in the `schemas` package: loaded once, validators cached."""

from __future__ import annotations

import functools
import json
import re
from importlib.resources import files
from typing import Any

from jsonschema import validators

from store.errors import FieldIssue, ValidationError


# A memo of loaded schema files (package data never changes at run time), not app state.
@functools.lru_cache(maxsize=64)
def validator(package: str, name: str) -> Any:
    """The validator for `schemas/<package path>/<name>`, of the draft the file declares."""
    schema = json.loads(files(package).joinpath(name).read_text(encoding="utf-8"))
    cls = validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def violations(
    instance: Any, package: str, name: str, *, limit: int | None = 20
) -> list[tuple[tuple[Any, ...], FieldIssue]]:
    """Every violated path (up to `limit`; None: all), as (path in the instance, issue)."""
    errors = sorted(
        validator(package, name).iter_errors(instance), key=lambda e: [str(p) for p in e.path]
    )
    return [(tuple(e.path), FieldIssue(_field(e), e.message)) for e in errors[:limit]]


def check(instance: Any, package: str, name: str, *, limit: int = 20) -> None:
    """Raise ValidationError naming every violated path (up to `limit`)."""
    found = violations(instance, package, name, limit=limit)
    if found:
        raise ValidationError(issues=[issue for _, issue in found])


_REQUIRED = re.compile(r"'(.+)' is a required property")


def _field(error: Any) -> str:
    """The field path of a schema error; a missing required field names itself."""
    path = [*error.path]
    if error.validator == "required":
        missing = _REQUIRED.match(error.message)
        if missing:
            path.append(missing.group(1))
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    return text or "body"
