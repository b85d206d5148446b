"""The one error type for model problems a user has to act on."""

from __future__ import annotations


class ModelError(RuntimeError):
    """A model cannot be found, fetched, verified or loaded.

    The message always names the file or model and says what the user can do about it, because
    it ends up in the start-up log and the health endpoint, not in a traceback someone reads.
    """
