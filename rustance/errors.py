"""One root for every error a user can cause: the CLI prints these as one ``error:`` line, never a traceback."""

from __future__ import annotations


class RustanceError(Exception):
    """Base class of user-facing errors (bad input, bad config, unusable model or output folder)."""
