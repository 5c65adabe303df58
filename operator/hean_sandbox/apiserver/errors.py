"""Kubernetes API errors, rendered in the `Status` shape a real apiserver sends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# HTTP code -> the `reason` a real apiserver puts next to it.
_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    500: "InternalError",
}


@dataclass(frozen=True)
class Cause:
    """One `details.causes[]` entry: which field is wrong and why."""

    reason: str
    message: str
    field: str

    def to_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}


@dataclass
class ApiError(Exception):
    """An error the server answers with a `Status` object and the matching HTTP code."""

    code: int
    message: str
    reason: str = ""
    name: str | None = None
    group: str | None = None
    kind: str | None = None
    causes: list[Cause] = field(default_factory=list)
    retry_after: int | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)
        if not self.reason:
            self.reason = _REASONS.get(self.code, "Unknown")

    def status(self) -> dict[str, Any]:
        return status_object(
            code=self.code,
            reason=self.reason,
            message=self.message,
            details=self.details(),
        )

    def details(self) -> dict[str, Any] | None:
        details: dict[str, Any] = {}
        if self.name is not None:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind is not None:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = [cause.to_dict() for cause in self.causes]
        if self.retry_after is not None:
            details["retryAfterSeconds"] = self.retry_after
        return details or None


def status_object(
    *, code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A failed `Status` (metav1.Status) as a dict."""
    status: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        status["details"] = details
    return status


def success_status(details: dict[str, Any]) -> dict[str, Any]:
    """The `Status` a DELETE of a resource that does not return the object answers with."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(404, f'{qualified} "{name}" not found', name=name, group=group, kind=resource)


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(
        409,
        f'{qualified} "{name}" already exists',
        reason="AlreadyExists",
        name=name,
        group=group,
        kind=resource,
    )


def conflict(resource: str, name: str, group: str, why: str) -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {qualified} "{name}": {why}',
        reason="Conflict",
        name=name,
        group=group,
        kind=resource,
    )


def invalid(kind: str, name: str, group: str, causes: list[Cause]) -> ApiError:
    """422 Invalid with one cause per field, worded as the apiserver words it."""
    qualified = f"{kind}.{group}" if group else kind
    parts = [f"{c.field}: {c.message}" if c.field else c.message for c in causes]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return ApiError(
        422,
        f'{qualified} "{name}" is invalid: {summary}',
        reason="Invalid",
        name=name,
        group=group,
        kind=kind,
        causes=causes,
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, reason="BadRequest")
