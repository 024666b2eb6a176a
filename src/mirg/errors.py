"""mirg's one error base class.

A :class:`MirgError` means the input or the request cannot work as given (a bad file, a
missing field, a recipe value of the wrong type): its message names the file, the item
and the field, and the command line prints it in one line and exits 2. Anything else is
a bug in mirg and keeps its traceback. Each subclass is also a ``ValueError`` so that
callers catching ``ValueError`` keep working.
"""

from __future__ import annotations


class MirgError(ValueError):
    """Bad input or a request that cannot be carried out; the message says where and why."""
