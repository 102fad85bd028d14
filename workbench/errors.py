"""The one error hierarchy shared by engine and client.

Each class knows the HTTP status Docker gives for it. The engine's API layer
(`engine/api/errors.py`) is the only place that turns these into responses, and
the client's `_wire.py` the only place that turns responses back into them.
Messages use Docker's wording ("No such image: x").
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base of every error a user can cause or see."""

    status: int = 500

    def __init__(self, message: str = "", *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return self.message


class InvalidArgument(WorkbenchError):
    status = 400


class Unauthorized(WorkbenchError):
    status = 401


class Forbidden(WorkbenchError):
    status = 403


class NotFound(WorkbenchError):
    status = 404


class Conflict(WorkbenchError):
    status = 409


class NotModified(WorkbenchError):
    status = 304


class RangeNotSatisfiable(WorkbenchError):
    status = 416


class Internal(WorkbenchError):
    status = 500


class NotImplementedByEngine(WorkbenchError):
    status = 501


class Unavailable(WorkbenchError):
    status = 503


class APIError(WorkbenchError):
    """An error reply the client could not map to a narrower class."""


class BuildError(WorkbenchError):
    """A build failed: carries the failing step and the tail of its output."""

    status = 400

    def __init__(self, message: str, *, step: str = "", line: int | None = None,
                 code: int = 1, log: str = "") -> None:
        super().__init__(message)
        self.step, self.line, self.code, self.log = step, line, code, log


class ContainerError(WorkbenchError):
    """A container exited non-zero where success was required."""

    def __init__(self, message: str, *, exit_code: int, stderr: str = "") -> None:
        super().__init__(message)
        self.exit_code, self.stderr = exit_code, stderr


_BY_STATUS: dict[int, type[WorkbenchError]] = {
    400: InvalidArgument, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
    304: NotModified, 416: RangeNotSatisfiable, 501: NotImplementedByEngine, 503: Unavailable,
}


def from_status(status: int, message: str) -> WorkbenchError:
    """Return the error class instance Docker's status code stands for."""
    cls = _BY_STATUS.get(status, APIError)
    return cls(message, status=status)
