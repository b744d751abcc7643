"""Shared wire helpers: JSON decoding, UTC times and case-insensitive field names.

Some specs print their own examples in several spellings (the CP-API writes `AssetKey`,
`assetKey` and even `assetReferencKey`). Schemas built on `CaseInsensitiveSchema` accept any
letter case of a declared wire name (and the aliases a schema lists) by table lookup, not by
converting case algorithmically, and ignore surrounding blanks in keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson
from aiohttp import web
from marshmallow import EXCLUDE, Schema, pre_load

from store.errors import FieldIssue, ValidationError


class CaseInsensitiveSchema(Schema):
    """Loads keys in any letter case; unknown keys are ignored, as the specs' examples carry
    fields their tables do not list."""

    # Extra accepted spellings: {alias: declared wire name}.
    ALIASES: ClassVar[Mapping[str, str]] = {}

    class Meta:
        unknown = EXCLUDE

    @pre_load(pass_collection=False)
    def _canonical_keys(self, data: Any, **_: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        names: dict[str, str] = {
            (f.data_key or n).casefold(): f.data_key or n for n, f in self.load_fields.items()
        }
        names.update({alias.casefold(): wire for alias, wire in self.ALIASES.items()})
        canonical: dict[str, Any] = {}
        for key, value in data.items():
            name = names.get(str(key).strip().casefold(), str(key))
            canonical.setdefault(name, value)
        return canonical


# No message of any surface nests deeper than a few levels; deeper input would only make the
# validators and the JSON columns recurse (Python's stack gives out near 1,000 levels).
MAX_DEPTH = 32
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


async def read_json(request: web.Request) -> Any:
    """The request body as JSON, or a ValidationError naming the body and the reason: not
    JSON, not UTF-8, nested deeper than MAX_DEPTH, or holding a NUL character (no database
    keeps one in text; lone surrogates orjson refuses already)."""
    body = await request.read()
    if not body.strip():
        raise ValidationError("body", "a JSON body is required")
    if nested_deeper(body, MAX_DEPTH):
        raise ValidationError("body", f"nested deeper than {MAX_DEPTH} levels")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValidationError("body", f"not valid JSON: {exc}") from None
    if b"\\u0000" in body:
        where = nul_at(document)
        if where is not None:
            raise ValidationError(where, "a NUL character (\\u0000) is not accepted in text")
    return document


def nested_deeper(body: bytes, limit: int) -> bool:
    """Whether the JSON text nests brackets more than `limit` deep, decided before parsing
    and without a Python loop over the body: the text outside strings, brackets only, loses
    its innermost pairs once per level."""
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(unescaped.split(b'"')[::2])
    brackets = outside.translate(None, _NOT_BRACKETS).replace(b"{", b"[").replace(b"}", b"]")
    for _ in range(limit):
        inner = brackets.replace(b"[]", b"")
        if len(inner) == len(brackets):  # balanced and shallow, or not JSON (orjson says so)
            return False
        brackets = inner
    return bool(brackets)


def nul_at(document: Any, path: str = "") -> str | None:
    """The path of the first key or string holding a NUL character, if any."""
    if isinstance(document, str):
        return (path or "body") if "\x00" in document else None
    items: Any = ()
    if isinstance(document, dict):
        for key in document:
            if "\x00" in key:
                return f"{path}.{key}".lstrip(".")
        items = ((f"{path}.{k}".lstrip("."), v) for k, v in document.items())
    elif isinstance(document, list):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(document))
    for where, value in items:
        found = nul_at(value, where)
        if found is not None:
            return found
    return None


def marshmallow_issues(messages: Any, prefix: str = "") -> list[FieldIssue]:
    """Flatten marshmallow's nested error dict into field paths and reasons."""
    if isinstance(messages, Mapping):
        issues: list[FieldIssue] = []
        for key, value in messages.items():
            path = (
                f"{prefix}[{key}]"
                if isinstance(key, int)
                else f"{prefix}.{key}"
                if prefix
                else str(key)
            )
            issues.extend(marshmallow_issues(value, path))
        return issues
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [FieldIssue(prefix or "body", "; ".join(messages))]
    if isinstance(messages, list):
        return [issue for m in messages for issue in marshmallow_issues(m, prefix)]
    return [FieldIssue(prefix or "body", str(messages))]


def iso(moment: datetime) -> str:
    """A UTC instant as RFC 3339 with 'Z' (OCMP and OSCP emit times so)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
