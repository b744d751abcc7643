"""Loading vector files: `<root>/<protocol>/<version>/*.json`, checked against
`vector.schema.json` (which ships beside them) before anything runs."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parent / "vectors"
SCHEMA = ROOT / "vector.schema.json"
PROTOCOLS = ("cpapi", "ocmp", "oscp", "uftp", "usef")


class VectorFileError(ValueError):
    """A vector file that is not JSON, or not in the vector format."""


@dataclass(frozen=True, slots=True)
class VectorFile:
    path: Path
    protocol: str
    version: str
    section: str
    mount: str
    keys: str
    vectors: tuple[dict[str, Any], ...]

    @property
    def name(self) -> str:
        return self.path.stem


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))


def load_file(path: Path) -> VectorFile:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VectorFileError(f"{path}: {exc}") from None
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(top)"
        raise VectorFileError(f"{path}: {where}: {errors[0].message}")
    return VectorFile(
        path,
        data["protocol"],
        data["version"],
        data["section"],
        data["mount"],
        data.get("keys", "exact"),
        tuple(data["vectors"]),
    )


def load(protocols: Iterable[str], root: Path = ROOT) -> list[VectorFile]:
    """The vector files of `protocols`, protocol by protocol (in the order asked), each
    protocol's versions and files in name order. Vector ids must be unique."""
    files: list[VectorFile] = []
    for protocol in protocols:
        folder = root / protocol
        if not folder.is_dir():
            raise VectorFileError(f"no vectors for protocol {protocol!r} under {root}")
        for path in sorted(folder.glob("*/*.json")):
            loaded = load_file(path)
            if loaded.protocol != protocol:
                raise VectorFileError(f"{path}: protocol {loaded.protocol!r} under {folder}")
            files.append(loaded)
    seen: dict[str, Path] = {}
    for loaded in files:
        for vector in loaded.vectors:
            if vector["id"] in seen:
                raise VectorFileError(
                    f"{loaded.path}: vector id {vector['id']!r} also in {seen[vector['id']]}"
                )
            seen[vector["id"]] = loaded.path
    return files
