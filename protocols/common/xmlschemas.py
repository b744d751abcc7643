"""XML Schemas shipped in the `schemas` package, and the one safe way to read XML.

Every XML body is parsed with entities, DTDs and remote loads refused (xmlschema's
`defuse="always"`, `allow="none"`): an entity bomb or an external reference is an error, not
work. Schemas are loaded once; validation reports the first violation with its path.
"""

from __future__ import annotations

import functools
from importlib.resources import as_file, files
from xml.etree.ElementTree import Element

import xmlschema
from xmlschema import XMLResource
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


def parse(data: bytes) -> Element:
    """The root element of a well-formed XML document without entities, DTDs or remote
    references."""
    try:
        resource = XMLResource(data, defuse="always", allow="none")
    except xmlschema.XMLResourceError as exc:
        raise XmlInvalid(str(exc).splitlines()[0]) from exc
    except SyntaxError as exc:  # ElementTree's ParseError
        raise XmlInvalid(f"not well-formed XML: {exc}") from exc
    root = resource.root
    if not isinstance(root, Element):  # pragma: no cover - lxml trees are not used here
        raise XmlInvalid("not an ElementTree document")
    return root


def check(root: Element, package: str, name: str) -> None:
    """Raise XmlInvalid naming the first place `root` breaks the schema."""
    error = next(iter(schema(package, name).iter_errors(root)), None)
    if error is not None:
        where = error.path or "/"
        raise XmlInvalid(f"{where}: {error.reason or error.message}")

