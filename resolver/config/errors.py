"""The one error a bad config raises: it names the file, the line, the key and the fix."""

from __future__ import annotations


class ConfigError(Exception):
    """The configuration is not valid."""

    def __init__(self, file: str, line: int, key: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.file = file
        self.line = line
        self.key = key
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = f" {self.key}:" if self.key else ""
        fix = f" (fix: {self.hint})" if self.hint else ""
        return f"{where}:{key} {self.message}{fix}"
