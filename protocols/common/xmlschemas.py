"""XML Schemas shipped in the `schemas` package, and the one safe way to read XML.

Every XML body is read as UTF-8 (or its ASCII subset) with document type declarations
refused before it is parsed: without a DOCTYPE no entity can be declared and no external
one referenced, so an entity bomb or an external reference is an error, not work. The check
is on the raw bytes, which is sound only for an ASCII-compatible encoding; that is why any
other encoding (a BOM of UTF-16 or UTF-32, NUL bytes, an encoding declaration other than
UTF-8 or US-ASCII) is refused first. ElementTree's own parser then reads the document: the
same safety as xmlschema's `defuse="always"`, which builds a second tree to find out and
cost 25 times the parse. Schemas are loaded once; validation reports the first violation
with its path.
"""

from __future__ import annotations

import codecs
import functools
import re
from importlib.resources import as_file, files
from xml.etree import ElementTree
from xml.etree.ElementTree import Element

import xmlschema
from xmlschema.validators import XMLSchemaBase


class XmlInvalid(Exception):
    """A body that is not well-formed XML, is forbidden (entities, DTDs, remote loads), or
    breaks its schema; the reason says where."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# A memo of loaded schema files (package data never changes at run time), not app state.
@functools.lru_cache(maxsize=16)
def schema(package: str, name: str) -> XMLSchemaBase:
    """The schema `schemas/<package path>/<name>`, with its includes."""
    with as_file(files(package).joinpath(name)) as path:
        loaded: XMLSchemaBase = xmlschema.XMLSchema10(str(path), allow="local")
    return loaded


_DECLARATION = re.compile(rb"""<\?xml[^>]*?encoding\s*=\s*["']([^"']*)["']""")
_ASCII_COMPATIBLE = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})


def _check_bytes(data: bytes) -> None:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\x00" in data:
        raise XmlInvalid("not UTF-8: XML is read as UTF-8 only")
    head = _DECLARATION.match(data.lstrip(codecs.BOM_UTF8)[:200])
    if head is not None and head.group(1).decode("ascii", "replace").lower() not in (
        _ASCII_COMPATIBLE
    ):
        raise XmlInvalid(f"encoding {head.group(1)!r}: XML is read as UTF-8 only")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise XmlInvalid("DTDs and entity declarations are forbidden")


def parse(data: bytes) -> Element:
    """The root element of a well-formed UTF-8 XML document without DTDs, entities or
    remote references."""
    _check_bytes(data)
    try:
        return ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise XmlInvalid(f"not well-formed XML: {exc}") from exc


def check(root: Element, package: str, name: str) -> None:
    """Raise XmlInvalid naming the first place `root` breaks the schema."""
    error = next(iter(schema(package, name).iter_errors(root)), None)
    if error is not None:
        where = error.path or "/"
        raise XmlInvalid(f"{where}: {error.reason or error.message}")
