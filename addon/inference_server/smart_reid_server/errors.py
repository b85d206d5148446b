"""Errors that stop the server from starting (the CLI exits with code 2 on them)."""

from __future__ import annotations


class StartupError(RuntimeError):
    """The server cannot start; the message says what to fix (the CLI exits with code 2)."""
