"""Recipes (YAML keys) and ``--key value`` overrides into a config, checked before anything
loads: an unknown key fails naming the nearest known one, a bad value or reward name naming
its key (a misspelt key silently ignored is a training run wasted)."""

from __future__ import annotations

import argparse
import dataclasses
import enum
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from trl import TrlParser

from mirg.core.rewards import REWARDS
from mirg.errors import MirgError, did_you_mean, shown
from mirg.registry import resolve_function


class ConfigError(MirgError):
    """A recipe or override that cannot be applied (unknown key, bad value)."""


def reward_function(name: str) -> Callable[..., list[float]]:
    """A built-in reward by short name (``object``) or any function by dotted path."""
    return resolve_function(
        name,
        # by module attribute, looked up when named (a patched or reloaded reward is seen)
        {n: f"{r.function.__module__}:{r.function.__name__}" for n, r in REWARDS.items()},
        "reward",
        ConfigError,
        "takes completions (and the dataset columns) and returns one number per completion",
    )


C = TypeVar("C")


def _reject_unknown(keys: Sequence[str], cls: type, where: str) -> None:
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    for key in keys:
        if key not in known:
            hint = did_you_mean(key, known)
            raise ConfigError(f"unknown config key {shown(key)} {where} for {cls.__name__}{hint}")


def _describe(hint: Any) -> str:
    """A field type in words, for error messages."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(_describe(a) for a in typing.get_args(hint)))
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in typing.get_args(hint))
    if origin in (list, tuple) or hint in (list, tuple):
        args = typing.get_args(hint)
        return f"a list of {_describe(args[0])} values" if args else "a list"
    if origin is dict or hint is dict:
        return "a mapping"
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "one of " + ", ".join(repr(e.value) for e in hint)
    words = {int: "an integer", float: "a number", bool: "true or false", str: "text"}
    return "null" if hint is type(None) else words.get(hint, getattr(hint, "__name__", str(hint)))


def _fits(hint: Any, value: Any) -> bool:
    """Whether a recipe value can become a field of type ``hint``, as TRL's parser would
    convert it (a string holding a number fits a number: YAML reads ``1e-4`` as text)."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(a, value) for a in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin in (list, tuple) or hint in (list, tuple):
        args = typing.get_args(hint)
        return isinstance(value, list) and (not args or all(_fits(args[0], v) for v in value))
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if hint is bool:
        words = ("true", "false", "yes", "no", "t", "f", "y", "n", "1", "0")
        return isinstance(value, bool) or (isinstance(value, str) and value.lower() in words)
    if hint in (int, float):
        if isinstance(value, bool):
            return False
        if isinstance(value, str):
            try:
                hint(value)
            except ValueError:
                return False
            return True
        return isinstance(value, int) or (hint is float and isinstance(value, float))
    if hint is str:
        return isinstance(value, (str, int, float, bool))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return value in {e.value for e in hint} or isinstance(value, hint)
    return True  # a type YAML cannot write (ParallelismConfig …): its own class checks it


def _check_values(values: Mapping[str, Any], cls: type, where: str) -> None:
    """Every value of the right type for its key, before anything loads: ``max_steps: [1, 2]``
    would otherwise fail inside transformers after the model has loaded."""
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        hint = hints.get(key, Any)
        if not _fits(hint, value):
            raise ConfigError(
                f"{where}: key {key!r}: expected {_describe(hint)}, got {shown(value)}"
            )


#: What a recipe may hold: its size on disk, and its values as nodes (scalars, lists,
#: mappings) counted with every alias expanded, and how deeply they nest. A recipe is a
#: few dozen keys; nested aliases ("billion laughs") expand exponentially and must fail
#: before anything walks, copies or prints them.
MAX_RECIPE_BYTES = 1 << 20
MAX_RECIPE_NODES = 10_000
MAX_RECIPE_DEPTH = 32


def _recipe_extent(root: Any) -> tuple[int, int]:
    """(nodes, depth) of a composed YAML document with aliases expanded, each shared node
    measured once; stops counting past the limits. A node that contains itself (a
    recursive alias) counts as too large."""
    import yaml

    measured: dict[int, tuple[int, int]] = {}
    open_nodes: set[int] = set()
    too_big = (MAX_RECIPE_NODES + 1, MAX_RECIPE_DEPTH + 1)

    def measure(node: Any, depth: int) -> tuple[int, int]:
        key = id(node)
        if key in measured:
            return measured[key]
        if key in open_nodes or depth > MAX_RECIPE_DEPTH:
            return too_big
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        open_nodes.add(key)
        nodes, deepest = 1, 0
        for child in children:
            n, d = measure(child, depth + 1)
            nodes, deepest = nodes + n, max(deepest, d)
            if nodes > MAX_RECIPE_NODES or deepest > MAX_RECIPE_DEPTH:
                break
        open_nodes.discard(key)
        measured[key] = (nodes, deepest + 1)
        return measured[key]

    return measure(root, 1)


def read_recipe(recipe: str | Path) -> dict[str, Any]:
    """The keys and values of a YAML recipe; malformed YAML fails naming the file and line,
    and so does a recipe that would expand past :data:`MAX_RECIPE_NODES` values (nested
    aliases) or nest deeper than :data:`MAX_RECIPE_DEPTH`."""
    import yaml

    path = Path(recipe)
    if not path.is_file():
        raise FileNotFoundError(f"config file {recipe} does not exist")
    size = path.stat().st_size
    if size > MAX_RECIPE_BYTES:
        raise ConfigError(
            f"config file {recipe}: {size:,} bytes; a recipe holds at most "
            f"{MAX_RECIPE_BYTES:,} (is this the right file?)"
        )
    text = path.read_text(encoding="utf-8")
    too_deep = ConfigError(
        f"config file {recipe}: its values nest deeper than {MAX_RECIPE_DEPTH} levels; "
        "a recipe is a mapping of keys to plain values"
    )
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is None:
            return {}
        nodes, depth = _recipe_extent(node)
        if nodes > MAX_RECIPE_NODES:
            raise ConfigError(
                f"config file {recipe}: its values expand to more than {MAX_RECIPE_NODES:,} "
                "entries (nested YAML aliases?); write the values out plainly"
            )
        if depth > MAX_RECIPE_DEPTH:
            raise too_deep
        loader = yaml.SafeLoader("")
        try:
            values = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"config file {recipe}: malformed YAML{at}: {problem}") from None
    except RecursionError:  # the YAML parser's own recursion, before any node is measured
        raise too_deep from None
    if not values:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"config file {recipe} must hold a mapping of keys to values")
    return values


def load_config(
    cls: type[C],
    recipe: str | Path | None = None,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
) -> C:
    """Build ``cls`` from a YAML recipe and overrides, parsed by TRL's ``TrlParser``.

    ``overrides`` is a dict of typed values (``{"max_steps": 40}``) or command-line tokens
    (``["--max_steps", "40"]``, where ``--config FILE`` names the recipe, as in TRL's
    scripts); either wins over the recipe. Every key is checked before the config is
    built: an unknown one fails naming the file or the command line, and the nearest key.
    """
    tokens = [] if overrides is None or isinstance(overrides, Mapping) else list(overrides)
    if "--config" in tokens:
        at = tokens.index("--config")
        recipe = tokens[at + 1] if at + 1 < len(tokens) else ""
        del tokens[at : at + 2]
    values: dict[str, Any] = {}
    if recipe is not None:
        values = read_recipe(recipe)
        _reject_unknown([str(k) for k in values], cls, f"in {recipe}")
        _check_values(values, cls, f"config file {recipe}")
    if isinstance(overrides, Mapping):
        _reject_unknown(list(overrides), cls, "in the overrides")
        _check_values(overrides, cls, "overrides")
        values.update(overrides)
    parser = TrlParser(cls, allow_abbrev=False, exit_on_error=False)
    parser.set_defaults_with_config(**values)
    try:
        namespace, rest = parser.parse_known_args(tokens)
    except argparse.ArgumentError as exc:
        raise ConfigError(f"invalid value: {exc}") from None
    flags = [t[2:].split("=", 1)[0] for t in rest if t.startswith("--")]
    _reject_unknown(flags, cls, "on the command line")
    if rest:
        raise ConfigError(f"expected --key value pairs on the command line, got {rest}")
    try:
        return cls(**vars(namespace))
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid {cls.__name__}: {exc}") from exc
