"""Rewards checked before and during GRPO: a reward that fails, or returns what GRPO
cannot use, stops the run in one line naming the function and the step.

Before training each reward scores the first rows as TRL will call it
(:func:`check_reward_columns`); during training every user reward is wrapped
(:func:`checked_reward`). TRL treats None as "this reward does not apply" and would treat NaN
the same way, hiding a bug in the reward, so NaN is refused. mirg's own rewards are not
wrapped: a failure there is a bug in mirg and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
from collections.abc import Callable
from typing import Any

from mirg.core.rewards import completion_text
from mirg.errors import shown
from mirg.registry import where_raised
from mirg.train.recipes import ConfigError

#: Before training, each reward scores this many training rows, each with these
#: completions (a well-formed empty answer, nothing at all, free text), as TRL calls it.
CHECK_ROWS = 4
CHECK_COMPLETIONS = ("<think></think><answer>{}</answer>", "", "Image-1 (0,0),(1,1)")


class RewardError(ConfigError):
    """A reward function that fails, or returns what GRPO cannot use; names the function
    and the step (or the check before training)."""


def _unwrapped(func: Any) -> Any:
    while isinstance(func, functools.partial):
        func = func.func
    return func


def reward_name(func: Any) -> str:
    """The name TRL logs a reward under (a function's, or a callable object's class)."""
    func = _unwrapped(func)
    return getattr(func, "__name__", type(func).__name__)


def _is_mirg(func: Any) -> bool:
    """Whether a reward is mirg's own (a failure there is a bug: it keeps its traceback)."""
    func = _unwrapped(func)
    module = getattr(func, "__module__", None) or type(func).__module__
    return module == "mirg" or module.startswith("mirg.")


def check_reward_output(name: str, values: Any, completions: Any, when: str) -> None:
    """Refuse what TRL could not use as rewards, or would silently misuse: anything but one
    number (or None: "does not apply") per completion, and NaN or infinity, which TRL would
    treat as "does not apply" too, hiding a bug in the reward."""
    n = len(completions)
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__len__"):
        raise RewardError(
            f"reward {name} returned {type(values).__name__} {shown(values)} {when}; it must "
            f"return a list of one number per completion ({n})"
        )
    if len(values) != n:
        raise RewardError(
            f"reward {name} returned {len(values)} values for {n} completions {when}; it must "
            "return one number (or None where it does not apply) per completion"
        )
    for i, value in enumerate(values):
        if value is None:
            continue
        try:
            number = float(value) if not isinstance(value, (str, bytes)) else None
        except (TypeError, ValueError):
            number = None
        if number is None:
            raise RewardError(
                f"reward {name} returned {shown(value)} for completion {i} {when}; rewards "
                "must be numbers (None where a reward does not apply)"
            )
        if not math.isfinite(number):
            raise RewardError(
                f"reward {name} returned {number} for completion {i} {when} (completion: "
                f"{shown(completion_text(completions[i]))}); a reward must be a finite number, "
                "or None where it does not apply"
            )


def _failed(name: str, exc: Exception, when: str) -> RewardError:
    text = " ".join(str(exc).split())
    text = text if len(text) <= 200 else text[:199] + "…"
    return RewardError(
        f"reward {name} raised {type(exc).__name__} {when}: {text} (at {where_raised(exc)})"
    )


def _when(kwargs: dict[str, Any]) -> str:
    state = kwargs.get("trainer_state")
    step = getattr(state, "global_step", None)
    return f"at step {step}" if step is not None else "during training"


def checked_reward(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` as TRL calls it, with every result checked (:func:`check_reward_output`)
    and a failure reported in one line naming the reward and the step. mirg's own rewards
    are returned as they are: a failure there is a bug and keeps its traceback. The name
    TRL logs under stays the function's."""
    if _is_mirg(func):
        return func
    name, inner = reward_name(func), _unwrapped(func)

    def run(values_or_error: Any, kwargs: dict[str, Any]) -> Any:
        check_reward_output(name, values_or_error, kwargs.get("completions", ()), _when(kwargs))
        return values_or_error

    if inspect.iscoroutinefunction(inner) or inspect.iscoroutinefunction(type(inner).__call__):

        async def checked_async(*args: Any, **kwargs: Any) -> Any:
            try:
                values = await func(*args, **kwargs)
            except Exception as exc:
                raise _failed(name, exc, _when(kwargs)) from exc
            return run(values, kwargs)

        checked: Any = checked_async
    else:

        def checked_sync(*args: Any, **kwargs: Any) -> Any:
            try:
                values = func(*args, **kwargs)
            except Exception as exc:
                raise _failed(name, exc, _when(kwargs)) from exc
            return run(values, kwargs)

        checked = checked_sync
    with contextlib.suppress(AttributeError, TypeError):
        functools.update_wrapper(checked, inner)
    checked.__name__ = checked.__qualname__ = name
    checked.__wrapped__ = func
    return checked


def _call(func: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    result = func(**kwargs)
    if inspect.isawaitable(result):
        import asyncio

        async def wait() -> Any:
            return await result

        result = asyncio.run(wait())
    return result


def check_reward_columns(
    dataset: Any, funcs: list[Callable[..., list[float]]], tokenizer: Any = None
) -> None:
    """Call each reward once, as TRL will, on the first training rows with a few
    completions each, so that a missing column, a reward that raises, or one that returns
    the wrong number of values, a non-number, NaN or infinity fails before training,
    naming the function. ``tokenizer`` (the processor) gives the completions' token ids."""
    from transformers import TrainerState

    rows = [dataset[i] for i in range(min(CHECK_ROWS, len(dataset)))]
    expanded = [row for row in rows for _ in CHECK_COMPLETIONS]
    texts = [text for _ in rows for text in CHECK_COMPLETIONS]
    prompts = [row["prompt"] for row in expanded]
    conversational = bool(prompts) and isinstance(prompts[0], list)
    completions: list[Any] = (
        [[{"role": "assistant", "content": t}] for t in texts] if conversational else texts
    )
    encode = getattr(tokenizer, "tokenizer", tokenizer)
    ids = [list(encode(t, add_special_tokens=False)["input_ids"]) if encode else [] for t in texts]
    when = f"before training (on the first {len(rows)} training row(s))"
    for func in funcs:
        name = reward_name(func)
        columns = {
            k: [row[k] for row in expanded]
            for k in (rows[0] if rows else {})
            if k not in ("prompt", "completion", "completion_ids")
        }
        kwargs = {
            "prompts": prompts,
            "completions": completions,
            "completion_ids": ids,
            **columns,
            "trainer_state": TrainerState(),
            "log_extra": lambda *args, **kw: None,
            "log_metric": lambda *args, **kw: None,
        }
        try:
            values = _call(func, kwargs)
        except KeyError as exc:
            raise ConfigError(
                f"reward {name} cannot score the training data: {shown(exc.args[0])}"
            ) from None
        except Exception as exc:
            if _is_mirg(func):
                raise  # mirg's own reward failing is a bug
            raise _failed(name, exc, when) from None
        check_reward_output(name, values, completions, when)
