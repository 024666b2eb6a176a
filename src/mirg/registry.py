"""Finding an extension by name: a built-in by its short name, a user's own by dotted path.

Every kind of extension (rewards, benchmarks, model families, data readers) has one table
of built-ins by short name (a ``"module:attribute"`` entry is imported only when named),
and accepts ``my_pkg.module.NAME`` for anything importable, the way TRL's GRPO script takes
reward functions. A user adds a benchmark or a reward without editing mirg. Pure Python: the core
(rewards, for verl) resolves through it too.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Callable, Mapping

from mirg.errors import MirgError, did_you_mean, shown


def where_raised(exc: BaseException) -> str:
    """``file:line`` of the innermost frame an exception passed through (a user's module)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"


def import_attribute(path: str, kind: str, error: type[MirgError]) -> object:
    """``pkg.module.NAME`` (or ``pkg.module:NAME``) imported, the run's folder importable.

    Errors name the kind and what was asked: ``reward 'x.y' cannot be imported: …``.
    """
    module, sep, attribute = path.rpartition(":")
    if not sep:
        module, _, attribute = path.rpartition(".")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise error(f"{kind} {shown(path)} cannot be imported: {exc}") from None
    except Exception as exc:  # the user's module fails as it is imported
        raise error(
            f"{kind} {shown(path)} cannot be imported: importing {module} raised "
            f"{type(exc).__name__}: {exc} (at {where_raised(exc)})"
        ) from None


def resolve(
    name: str,
    table: Mapping[str, object],
    kind: str,
    error: type[MirgError] = MirgError,
    example: str = "my_pkg.module.NAME",
) -> object:
    """What ``name`` stands for: a built-in of ``table`` or an importable dotted path.

    ``table`` maps short names to built-ins, or to ``"module:attribute"`` for those imported
    only when named; ``kind`` names the extension in errors (``reward``, ``benchmark``);
    ``example`` shows what a dotted path looks like.
    """
    if name in table:  # a "module:attribute" string is imported; anything else is the built-in
        found = table[name]
        return import_attribute(found, kind, error) if isinstance(found, str) else found
    if "." not in name.strip(".:") and ":" not in name.strip(".:"):
        raise error(
            f"{kind}s must be built-in names ({', '.join(table)}) or dotted paths "
            f"({example}); {shown(name)} is neither"
        )
    try:
        return import_attribute(name, kind, error)
    except error as exc:  # a built-in's name mistyped with a dot in it (qwen2.5-v1)
        if not (hint := did_you_mean(name, table)):
            raise
        raise error(f"{exc}{hint}") from None


def resolve_function(
    name: str, table: Mapping[str, object], kind: str, error: type[MirgError], what: str
) -> Callable:
    """:func:`resolve` for extensions that are functions; ``what`` says what it must do."""
    found = resolve(name, table, kind, error, example=f"my_pkg.module.my_{kind}")
    if not callable(found):
        raise error(
            f"{kind} {shown(name)} is {type(found).__name__} {shown(found)}, not a function; "
            f"name a function that {what}"
        )
    return found
