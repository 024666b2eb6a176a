"""What the readers share: source files read record by record (a JSON list parsed
incrementally, so a 600k-record file never sits in memory whole), image files confined to
the root and sized from their headers (no pixel decoded), and the :class:`Tally` of what a
conversion kept and left out. Records a reader cannot use by design (an answer without a
box) are always left out and counted; bad records raise a
:class:`~mirg.data.schema.DataError` unless ``skip_bad``.
"""

from __future__ import annotations

import json
import re
from argparse import Namespace
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mirg.core.prompts import reserved_tokens_problem
from mirg.data.schema import (
    _IMAGE_NAME_RE,
    IMAGE_CHECKS,
    DataError,
    Sample,
    SkipLog,
    check_image,
    check_relative_path,
    image_size,
    iter_jsonl,
    resolve_image_path,
)
from mirg.errors import MirgError

_CHUNK = 1 << 20
_WHITESPACE = re.compile(r"[ \t\r\n]*")


def iter_records(path: str | Path) -> Iterator[tuple[str, object]]:
    """(where, record) for each record of a JSON list or JSONL file.

    ``where`` is ``file:line`` (JSONL) or ``file:line (item N)`` (JSON list, 0-based N). A
    JSONL line that is not JSON yields a :class:`DataError` in place of the record (the
    reader may skip it and go on); a JSON list that breaks off raises, since nothing after
    the break can be read.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder; expected a JSON or JSONL file")
    try:
        with path.open("rb") as handle:
            head = handle.read(3).removeprefix(b"\xef\xbb\xbf")
            while not head.strip() and (chunk := handle.read(4096)):
                head = chunk
            head = head.lstrip()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    if head.startswith(b"["):
        yield from _JsonList(path)
        return
    for number, record in iter_jsonl(path):
        yield f"{path}:{number}", record


class _JsonList:
    """The items of a JSON list, decoded one at a time from a sliding text buffer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.buf = ""
        self.pos = 0
        self.line = 1
        self.eof = False
        self.decode = json.JSONDecoder().raw_decode

    def _fill(self, handle: IO[str]) -> bool:
        """Read more text, dropping what is consumed; False at the end of the file."""
        try:
            chunk = handle.read(_CHUNK)
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{self.path}:{self.line}: not UTF-8 text ({exc.reason}); save it as UTF-8"
            ) from None
        if not chunk:
            self.eof = True
            return False
        self.buf = self.buf[self.pos :] + chunk
        self.pos = 0
        return True

    def _skip_space(self, handle: IO[str]) -> bool:
        """Move past whitespace; False when the file ends first."""
        while True:
            end = _WHITESPACE.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            self.line += self.buf.count("\n", self.pos, end)
            self.pos = end
            if self.pos < len(self.buf):
                return True
            if self.eof or not self._fill(handle):
                return False

    def _error(self, why: str) -> DataError:
        return DataError(f"{self.path}:{self.line}: {why}")

    def __iter__(self) -> Iterator[tuple[str, object]]:
        with self.path.open(encoding="utf-8-sig") as handle:
            self._fill(handle)
            self._skip_space(handle)
            self.pos += 1  # the "[" iter_records saw
            index = 0
            while True:
                if not self._skip_space(handle):
                    raise self._error("the JSON list is not closed with ']' (file cut short?)")
                if self.buf[self.pos] == "]":
                    self.pos += 1
                    if self._skip_space(handle):
                        raise self._error("text after the end of the JSON list")
                    return
                if index > 0:
                    if self.buf[self.pos] != ",":
                        raise self._error(f"expected ',' or ']' after item {index - 1}")
                    self.pos += 1
                    if not self._skip_space(handle):
                        raise self._error("the JSON list ends after a ','")
                start = self.line
                while True:
                    try:
                        record, end = self.decode(self.buf, self.pos)
                    except json.JSONDecodeError as exc:
                        if self._fill(handle):
                            continue
                        self.line += self.buf.count("\n", self.pos, exc.pos)
                        raise self._error(
                            f"item {index} is not valid JSON ({exc.msg}); the rest of the list "
                            "cannot be read"
                        ) from None
                    if end == len(self.buf) and self._fill(handle):
                        continue  # a number at the edge of the buffer may go on
                    break
                yield f"{self.path}:{start} (item {index})", record
                self.line += self.buf.count("\n", self.pos, end)
                self.pos = end
                index += 1


def iter_parquet(path: str | Path, columns: Sequence[str]) -> Iterator[tuple[str, dict]]:
    """(``file: row N``, row) for each row, reading only ``columns`` (those present)."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found" if not path.exists() else f"{path}: not a file")
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises its own error types for a foreign file
        raise DataError(f"{path}: not a readable parquet file: {exc}") from None
    present = [c for c in columns if c in parquet.schema_arrow.names]
    batches = parquet.iter_batches(batch_size=2048, columns=present)
    for index, row in enumerate(row for batch in batches for row in batch.to_pylist()):
        yield f"{path}: row {index}", row


class ImageFiles:
    """The image files of a source, under ``root``: each path confined to the root,
    checked once as ``check`` says, and sized (header only, unless ``check`` decodes) when
    asked. Sizes are remembered, since records share images."""

    def __init__(self, root: str | Path, check: str = "none") -> None:
        if check not in IMAGE_CHECKS:
            raise MirgError(f"check_images must be one of {IMAGE_CHECKS}, got {check!r}")
        self.root = Path(root)
        self.check_mode = check
        self._checked: set[str] = set()
        self._sizes: dict[str, tuple[int, int]] = {}

    def check(self, relative: str, where: str) -> None:
        """Check the file as asked (nothing with ``none``); a decoded file's size is kept."""
        if self.check_mode == "none" or relative in self._checked:
            return
        path = resolve_image_path(self.root, relative, where)
        size = check_image(path, where, self.check_mode)
        if size is not None:
            self._sizes[relative] = size
        self._checked.add(relative)

    def record(
        self, paths: Sequence[str], where: str, key: str = "images", sizes: bool = False
    ) -> list[list[int]] | None:
        """Check a record's images as asked; with ``sizes``, their ``[w, h]``."""
        out = []
        for k, rel in enumerate(paths):
            here = f"{where}: field '{key}[{k}]'"
            self.check(rel, here)
            if sizes:
                out.append(list(self.size(rel, here)))
        return out if sizes else None

    def size(self, relative: str, where: str) -> tuple[int, int]:
        """(width, height) of the file, from its header."""
        size = self._sizes.get(relative)
        if size is None:
            path = resolve_image_path(self.root, relative, where)
            size = self._sizes[relative] = image_size(path, where)
        return size


def input_files(args: Namespace) -> Iterator[tuple[str, ImageFiles]]:
    """Each ``--input`` file of ``mirg convert`` with its images: under ``--images``, else
    beside the file."""
    for path in args.input:
        yield path, ImageFiles(args.images or Path(path).parent, args.check_images)


@dataclass
class Tally:
    """What a conversion read, wrote and left out, by reason.

    ``unit`` names what is counted as left out (turns, expressions, samples). A bad record
    raises its DataError unless ``skip_bad``; then it is left out as ``"bad record"``.
    """

    unit: str = "records"
    skip_bad: bool = False
    records: int = 0
    items: int = 0
    written: int = 0
    reasons: Counter = field(default_factory=Counter)
    log: SkipLog = field(default_factory=SkipLog)
    notes: Counter = field(default_factory=Counter)

    def leave_out(self, where: str, reason: str, detail: str = "") -> None:
        self.reasons[reason] += 1
        self.log.add(where, f"{reason}: {detail}" if detail else reason)

    def bad(self, error: DataError, where: str) -> None:
        """A bad record or turn: raised, or left out and logged under ``skip_bad``."""
        if not self.skip_bad:
            raise error
        self.leave_out(where, "bad record", str(error))

    @property
    def left_out(self) -> int:
        return sum(self.reasons.values())

    def summary(self, out: str | Path, log_path: str | Path | None = None) -> str:
        """The command's summary line; writes the skip log when anything was left out."""
        text = f"wrote {self.written} samples to {out} from {self.records} records"
        if self.items != self.records:
            text += f" ({self.items} {self.unit})"
        if self.notes:
            text += "; " + ", ".join(f"{why}: {n}" for why, n in sorted(self.notes.items()))
        if self.left_out:
            log_path = log_path or f"{out}.skipped.log"
            self.log.write(log_path)
            reasons = ", ".join(f"{why} {n}" for why, n in self.reasons.most_common())
            unit = self.unit[:-1] if self.left_out == 1 else self.unit
            text += f"; left out {self.left_out} {unit}: {reasons} (each in {log_path})"
        return text


def check_sample(sample: Sample, where: str, *, paths: bool = True) -> Sample:
    """Check what a reader takes from its source, as :func:`~mirg.data.schema.read_samples`
    will: a non-empty id and question that names no image the sample lacks and holds none of
    Qwen-VL's reserved tokens, and image paths inside the root by their text (``paths=False``
    where the reader confined them already). Boxes were checked when converted. Cheaper than
    :func:`~mirg.data.schema.sample_from_json`, whose link resolution would cost more than
    the rest of a conversion (every later load follows symbolic links)."""
    if not sample.id:
        raise DataError(f"{where}: field 'id': empty")
    if not sample.question.strip():
        raise DataError(f"{where}: field 'question': expected non-empty text")
    if (problem := reserved_tokens_problem(sample.question)) is not None:
        raise DataError(f"{where}: field 'question': {problem}")
    n = sample.n_images
    for found in _IMAGE_NAME_RE.findall(sample.question):
        if not 1 <= int(found) <= n:
            raise DataError(
                f"{where}: field 'question': names Image-{found} but the sample has {n} image(s)"
            )
    if paths:
        for k, rel in enumerate(sample.images):
            check_relative_path(rel, f"{where}: field 'images[{k}]'")
    return sample


def json_object(where: str, record: object) -> dict[str, Any]:
    """A record from :func:`iter_records` as a JSON object, or the DataError saying why not."""
    if isinstance(record, DataError):
        raise record
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    return record


def source_where(where: str, record: dict[str, Any]) -> str:
    """``where`` with the record's id, when it has one."""
    value = record.get("id")
    return f"{where}: record {value!r}" if isinstance(value, (str, int)) else where
