"""Errors that end a run with exit code 2 and one clear line."""

from __future__ import annotations


class InitcheckError(Exception):
    """A problem with the input or the invocation, reported as ``initcheck: error: PATH: what``.

    ``path`` names the file (or model) concerned, ``None`` when the problem is not about a file.
    """

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message)
        self.message = message
        self.path = path

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class UntrustedFormatError(InitcheckError):
    """The file is a program (pickled module, TorchScript, exported program, SavedModel, Lambda layer).

    Loading it executes code, so initcheck refuses unless the user opted in with ``--trust``.
    """


class MissingDependencyError(InitcheckError):
    """A framework needed for this file is not installed; the message says what to install."""
