"""ktrdr's error classes. The backend maps them to the envelope
``{"success": false, "error": {"code", "message", "details"}}`` (see ktrdr/api/main.py)."""

from __future__ import annotations

from typing import Any


class KtrdrError(Exception):
    status_code = 500
    default_code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, error_code: str | None = None,
                 details: dict[str, Any] | None = None, suggestion: str | None = None):
        super().__init__(message)
        self.message = message
        self.error_code = error_code or self.default_code
        self.details = details or {}
        self.suggestion = suggestion

    def __str__(self) -> str:
        return f"{self.message}. {self.suggestion}" if self.suggestion else self.message

    def to_detail(self) -> dict[str, Any]:
        """The detail object ktrdr puts in a 400 for configuration problems."""
        return {"message": self.message, "error_code": self.error_code, "context": {},
                "details": self.details, "suggestion": self.suggestion}


class DataError(KtrdrError):
    status_code = 400
    default_code = "DATA_ERROR"


class DataNotFoundError(DataError):
    status_code = 404
    default_code = "DATA_NOT_FOUND"


class ServiceConnectionError(KtrdrError):
    status_code = 503
    default_code = "CONNECTION_ERROR"


class ConfigurationError(KtrdrError):
    status_code = 500
    default_code = "CONFIGURATION_ERROR"


class ProcessingError(KtrdrError):
    status_code = 500
    default_code = "PROCESSING_ERROR"
