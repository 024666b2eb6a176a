"""mirg's one error base class.

A :class:`MirgError` means the input or the request cannot work as given (a bad file, a
missing field, a recipe value of the wrong type): its message names the file, the item
and the field, and the command line prints it in one line and exits 2. Anything else is
a bug in mirg and keeps its traceback. Each subclass is also a ``ValueError`` so that
callers catching ``ValueError`` keep working.
"""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable

#: The longest stretch of a user's value an error message repeats.
SHOWN_CHARS = 80
# Bounded in time as well as in length: a recipe value or a JSON field may be a list of a
# million items, or nested a thousand deep. Limits well above what fits in SHOWN_CHARS, so
# what is shown reads as ``repr`` would print it.
_SHOWN = reprlib.Repr()
_SHOWN.maxlevel = 6
_SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxdict = _SHOWN.maxset = _SHOWN.maxfrozenset = 40
_SHOWN.maxstring = _SHOWN.maxother = _SHOWN.maxlong = 4 * SHOWN_CHARS


def shown(value: object) -> str:
    """A value as an error message echoes it: ``repr``-like, at most ``SHOWN_CHARS``
    characters (cut with "…"), computed in bounded time."""
    text = _SHOWN.repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``; did you mean 'x'?`` for the known name closest to a mistyped one, else ``""``."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


class MirgError(ValueError):
    """Bad input or a request that cannot be carried out; the message says where and why."""
