"""Typed store errors. Protocols translate them into their own codes and words."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldIssue:
    """One reason one field of an input was refused."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class StoreError(Exception):
    """Base of every error the store raises on purpose."""

    code = "store_error"


class ValidationError(StoreError):
    """Input refused before anything was written; names each field and the reason."""

    code = "invalid"

    def __init__(
        self,
        field: str | None = None,
        reason: str | None = None,
        *,
        issues: list[FieldIssue] | tuple[FieldIssue, ...] = (),
    ) -> None:
        collected = list(issues)
        if field is not None:
            collected.insert(0, FieldIssue(field, reason or "invalid"))
        if not collected:
            raise ValueError("ValidationError needs at least one issue")
        self.issues: tuple[FieldIssue, ...] = tuple(collected)
        super().__init__("; ".join(str(issue) for issue in self.issues))

    @property
    def field(self) -> str:
        return self.issues[0].field

    @property
    def reason(self) -> str:
        return self.issues[0].reason


def check_fits(field: str, text: str, limit: int) -> None:
    """Refuse text its column cannot hold (PostgreSQL would refuse it with an error that
    names no field; SQLite would keep it, so the two would not agree)."""
    if len(text) > limit:
        raise ValidationError(field, f"at most {limit} characters, got {len(text)}")


class NotFound(StoreError):
    """A reference that names nothing in this tenant."""

    code = "not_found"

    def __init__(self, what: str, reference: str) -> None:
        self.what = what
        self.reference = reference
        super().__init__(f"{what} not found: {reference}")


class Conflict(StoreError):
    """The write would break an invariant of stored data (a duplicate, an overlap)."""

    code = "conflict"
