"""The ``mirg`` command line. Each subcommand lives next to the code it drives.

Subcommand modules expose ``add_arguments(parser)`` and ``run(args) -> int``; they are
imported only when their subcommand runs, so ``mirg score`` never pays for torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import importlib
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from mirg.errors import MirgError

C = TypeVar("C")

# name -> (module, help).
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("mirg.data.synth_cli", "write the synthetic multi-image world (train/val/test)"),
    "trajectories": ("mirg.data.trajectories_cli", "reasoning trajectories for SFT from samples"),
    "export": ("mirg.data.export_cli", "export samples for TRL SFT/GRPO, verl, LLaMA-Factory"),
    "coco": ("mirg.data.coco_cli", "build multi-image grounding samples from COCO-style boxes"),
    "convert": (
        "mirg.data.convert_cli",
        "convert data to samples: MGrounding-630k, LLaVA/VLM-R1, RefCOCO, COCO captions, "
        "MIG-Bench, or a reader of your own (my_pkg.mod.READER)",
    ),
    "score": (
        "mirg.eval.score_cli",
        "score predictions on a benchmark (MIG-Bench: official or strict protocol)",
    ),
    "eval": (
        "mirg.eval.eval_cli",
        "evaluate a model on MIG-Bench, MC-Bench, RefCOCO, a mirg split or your own benchmark",
    ),
    "predict": ("mirg.eval.predict_cli", "ask a model about your own images; saves the drawn box"),
    "report": ("mirg.eval.report_cli", "rebuild report.html from an evaluation output folder"),
    "demo": ("mirg.demo_cli", "run the main job end to end on the built-in synthetic world"),
    "train": ("mirg.train.cli", "train with TRL: sft on trajectories, grpo with the dual rewards"),
    "tiny-model": (
        "mirg.models.tiny_cli",
        "write a tiny random-init Qwen-VL model and processor, built offline",
    ),
}


def add_output_arguments(
    parser: argparse.ArgumentParser,
    *,
    skipped: str | None = None,
    overwrite_help: str = "replace --out even when it is an input or holds another kind of file",
) -> None:
    """``--overwrite``, and where a command can skip bad input (``skipped`` names what it
    skips: samples, records, entries) ``--skip-bad`` and ``--skip-log``, worded alike in
    every command that writes."""
    if skipped:
        parser.add_argument(
            "--skip-bad",
            action="store_true",
            help=f"skip bad {skipped}, recording each with its reason in --skip-log",
        )
        parser.add_argument("--skip-log", help="where skips are logged (default: OUT.skipped.log)")
    parser.add_argument("--overwrite", action="store_true", help=overwrite_help)


def int_range(text: str) -> tuple[int, int]:
    """An argument type: '2-4' -> (2, 4); '3' -> (3, 3)."""
    lo, _, hi = text.partition("-")
    try:
        return (int(lo), int(hi or lo))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or MIN-MAX, got {text[:40]!r}") from None


def key_value(text: str) -> tuple[str, str]:
    """An argument type: 'KEY=VALUE' -> (KEY, VALUE), for an extension's own options."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text[:40]!r}")
    return key.strip(), value


def config_from_args(cls: type[C], args: argparse.Namespace, **given: Any) -> C:
    """A config dataclass from a command's parsed arguments: each field from the argument
    of the same name where the command has one, ``given`` for the rest, defaults beyond."""
    names = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    values = {name: getattr(args, name) for name in names if hasattr(args, name)}
    return cls(**{**values, **given})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mirg", description="Multi-image reasoning and grounding with reinforcement learning."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, description=help_text)
    return parser


#: OS errors that mean a path or a disk cannot serve as given, and what to do about each.
_OS_ADVICE: dict[int, str] = {
    errno.ENOENT: "check the path",
    errno.EISDIR: "give the path of a file, not a folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EACCES: "check its permissions",
    errno.EPERM: "check its permissions and attributes (lsattr)",
    errno.EROFS: "write somewhere writable",
    errno.ENOSPC: "free some space or write elsewhere; the previous file, if any, is intact",
    errno.EDQUOT: "free some space or write elsewhere; the previous file, if any, is intact",
    errno.EFBIG: "write elsewhere",
    errno.ENAMETOOLONG: "use a shorter path",
    errno.ELOOP: "check the symbolic links on the path",
    errno.EEXIST: "a file is in the way; choose another path",
    errno.ENOTEMPTY: "choose another path",
    errno.EIO: "check the disk",
}
_IMAGE_ERROR_TYPES = ("UnidentifiedImageError", "DecompressionBombError")


def _os_message(exc: OSError) -> str | None:
    """One line for an OS error of a path or a disk; None for any other OS error."""
    path_error = isinstance(
        exc, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)
    )
    if exc.errno is None:
        return str(exc) if path_error else None  # a mirg message without an errno
    if not path_error and exc.errno not in _OS_ADVICE:
        return None
    where = exc.filename if exc.filename is not None else "a file"
    advice = _OS_ADVICE.get(exc.errno)
    return f"{where}: {exc.strerror or os.strerror(exc.errno)}" + (f"; {advice}" if advice else "")


def user_error(exc: BaseException) -> str | None:
    """The one-line message of a user error: bad input, a path or disk that cannot serve, a
    malformed YAML or image file. None for anything else, which is a bug in mirg and keeps
    its traceback."""
    kind = type(exc)
    module = kind.__module__ or ""
    if isinstance(exc, MirgError):
        message = str(exc)
    elif module.startswith("yaml") and kind.__name__.endswith("Error"):
        message = f"malformed YAML: {' '.join(str(exc).split())}"
    elif module.startswith("PIL") and kind.__name__ in _IMAGE_ERROR_TYPES:
        message = f"image cannot be used: {exc}"
    elif isinstance(exc, OSError) and str(exc).startswith("image file is truncated"):
        message = f"{exc}: an image file is cut short; re-create or remove it"
    elif isinstance(exc, OSError):
        message = _os_message(exc)
    elif isinstance(exc, UnicodeDecodeError):
        message = (
            f"a file is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
            f"{exc.start}); save it as UTF-8"
        )
    elif isinstance(exc, json.JSONDecodeError):
        message = f"a file is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
    else:
        return None
    return None if message is None else _one_line(str(message))


#: The longest error line printed: a message echoing a huge value keeps its start (the
#: file and field) and its end (what to do).
MAX_MESSAGE = 1000


def _one_line(message: str) -> str:
    text = " ".join(message.splitlines())
    if len(text) <= MAX_MESSAGE:
        return text
    head, tail = MAX_MESSAGE * 2 // 3, MAX_MESSAGE // 3
    return f"{text[:head]} … {text[-tail:]}"


#: Exit status after Ctrl-C, as shells report a process ended by SIGINT (128 + 2).
INTERRUPTED = 130
#: What Ctrl-C leaves, for commands whose module says nothing itself (``interrupted``).
_KEPT_DEFAULT = (
    "each output is written whole or not at all, so a file being written was left as it "
    "was; rerun the same command"
)


@contextmanager
def _watch_ctrl_c() -> Iterator[list[int]]:
    """Note a SIGINT (Ctrl-C) before it raises KeyboardInterrupt as Python's own handler
    does, so that :func:`main` can tell the user's Ctrl-C (one line, exit 130) from a
    KeyboardInterrupt raised by code (a bug: its traceback stays). Left alone where Python's
    handler is not in place (another thread, an ignored signal, an application's own)."""
    seen: list[int] = []
    ours = (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )

    def noted(signum: int, frame: Any) -> None:
        seen.append(signum)
        signal.default_int_handler(signum, frame)

    if ours:
        signal.signal(signal.SIGINT, noted)
    try:
        yield seen
    finally:
        if ours:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def _kept(module: Any, args: argparse.Namespace) -> str | None:
    """What an interrupted command kept, in words (None: say nothing, e.g. not the main
    process of a distributed run)."""
    note = getattr(module, "interrupted", None)
    try:
        return _KEPT_DEFAULT if note is None else note(args)
    except Exception:  # the note must never hide the interruption itself
        return _KEPT_DEFAULT


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # First pass finds the command; the second parses its own arguments.
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        parser.parse_args(argv)  # prints help or the "invalid choice" error and exits
        return 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    sub = argparse.ArgumentParser(prog=f"mirg {argv[0]}", description=COMMANDS[argv[0]][1])
    module.add_arguments(sub)
    args = sub.parse_args(argv[1:])
    with _watch_ctrl_c() as ctrl_c:
        try:
            return int(module.run(args) or 0)
        except KeyboardInterrupt:
            # Ctrl-C: what was written is whole and a rerun resumes it; say so in one line.
            if not ctrl_c:
                raise  # raised by code, not by the user: a bug keeps its traceback
            kept = _kept(module, args)
            if kept:
                print(f"mirg {argv[0]}: interrupted; {kept}", file=sys.stderr)
            return INTERRUPTED
        except Exception as exc:  # the one error boundary (user_error)
            message = user_error(exc)
            if message is None:
                raise
            print(f"mirg {argv[0]}: error: {message}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    raise SystemExit(main())
