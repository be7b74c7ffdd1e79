"""The stacklevel of a warning raised deep in a fit: the user's own line."""

from __future__ import annotations

import sys

__all__ = ["users_stacklevel"]


def users_stacklevel() -> int:
    """The ``stacklevel`` that points its caller's warning at the first frame outside skvae
    and scikit-learn: the user's line, however deep in a fit the warning is raised."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] in (
        "skvae",
        "sklearn",
    ):
        frame, level = frame.f_back, level + 1
    return level
