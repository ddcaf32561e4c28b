"""The HTTP status of every error the desk can raise, shared by the pages and the API."""

from __future__ import annotations

from models.cases.lifecycle import CaseConflict, CaseNotFound, InvalidTransition
from pipelines.desk.auth import CsrfError, NotAuthenticated, PermissionDenied
from pipelines.desk.service import CapacityReached

#: Most specific first: InvalidTransition is a ValueError, CaseNotFound a LookupError.
STATUS_BY_ERROR: tuple[tuple[type[BaseException], int], ...] = (
    (NotAuthenticated, 401),
    (PermissionDenied, 403),
    (CsrfError, 403),
    (CaseNotFound, 404),
    (CaseConflict, 409),
    (InvalidTransition, 409),
    (CapacityReached, 409),
    (ValueError, 400),
)


def error_status(exc: BaseException) -> int:
    """400-409 for the errors people cause, 500 for anything else (a bug)."""
    for kind, status in STATUS_BY_ERROR:
        if isinstance(exc, kind):
            return status
    return 500
