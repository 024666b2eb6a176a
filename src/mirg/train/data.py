"""Training data: JSONL records -> TRL datasets, validated before any training starts.

SFT reads trajectory records (``mirg trajectories``, or the TRL SFT export):
``prompt`` (the question text, or conversational messages), ``completion`` (the
answer text, or messages) and ``images``. GRPO reads samples (``mirg synth`` splits, or the
TRL GRPO export): ``question`` or ``prompt``, ``images``, ``target_image``, ``target_box``.
A question is turned into messages by the core's one prompt builder, so SFT, GRPO and
evaluation prompt the model identically.

Every problem is found here, before a model is loaded: an unreadable line, a missing
image, placeholders and images that disagree in number, a missing reward column, data
written for another coordinate profile or other pixel caps.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mirg.core.profiles import CoordinateProfile
from mirg.core.prompts import assistant_message, build_messages, count_image_placeholders
from mirg.errors import MirgError


class DatasetError(MirgError):
    """Bad training data; the message names the file, line, sample and field."""


def iter_records(path: str | Path) -> Iterator[tuple[str, dict]]:
    """(``file:line``, record) for each non-blank JSONL line."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"dataset file {p} does not exist")
    with p.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{p}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{where}: not valid JSON: {exc.msg}") from None
            if not isinstance(record, dict):
                raise DatasetError(f"{where}: expected a JSON object")
            if "id" in record:
                where = f"{where} (id {record['id']!r})"
            yield where, record


def image_bases(path: str | Path, image_root: str | Path | None) -> list[Path]:
    """Where relative image paths may point: image_root, then the JSONL's folder and parent.

    ``mirg synth`` writes paths relative to its folder; trajectories written next to the
    split (or one folder down) therefore resolve without configuration.
    """
    folder = Path(path).resolve().parent
    bases = [folder, folder.parent]
    if image_root is not None:
        bases.insert(0, Path(image_root).expanduser())
    return bases


def resolve_images(
    images: object, bases: Sequence[Path], where: str, check: str = "exists"
) -> list[str]:
    """Absolute image paths of a record; relative ones are looked up under ``bases``."""
    if not isinstance(images, list) or not all(isinstance(i, str) and i for i in images):
        raise DatasetError(f"{where}: field 'images': expected a list of image paths")
    out = []
    for k, image in enumerate(images):
        p = Path(image).expanduser()
        candidates = [p] if p.is_absolute() else [base / p for base in bases]
        if check == "none":
            out.append(str(candidates[0]))
            continue
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            tried = ", ".join(str(c) for c in candidates)
            raise DatasetError(
                f"{where}: field 'images[{k}]': image file {image!r} not found (tried {tried}); "
                "set image_root to the folder the paths are relative to"
            )
        if check == "decode":
            _decode(found, f"{where}: field 'images[{k}]'")
        out.append(str(found.resolve()))
    return out


def _decode(path: Path, where: str) -> None:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"{where}: image {path} cannot be read: {exc}") from None


def image_size(path: str) -> tuple[int, int]:
    """(width, height) from the image header, without decoding the pixels."""
    from PIL import Image

    with Image.open(path) as image:
        return image.size


def _clean_messages(messages: object, where: str, name: str) -> list[dict]:
    """Conversational messages normalised to ``{"type": "text"|"image"}`` parts.

    Arrow stores every part with the union of keys; keeping only ``type`` and ``text``
    lets TRL fill the image parts with the images, in order.
    """
    if not isinstance(messages, list) or not messages:
        raise DatasetError(f"{where}: field {name!r}: expected text or a list of messages")
    out = []
    for m in messages:
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise DatasetError(f"{where}: field {name!r}: each message needs role and content")
        content = m["content"]
        if isinstance(content, str):
            if "<image>" in content:
                raise DatasetError(
                    f"{where}: field {name!r}: '<image>' placeholders in text; use "
                    '{"type": "image"} parts (the conversational format)'
                )
            parts = [{"type": "text", "text": content}]
        elif isinstance(content, list):
            parts = []
            for part in content:
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "image":
                    parts.append({"type": "image", "text": None})
                elif kind == "text":
                    parts.append({"type": "text", "text": str(part.get("text", ""))})
                else:
                    raise DatasetError(
                        f"{where}: field {name!r}: content part of type {kind!r}; "
                        "expected text or image"
                    )
        else:
            raise DatasetError(f"{where}: field {name!r}: content must be text or a list of parts")
        out.append({"role": str(m["role"]), "content": parts})
    return out


def prompt_messages(
    record: dict, n_images: int, profile: CoordinateProfile, where: str
) -> list[dict]:
    """The prompt of a record: its messages, or the core prompt built from its question."""
    prompt = record.get("prompt", record.get("question"))
    if prompt is None:
        raise DatasetError(f"{where}: needs a 'prompt' or 'question' field")
    if isinstance(prompt, str):
        if "<image>" in prompt:
            raise DatasetError(
                f"{where}: field 'prompt': '<image>' placeholders in text; the prompt builder "
                "adds one labelled image part per image"
            )
        messages = build_messages(prompt, n_images, profile)
    else:
        messages = _clean_messages(prompt, where, "prompt")
    placeholders = count_image_placeholders(messages)
    if placeholders != n_images:
        raise DatasetError(
            f"{where}: the prompt has {placeholders} image placeholders but the record has "
            f"{n_images} images"
        )
    return messages


def _check_profile(record: dict, profile: CoordinateProfile, where: str) -> None:
    given = record.get("profile")
    if given is not None and given != profile.name:
        raise DatasetError(
            f"{where}: field 'profile': the data is written for {given!r} but the model answers "
            f"in {profile.name!r}; rebuild it with --profile {profile.name} (or set profile)"
        )


def _check_frames(
    record: dict, frames: list[list[int]], profile: CoordinateProfile, where: str
) -> None:
    """Absolute-pixel data must have been written for the frames this processor makes."""
    given = record.get("input_sizes")
    if given is None or not profile.needs_frame:
        return
    if [list(map(int, s)) for s in given] != frames:
        raise DatasetError(
            f"{where}: field 'input_sizes': the data was written for frames {given} but with "
            f"these pixel caps the model sees {frames}; rebuild the data with the same "
            "min_pixels/max_pixels as training"
        )


def _frames(paths: list[str], processor: Any) -> list[list[int]]:
    from mirg.models.loading import frame_size

    return [list(frame_size(processor, *image_size(p))) for p in paths]


def sft_records(
    path: str | Path,
    profile: CoordinateProfile,
    processor: Any,
    *,
    image_root: str | Path | None = None,
    check_images: str = "exists",
    max_samples: int | None = None,
) -> list[dict]:
    """Prompt/completion records for TRL's SFTTrainer (images as absolute paths)."""
    bases = image_bases(path, image_root)
    rows = []
    for where, record in iter_records(path):
        if max_samples is not None and len(rows) >= max_samples:
            break
        images = resolve_images(record.get("images"), bases, where, check_images)
        _check_profile(record, profile, where)
        prompt = prompt_messages(record, len(images), profile, where)
        completion = record.get("completion")
        if isinstance(completion, str):
            completion = assistant_message(completion)
        completion = _clean_messages(completion, where, "completion")
        if count_image_placeholders(completion):
            raise DatasetError(f"{where}: field 'completion': images belong in the prompt")
        if check_images != "none" and profile.needs_frame:
            _check_frames(record, _frames(images, processor), profile, where)
        rows.append({"prompt": prompt, "completion": completion, "images": images})
    if not rows:
        raise DatasetError(f"{path}: no training records")
    return rows


REWARD_COLUMNS = ("target_image", "target_box")


def grpo_records(
    path: str | Path,
    profile: CoordinateProfile,
    processor: Any,
    *,
    image_root: str | Path | None = None,
    check_images: str = "exists",
    max_samples: int | None = None,
) -> list[dict]:
    """Prompt records with the target columns the core rewards read.

    ``profile`` and ``input_sizes`` (the frame the model sees for each image, from the
    processor's pixel caps) are filled in here, so the reward converts the model's
    coordinates exactly as the model was shown the images.
    """
    bases = image_bases(path, image_root)
    rows = []
    for where, record in iter_records(path):
        if max_samples is not None and len(rows) >= max_samples:
            break
        for column in REWARD_COLUMNS:
            if column not in record:
                raise DatasetError(
                    f"{where}: missing column {column!r}, which the rewards need "
                    "(target_image: 1-based or null; target_box: relative [x1, y1, x2, y2])"
                )
        images = resolve_images(record.get("images"), bases, where, check_images)
        _check_profile(record, profile, where)
        prompt = prompt_messages(record, len(images), profile, where)
        target_image = record["target_image"]
        if target_image is not None and not (
            isinstance(target_image, int) and 1 <= target_image <= len(images)
        ):
            raise DatasetError(
                f"{where}: field 'target_image': {target_image!r} is not in 1..{len(images)}"
            )
        box = record["target_box"]
        if not (
            isinstance(box, list)
            and len(box) == 4
            and all(isinstance(v, (int, float)) for v in box)
        ):
            raise DatasetError(
                f"{where}: field 'target_box': expected [x1, y1, x2, y2], got {box!r}"
            )
        if check_images != "none":
            frames = _frames(images, processor)
            _check_frames(record, frames, profile, where)
        elif record.get("input_sizes") is not None:
            frames = [list(map(int, s)) for s in record["input_sizes"]]
        elif profile.needs_frame:
            raise DatasetError(f"{where}: profile {profile.name!r} needs input_sizes")
        else:
            frames = [[0, 0] for _ in images]
        rows.append(
            {
                "prompt": prompt,
                "images": images,
                "target_image": target_image,
                "target_box": [float(v) for v in box],
                "profile": profile.name,
                "input_sizes": frames,
                "task": str(record.get("task", "")),
            }
        )
    if not rows:
        raise DatasetError(f"{path}: no training records")
    return rows


def to_dataset(rows: list[dict]) -> Any:
    """A ``datasets.Dataset`` whose ``images`` column decodes to PIL images on access."""
    from datasets import Dataset, Image, List

    dataset = Dataset.from_list(rows)
    return dataset.cast_column("images", List(Image()))
