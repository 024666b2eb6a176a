"""Where commands write: one rule for what may be replaced.

:func:`check_output`: a command refuses to write over one of its own inputs, over a folder
where a file is expected (or the reverse), or over a different kind of output (a trained
model under ``mirg tiny-model --out``, samples under trajectories, a photo under ``mirg
predict --save``) unless told ``--overwrite``. Rewriting the same kind of output (a rerun)
needs no flag. (Files themselves are written by :func:`mirg.files.atomic_write`.)

Kinds are read from the content, not the name: the first record of a JSONL file, the keys
of a JSON file, a parquet file's columns, the EXIF ``Software`` tag of a picture, the marker
files of a folder.

:func:`claim_folder`: the same rule for an output *folder* (``mirg eval --out``, ``mirg
tiny-model --out``, ``mirg demo --out``): a folder proves it is the command's own by the
record the command writes first (eval's ``run.json``, the demo's ``mirg_demo.json`` …).
Without that record, a folder holding any file a run would write over is refused unless
told to overwrite. Training (``mirg.train.runs.check_output_dir``: the names the libraries
write, README.md, config.json, tokenizer files …, against ``mirg_run.json``) and ``mirg
synth`` (``mirg.data.synth.world``: its manifest) apply the same rule with their own
records.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Collection, Iterable
from pathlib import Path

from mirg.errors import MirgError
from mirg.files import LOCK_FILE

#: Kinds of output, as the messages name them.
SAMPLES = "samples"
SFT = "sft records"
GRPO = "grpo records"
VERL = "verl records"
SHAREGPT = "sharegpt records"
PREDICTIONS = "predictions"
METRICS = "metrics"
PICTURE = "a mirg predict picture"
DATASET = "a mirg synth dataset"
TINY_MODEL = "a tiny model"
TRAINED = "a trained model or training run"
OTHER = "a file mirg did not write"
#: The EXIF ``Software`` tag (and its value) ``mirg predict`` writes into its pictures.
SOFTWARE_TAG = 0x0131
PICTURE_TAG = "mirg predict"

#: Whole-file JSON is parsed only below this size (a metrics or sharegpt file).
_WHOLE_JSON_LIMIT = 64 << 20
_TRAINING_MARKERS = {
    "mirg_run.json",
    "training_args.bin",
    "trainer_state.json",
    "adapter_config.json",
}


class OutputError(MirgError):
    """An output path that would destroy something: an input, or another kind of output."""


def _same_path(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _first_record(path: Path) -> object:
    """The first non-blank line of a file decoded as JSON, else the whole file (an indented
    JSON document); None when neither is JSON."""
    with path.open("rb") as handle:
        for raw in handle:
            if raw.strip():
                try:
                    return json.loads(raw)
                except ValueError:  # not JSON, not UTF-8, or the first line of a document
                    break
    if path.stat().st_size > _WHOLE_JSON_LIMIT:
        return None
    try:
        return json.loads(path.read_bytes())
    except ValueError:
        return None


def _record_kind(record: object) -> str:
    if isinstance(record, list):
        first = record[0] if record else None
        return SHAREGPT if isinstance(first, dict) and "messages" in first else OTHER
    if not isinstance(record, dict):
        return OTHER
    if {"protocol", "tasks"} <= set(record):
        return METRICS
    if "completion" in record and "prompt" in record:
        return SFT
    if "prompt" in record and "images" in record:
        return GRPO
    if "response" in record:
        return PREDICTIONS
    if {"question", "images", "target_box"} <= set(record):
        return SAMPLES
    return OTHER


def _file_kind(path: Path) -> str | None:
    """What a regular file holds; None for an empty file (nothing to lose)."""
    if path.stat().st_size == 0:
        return None
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(b"PAR1"):
        try:
            import pyarrow.parquet as pq

            names = set(pq.read_schema(path).names)
        except Exception:
            return OTHER
        return VERL if {"reward_model", "prompt", "images"} <= names else OTHER
    if head.startswith((b"\x89PNG", b"\xff\xd8", b"RIFF", b"GIF8", b"BM", b"II*", b"MM\x00*")):
        try:
            from PIL import Image

            with Image.open(path) as image:
                ours = image.getexif().get(SOFTWARE_TAG) == PICTURE_TAG
        except Exception:
            return OTHER
        return PICTURE if ours else OTHER
    return _record_kind(_first_record(path))


def _folder_kind(path: Path) -> str | None:
    """What a folder holds; None when it is empty."""
    names = {child.name for child in path.iterdir()} - {LOCK_FILE}
    if not names:
        return None
    if names & _TRAINING_MARKERS or any(n.startswith("checkpoint-") for n in names):
        return TRAINED
    if "manifest.json" in names or ".mirg-synth.json" in names:
        return DATASET
    if "mirg_tiny_model.json" in names:
        return TINY_MODEL
    if "config.json" in names:
        return "a model"
    if "run.json" in names or "predictions.jsonl" in names:
        return "a mirg eval output"
    return "a folder of other files"


def kind_of(path: str | Path) -> str | None:
    """What ``path`` holds, as :func:`check_output` compares it; None when there is nothing
    to lose (no such path, an empty file or folder, a device or pipe)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(mode):
        return _folder_kind(path)
    if stat.S_ISREG(mode):
        return _file_kind(path)
    return None


def check_output(
    out: str | Path,
    kind: str,
    *,
    inputs: Iterable[tuple[str, str | Path | None]] = (),
    overwrite: bool = False,
    flag: str = "--out",
    folder: bool = False,
) -> Path:
    """Refuse ``out`` when writing ``kind`` there would destroy something.

    ``inputs`` are (option, path) pairs the command reads; ``folder`` says the output is a
    folder. A folder where a file is expected (and the reverse) is refused always; an input,
    or a different kind of output, unless ``overwrite``.
    """
    out = Path(out)
    if out.is_dir() and not folder:
        raise OutputError(f"{out}: {flag} is a folder; give the path of a file to write")
    if folder and out.exists() and not out.is_dir():
        raise OutputError(f"{out}: {flag} is a file; give the path of a folder to write")
    if not overwrite:
        for option, path in inputs:
            if path is not None and _same_path(out, Path(path)):
                raise OutputError(
                    f"{out}: {flag} is the input {option}; writing would destroy it. "
                    "Write to another path (or pass --overwrite)"
                )
        existing = kind_of(out)
        if existing is not None and existing != kind:
            raise OutputError(
                f"{out} holds {existing}, not {kind}; refusing to replace it. "
                f"Choose another {flag}, or pass --overwrite to replace it"
            )
    return out


def claim_folder(
    out: str | Path,
    *,
    command: str,
    record: str,
    ours: bool,
    writes: Collection[str],
    overwrite: bool = False,
) -> list[str]:
    """Refuse output folder ``out`` when a run of ``command`` would replace files it did not
    write; returns those files (empty when there are none, or when ``ours``).

    ``ours``: the folder holds ``record``, the file ``command`` writes first, so it is this
    command's earlier output (a rerun resumes it; the caller checks it is the same run).
    ``writes``: the names a run writes at the top of the folder (the folder's lock file never
    counts). ``overwrite`` lets the caller replace them.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: --out is a file; give the path of a folder to write")
    if not out.is_dir() or ours:
        return []
    found = sorted(child.name for child in out.iterdir() if child.name in writes)
    if found and not overwrite:
        more = f" and {len(found) - 3} more" if len(found) > 3 else ""  # name three
        raise OutputError(
            f"{out} holds files a run would replace ({', '.join(found[:3])}{more}) that {command} "
            f"did not write (it holds no {record} of {command}'s); refusing to replace them. "
            "Choose another --out, or pass --overwrite to replace them"
        )
    return found
