"""The error the registry answers with: an HTTP status plus Confluent's ``error_code`` and message."""

from __future__ import annotations

__all__ = [
    "ApiError",
    "invalid_schema",
    "invalid_version",
    "schema_not_found",
    "subject_not_found",
    "version_not_found",
]


class ApiError(Exception):
    """A request the registry refuses; rendered as ``{"error_code": n, "message": "..."}``.

    Args:
        status: HTTP status code.
        error_code: Confluent's error code (40401, 42201, ...); often the status itself.
        message: Human-readable reason.
    """

    def __init__(self, status: int, error_code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message

    def body(self) -> dict[str, object]:
        """The JSON body Confluent's clients parse."""
        return {"error_code": self.error_code, "message": self.message}


def subject_not_found(subject: str) -> ApiError:
    """40401."""
    return ApiError(404, 40401, f"Subject '{subject}' not found.")


def version_not_found(subject: str, version: object) -> ApiError:
    """40402."""
    return ApiError(404, 40402, f"Version {version} not found for subject '{subject}'.")


def schema_not_found(detail: str = "Schema not found") -> ApiError:
    """40403."""
    return ApiError(404, 40403, detail)


def invalid_schema(detail: str) -> ApiError:
    """42201."""
    return ApiError(422, 42201, f"Invalid schema: {detail}")


def invalid_version(version: str) -> ApiError:
    """42202."""
    return ApiError(
        422,
        42202,
        f"The specified version '{version}' is not a valid version id. Allowed values are between "
        '[1, 2^31-1] and the string "latest"',
    )
