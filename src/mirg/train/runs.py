"""Which run an output folder holds, and which of its checkpoints can be resumed.

A run records who it is in ``output_dir/mirg_run.json``: stage, model and data, each with a
content fingerprint, so a path that now holds other weights or data counts as another run.
A folder holding another run, or files a run would write over (:func:`would_replace`) with
no record, is refused before any model loads, unless ``overwrite_output_dir`` (start
afresh) or ``resume_from_checkpoint`` names a checkpoint; so ``auto`` only ever resumes the
same run, from its newest *complete* checkpoint. A kill during a save leaves a
``checkpoint-N`` without ``trainer_state.json`` (the Trainer writes it last) or with weights
cut short: such folders are skipped, logged and removed. Each decision is logged and
appended to the record's ``starts``.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import struct
import time
from pathlib import Path
from typing import Any

from mirg.errors import shown
from mirg.files import LOCK_FILE, fingerprint, write_json
from mirg.train.recipes import ConfigError
from mirg.train.setup import logger

RUN_FILE = "mirg_run.json"
#: What ``resume_from_checkpoint`` may say to resume the newest complete checkpoint.
RESUME_AUTO = ("auto", "true", "last")
#: What transformers, TRL, PEFT, DeepSpeed and mirg write at the top of output_dir: the
#: model card, the weights, the model's and processor's files, the Trainer's own files,
#: checkpoints, TensorBoard logs and LoRA's adapter folder. The model's own file names
#: are added per run (:func:`would_replace`): its processor decides its tokenizer files.
TRAINING_WRITES = frozenset(
    {
        RUN_FILE,
        "README.md",
        "config.json",
        "generation_config.json",
        "model.safetensors.index.json",
        "pytorch_model.bin.index.json",
        "training_args.bin",
        "trainer_state.json",
        "tokenizer.json",
        "vocab.json",
        "vocab.txt",
        "merges.txt",
        "added_tokens.json",
        "special_tokens_map.json",
        "chat_template.json",
        "additional_chat_templates",
        "runs",
        "adapter",
        "latest",
        "zero_to_fp32.py",
        "completions",
    }
)
TRAINING_PATTERNS = (
    "checkpoint-*",
    "global_step*",
    "*.safetensors",
    "*.bin",
    "*.pt",
    "*.pth",
    "*.model",
    "*.jinja",
    "*.tiktoken",
    "*_config.json",
    "*_results.json",
)


def is_main_process() -> bool:
    """Rank 0 of the launch (before the Trainer exists; torchrun and accelerate set RANK)."""
    return int(os.environ.get("RANK", "0")) == 0


def run_identity(config: Any, stage: str) -> dict[str, Any]:
    """Stage, model and data of this run, with content fingerprints."""
    model = str(config.model_name_or_path)
    local = Path(model).expanduser()
    data = Path(str(config.dataset_path)).expanduser()
    return {
        "stage": stage,
        "model": str(local.resolve()) if local.exists() else model,
        "model_revision": None if local.exists() else config.model_revision,
        "model_fingerprint": fingerprint(local) if local.exists() else None,
        "dataset": str(data.resolve()),
        "dataset_fingerprint": fingerprint(data),
    }


def _cut(value: object, limit: int = 300) -> str:
    """A recorded path as a message shows it: a record is a file anyone may have edited."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def identity_differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What makes ``recorded`` another run than ``current`` (empty: the same run)."""
    out = []
    if recorded.get("stage") != current["stage"]:
        out.append(f"stage {shown(recorded.get('stage'))} (this run: {current['stage']!r})")
    same_model = (
        recorded.get("model_fingerprint") == current["model_fingerprint"]
        if current["model_fingerprint"] is not None
        else (recorded.get("model"), recorded.get("model_revision"))
        == (current["model"], current["model_revision"])
    )
    if not same_model:
        what = "other weights" if recorded.get("model") == current["model"] else "another model"
        out.append(f"model {_cut(recorded.get('model'))} (this run: {current['model']}, {what})")
    if recorded.get("dataset_fingerprint") != current["dataset_fingerprint"]:
        what = "changed since" if recorded.get("dataset") == current["dataset"] else "other data"
        out.append(
            f"dataset {_cut(recorded.get('dataset'))} (this run: {current['dataset']}, {what})"
        )
    return out


def read_record(out: Path) -> dict[str, Any] | None:
    """The run record of a folder, or None (none, or unreadable)."""
    try:
        record = json.loads((out / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def checkpoints(out: Path) -> list[Path]:
    """``checkpoint-N`` folders, newest (highest N) first."""
    if not out.is_dir():
        return []
    found = [p for p in out.iterdir() if p.is_dir() and re.fullmatch(r"checkpoint-\d+", p.name)]
    return sorted(found, key=lambda p: int(p.name.rpartition("-")[2]), reverse=True)


def _resume_value(config: Any) -> str:
    value = config.resume_from_checkpoint
    return "" if value is None else str(value).strip()


def explicit_checkpoint(config: Any) -> str | None:
    """The checkpoint path ``resume_from_checkpoint`` names, or None (auto, or never)."""
    value = _resume_value(config)
    return None if value.lower() in (*RESUME_AUTO, "", "false", "none") else value


def would_replace(out: Path, model: str | None = None) -> list[str]:
    """The entries of ``out`` a training run may write over (:data:`TRAINING_WRITES`,
    :data:`TRAINING_PATTERNS`, and the names of the local ``model`` folder's files, which
    its saved copy repeats), sorted."""
    if not out.is_dir():
        return []
    names = set(TRAINING_WRITES)
    if model and (local := Path(model).expanduser()).is_dir():
        names |= {child.name for child in local.iterdir()}
    return sorted(
        child.name
        for child in out.iterdir()
        if child.name != LOCK_FILE
        and (child.name in names or any(fnmatch.fnmatch(child.name, p) for p in TRAINING_PATTERNS))
    )


def check_output_dir(config: Any, stage: str) -> dict[str, Any]:
    """Refuse an output_dir that holds another run, or files a run would write over that no
    mirg run wrote, before any model loads; returns this run's identity (for
    :func:`start_run`)."""
    identity = run_identity(config, stage)
    out = Path(config.output_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output_dir {out} is a file; give the path of a folder to write")
    if config.overwrite_output_dir:
        return identity
    record = read_record(out)
    found = checkpoints(out)
    has_model = any((out / f).is_file() for f in ("config.json", "adapter_config.json"))
    if record is not None:
        differences = identity_differences(record, identity)
        if not differences:
            return identity
        holds = f"another run: {'; '.join(differences)}"
    elif found:
        holds = f"checkpoints no mirg run recorded ({', '.join(p.name for p in found[:3])})"
    elif has_model:
        holds = "a model no mirg training run wrote (config.json)"
    else:
        replaced = would_replace(out, str(config.model_name_or_path))
        if not replaced:
            return identity
        more = f" and {len(replaced) - 3} more" if len(replaced) > 3 else ""
        raise ConfigError(
            f"output_dir {out} holds files a training run would replace "
            f"({', '.join(replaced[:3])}{more}) and no {RUN_FILE}: no mirg training run wrote "
            "them. Write to another output_dir, or set overwrite_output_dir: true to replace "
            "them"
        )
    if checkpoint := explicit_checkpoint(config):  # asked for by path: resume it on purpose
        logger.warning("%s holds %s; resuming %s as asked", out, holds, checkpoint)
        return identity
    raise ConfigError(
        f"output_dir {out} holds {holds}. Write to another output_dir, or set "
        "overwrite_output_dir: true to start afresh there (its checkpoints are removed), or "
        "name a checkpoint to resume it anyway (resume_from_checkpoint: "
        f"{found[0] if found else out / 'checkpoint-N'})"
    )


def kept(config: Any) -> str:
    """What an interrupted training run left in its output_dir, in words (for the line
    Ctrl-C prints)."""
    out = Path(config.output_dir)
    chosen, _ = newest_complete_checkpoint(out)
    if chosen is None:
        return (
            f"no complete checkpoint in {out} yet (save_steps sets how often one is written); "
            "rerunning the same command starts afresh"
        )
    if _resume_value(config).lower() in RESUME_AUTO:
        return f"{chosen} kept; rerun the same command to resume from it"
    return f"{chosen} kept; rerun with --resume_from_checkpoint auto to resume from it"


def _safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file is not whole (header unreadable, data cut short), or None."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > size - 8:
                return f"{path.name} is cut short"
            header = json.loads(handle.read(length))
    except (OSError, struct.error, ValueError):
        return f"{path.name} has no readable header"
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    if 8 + length + max(ends, default=0) > size:
        return f"{path.name} is cut short"
    return None


def checkpoint_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot be resumed from, or None when it is complete.

    transformers 5 writes a checkpoint in this order: the model (and processor), the
    optimizer and scheduler, the RNG states, and ``trainer_state.json`` last; so a
    checkpoint is complete when that file parses and every weight file is whole.
    """
    state = folder / "trainer_state.json"
    if not state.is_file():
        return "no trainer_state.json (the Trainer writes it last)"
    try:
        json.loads(state.read_text(encoding="utf-8"))["global_step"]
    except (OSError, ValueError, KeyError, TypeError):
        return "trainer_state.json is cut short"
    weights = sorted(folder.glob("*.safetensors"))
    others = [folder / "pytorch_model.bin", *folder.glob("global_step*")]  # DeepSpeed's own
    if not weights and not any(p.exists() for p in others):
        return "no model weights"
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError):
            return f"{index.name} is cut short"
        missing = sorted(s for s in shards if not (folder / s).is_file())
        if missing:
            return f"weight shards missing: {', '.join(missing)}"
    for path in weights:
        problem = _safetensors_problem(path)
        if problem:
            return problem
    return None


def newest_complete_checkpoint(out: Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest complete checkpoint, and the incomplete ones newer than it (why each)."""
    skipped: list[tuple[Path, str]] = []
    for folder in checkpoints(out):
        problem = checkpoint_problem(folder)
        if problem is None:
            return folder, skipped
        skipped.append((folder, problem))
    return None, skipped


def start_run(config: Any, identity: dict[str, Any], **facts: Any) -> str | None:
    """Make output_dir ready for this run and return the checkpoint to resume from.

    Removes the old run's checkpoints under ``overwrite_output_dir``, picks the newest
    complete checkpoint for ``auto`` (removing incomplete ones after it), checks an
    explicit one, logs the decision and records it (with ``facts``, e.g. the attention
    used) in the run record. Only the main process writes or removes anything.
    """
    out = Path(config.output_dir)
    main = is_main_process()
    value = _resume_value(config)
    resume: str | None = None
    if config.overwrite_output_dir:
        old = checkpoints(out)
        if main:
            for folder in old:
                shutil.rmtree(folder, ignore_errors=True)
        if old:
            logger.warning(
                "overwrite_output_dir: removed %d checkpoint(s) of the previous run in %s",
                len(old),
                out,
            )
    elif explicit_checkpoint(config):
        folder = Path(value)
        if not folder.is_dir():
            raise ConfigError(f"resume_from_checkpoint: checkpoint folder {folder} does not exist")
        problem = checkpoint_problem(folder)
        if problem:
            raise ConfigError(
                f"resume_from_checkpoint: {folder} is not a complete checkpoint ({problem}); "
                "a run killed while saving leaves such a folder: name an earlier one, or use "
                "auto to pick the newest complete one"
            )
        resume = str(folder)
    elif value.lower() in RESUME_AUTO:
        chosen, skipped = newest_complete_checkpoint(out)
        for folder, problem in skipped:
            logger.warning("skipping incomplete checkpoint %s: %s; removing it", folder, problem)
            if main:
                shutil.rmtree(folder, ignore_errors=True)
        resume = str(chosen) if chosen else None
        if chosen is None:
            logger.info("no complete checkpoint in %s; starting fresh", out)
    if resume:
        state = json.loads((Path(resume) / "trainer_state.json").read_text(encoding="utf-8"))
        logger.warning("resuming from %s (step %s)", resume, state.get("global_step"))
    if main:
        record = read_record(out) or {}
        starts = list(record.get("starts", [])) if not config.overwrite_output_dir else []
        starts.append({"at": time.strftime("%Y-%m-%d %H:%M:%S"), "resumed_from": resume, **facts})
        write_json(out / RUN_FILE, {**identity, "starts": starts})
    return resume
