"""Errors that stop the server from starting (the CLI exits with code 2 on them)."""

from __future__ import annotations


class StartupError(RuntimeError):
    """The server cannot start; the message says what to fix (the CLI exits with code 2)."""


# Exit status of a matcher that lost its leadership (PostgreSQL restarted or unreachable): not 0,
# so a supervisor (Docker ``restart:``, systemd ``Restart=on-failure``) starts it again, as
# standby; the other matcher leads meanwhile.
EXIT_LOST_LEADERSHIP = 3
