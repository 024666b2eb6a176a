"""Training data: JSONL records -> TRL rows, validated before any training starts.

SFT reads trajectory records (``prompt``, ``completion``, ``images``); GRPO reads samples
(``question`` or ``prompt``, ``images``, ``target_image``, ``target_box``). A question becomes
messages by the core's one prompt builder, so SFT, GRPO and evaluation prompt alike.

Records are checked by the data layer's rules (:mod:`mirg.data.schema`), each problem a
``DataError`` naming file, line, sample and field; images and prompt texts are checked
before the model loads (:func:`check_record_images`). Frames come from the processor that
will see the images, at each image's size as shown (EXIF applied, as ``datasets`` decodes
it); without a processor, from the records' ``input_sizes``. Images are read only under one
root (:func:`image_root_of`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from mirg.core.profiles import CoordinateProfile
from mirg.core.prompts import (
    assistant_message,
    build_messages,
    count_image_placeholders,
    reserved_tokens_problem,
)
from mirg.data.readers.records import json_object
from mirg.data.schema import (
    DataError,
    check_image,
    check_placeholders,
    check_targets,
    image_size,
    iter_jsonl,
    nested_as_json,
)

#: The columns GRPO's rewards read from every row (with ``profile`` and ``input_sizes``).
REWARD_COLUMNS = ("target_image", "target_box")
#: Names TRL gives reward functions itself: a dataset column of one of these names would
#: clash with TRL's argument or be replaced by it.
TRL_REWARD_ARGUMENTS = ("prompts", "completions", "completion_ids", "completion", "trainer_state",
                        "log_extra", "log_metric", "environments")  # fmt: skip


def image_bases(path: str | Path, image_root: str | Path | None) -> list[Path]:
    """Where relative image paths may point: image_root alone when it is set, else the
    JSONL's folder, then its parent.

    ``mirg synth`` writes paths relative to its folder; trajectories written next to the
    split (or one folder down) therefore resolve without configuration.
    """
    if image_root is not None:
        return [Path(image_root).expanduser()]
    folder = Path(path).resolve().parent
    return [folder, folder.parent]


def image_root_of(path: str | Path, image_root: str | Path | None) -> Path:
    """The folder a training file's images must lie under (symbolic links followed):
    ``image_root`` when set, else the folder above the JSONL's folder, which holds every
    lookup base of :func:`image_bases`. An image elsewhere, by an absolute path, ``..`` or
    a link, is refused, as ``mirg trajectories`` refuses it: a samples file cannot make
    training read another file of the machine. Where the folder above would be the file
    system's root or the folder of every user's home (a JSONL in ``/tmp`` or ``~``), the
    JSONL's own folder is the root instead: confining to ``/`` would confine nothing."""
    if image_root is not None:
        return Path(image_root).expanduser().resolve()
    folder = Path(path).resolve().parent
    too_wide = {Path(folder.anchor), Path.home().resolve().parent}
    return folder if folder.parent in too_wide else folder.parent


def _find_images(
    images: object, bases: Sequence[Path], root: Path, where: str, check: str
) -> list[str]:
    """Absolute image paths of a record, each confined to ``root``; relative ones are
    looked up under ``bases``. Checked as ``check`` says (a path that is a folder, or a
    link to one, is named as such)."""
    if not isinstance(images, list) or not all(isinstance(i, str) and i for i in images):
        raise DataError(f"{where}: field 'images': expected a list of image paths")
    out = []
    for k, image in enumerate(images):
        field = f"{where}: field 'images[{k}]'"
        p = Path(image).expanduser()
        candidates = [p] if p.is_absolute() else [base / p for base in bases]
        found = next((c for c in candidates if c.is_file()), None)
        found = found or next((c for c in candidates if c.exists() or c.is_symlink()), None)
        inside = [c for c in candidates if c.resolve().is_relative_to(root)]
        if (found is not None and found not in inside) or not inside:
            leads = (found or candidates[0]).resolve()
            raise DataError(
                f"{field}: image path {image!r} leads to {leads}, outside the image root {root} "
                "(training reads images only under image_root, by default the folder above "
                "the JSONL's folder); set image_root to the folder that holds the images"
            )
        if check == "none":
            found = found or inside[0]
        elif found is None:
            tried = ", ".join(str(c) for c in candidates)
            raise DataError(
                f"{field}: image file {image!r} not found (tried {tried}); "
                "set image_root to the folder the paths are relative to"
            )
        check_image(found, field, check)
        out.append(str(found.resolve()))
    return out


def _records(
    path: str | Path,
    image_root: str | Path | None,
    check_images: str,
    max_samples: int | None,
) -> Iterator[tuple[str, dict[str, Any], list[str]]]:
    """(``file:line: sample 'id'``, record, absolute image paths) per JSONL record."""
    bases = image_bases(path, image_root)
    root = image_root_of(path, image_root)
    for count, (number, record) in enumerate(iter_jsonl(path)):
        if max_samples is not None and count >= max_samples:
            return
        where = f"{path}:{number}"
        record = json_object(where, record)
        if "id" in record:
            where = f"{where}: sample {str(record['id'])!r}"
        yield where, record, _find_images(record.get("images"), bases, root, where, check_images)


#: Sizes (as shown) of image files already read, by absolute path: what
#: :func:`check_record_images` hands on to the rows, so no header is read twice.
Sizes = dict[str, tuple[int, int]]


def check_record_images(
    path: str | Path,
    *,
    image_root: str | Path | None = None,
    check_images: str = "exists",
    max_samples: int | None = None,
) -> Sizes:
    """Check a training file's images before a model loads: every record's images found
    under the root, checked as ``check_images`` says and, unless it says ``none``, sized
    from their headers (as shown, within the pixel limit); the texts that go into the
    prompt hold none of Qwen-VL's reserved tokens. A missing, misplaced or oversized image
    is then a DataError naming file, line, sample and field in seconds, not after the model
    has loaded. Returns the sizes for the rows (``sizes`` option of the record builders)."""
    sizes: Sizes = {}
    for where, record, images in _records(path, image_root, check_images, max_samples):
        for name in ("prompt", "question", "completion"):
            _check_text(record.get(name), where, name)
        if check_images == "none":
            continue
        for k, image in enumerate(images):
            if image not in sizes:
                sizes[image] = image_size(image, f"{where}: field 'images[{k}]'")
    return sizes


def _check_text(value: object, where: str, name: str) -> None:
    """DataError when the text of a prompt or completion (a string, or the text parts of
    messages) holds Qwen-VL's reserved tokens (:data:`mirg.core.prompts.RESERVED_TOKENS`)."""
    texts: list[object] = [value]
    if isinstance(value, list):
        texts = [
            part.get("text") if isinstance(part, dict) else part
            for message in value
            if isinstance(message, dict)
            for part in (
                message.get("content")
                if isinstance(message.get("content"), list)
                else [message.get("content")]
            )
        ]
    for text in texts:
        if isinstance(text, str) and (problem := reserved_tokens_problem(text)) is not None:
            raise DataError(f"{where}: field {name!r}: {problem}")


def _clean_messages(messages: object, where: str, name: str) -> list[dict]:
    """Conversational messages normalised to ``{"type": "text"|"image"}`` parts.

    Arrow stores every part with the union of keys; keeping only ``type`` and ``text``
    lets TRL fill the image parts with the images, in order.
    """
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: field {name!r}: expected text or a list of messages")
    out = []
    for m in messages:
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise DataError(f"{where}: field {name!r}: each message needs role and content")
        content = m["content"]
        if isinstance(content, str):
            if "<image>" in content:
                raise DataError(
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
                    raise DataError(
                        f"{where}: field {name!r}: content part of type {kind!r}; "
                        "expected text or image"
                    )
        else:
            raise DataError(f"{where}: field {name!r}: content must be text or a list of parts")
        out.append({"role": str(m["role"]), "content": parts})
    return out


def prompt_messages(
    record: dict, images: Sequence[str], profile: CoordinateProfile, where: str
) -> list[dict]:
    """The prompt of a record: its messages, or the core prompt built from its question."""
    given = record.get("profile")
    if given is not None and given != profile.name:
        raise DataError(
            f"{where}: field 'profile': the data is written for {given!r} but the model answers "
            f"in {profile.name!r}; rebuild it with --profile {profile.name} (or set profile)"
        )
    name = "prompt" if "prompt" in record else "question"
    prompt = record.get(name)
    if prompt is None:
        raise DataError(f"{where}: needs a 'prompt' or 'question' field")
    _check_text(prompt, where, name)
    if isinstance(prompt, str):
        if "<image>" in prompt:
            raise DataError(
                f"{where}: field 'prompt': '<image>' placeholders in text; the prompt builder "
                "adds one labelled image part per image"
            )
        messages = build_messages(prompt, len(images), profile)
    else:
        messages = _clean_messages(prompt, where, "prompt")
    check_placeholders(count_image_placeholders(messages), images, where)
    return messages


def _frames(
    record: dict,
    images: list[str],
    profile: CoordinateProfile,
    processor: Any,
    check_images: str,
    where: str,
    known: Sizes | None = None,
) -> list[list[int]] | None:
    """The frame each image is shown at: from the processor (and then the record's
    ``input_sizes`` must agree where the profile writes pixels), else the record's own.
    Image sizes are as shown (EXIF orientation applied), read from the headers unless
    ``known`` holds them already."""
    given = record.get("input_sizes")
    pairs = isinstance(given, list) and len(given) == len(images)
    frame_like = pairs and all(
        isinstance(s, list) and len(s) == 2 and all(type(v) is int for v in s) for s in given
    )
    if given is not None and not frame_like:
        raise DataError(f"{where}: field 'input_sizes': expected one [w, h] per image")
    if processor is None or check_images == "none":
        return given
    from mirg.models.loading import frame_rule

    known = known or {}
    sizes = [
        known.get(p) or image_size(p, f"{where}: field 'images[{k}]'")  # as shown, header only
        for k, p in enumerate(images)
    ]
    frames = frame_rule(processor).frames(sizes)
    if given is not None and profile.needs_frame and given != frames:
        raise DataError(
            f"{where}: field 'input_sizes': the data was written for frames {given} but with "
            f"these pixel caps the model sees {frames}; rebuild the data with the same "
            "min_pixels/max_pixels as training (mirg export --model MODEL)"
        )
    return frames


#: The frames of a record's images, computed on demand (reading headers costs I/O).
Frames = Callable[[], list[list[int]] | None]


def _sft_row(
    where: str, record: dict, images: list[str], profile: CoordinateProfile, frames: Frames
) -> dict:
    prompt = prompt_messages(record, images, profile, where)
    completion = record.get("completion")
    _check_text(completion, where, "completion")
    if isinstance(completion, str):
        completion = assistant_message(completion)
    completion = _clean_messages(completion, where, "completion")
    if count_image_placeholders(completion):
        raise DataError(f"{where}: field 'completion': images belong in the prompt")
    if profile.needs_frame:  # the completion's pixels must be the frames' pixels
        frames()
    return {"prompt": prompt, "completion": completion, "images": images}


def _grpo_row(
    where: str, record: dict, images: list[str], profile: CoordinateProfile, frames: Frames
) -> dict:
    for column in REWARD_COLUMNS:
        if column not in record:
            raise DataError(
                f"{where}: missing column {column!r}, which the rewards need "
                "(target_image: 1-based or null; target_box: relative [x1, y1, x2, y2])"
            )
    if clash := [c for c in TRL_REWARD_ARGUMENTS if c in record]:
        raise DataError(
            f"{where}: column {clash[0]!r} is a name TRL gives reward functions; rename it"
        )
    prompt = prompt_messages(record, images, profile, where)
    target_image, target_box = check_targets(record, len(images), where)
    input_sizes = frames()
    if input_sizes is None and profile.needs_frame:
        raise DataError(f"{where}: profile {profile.name!r} needs input_sizes")
    return nested_as_json(record) | {  # every column reaches the rewards, as in TRL
        "prompt": prompt,
        "images": images,
        "target_image": target_image,
        "target_box": list(target_box),
        "profile": profile.name,
        "input_sizes": input_sizes or [[0, 0] for _ in images],
        "task": str(record.get("task", "")),
    }


def _rows(
    make_row: Callable[..., dict],
    path: str | Path,
    profile: CoordinateProfile,
    processor: Any = None,
    *,
    image_root: str | Path | None = None,
    check_images: str = "exists",
    max_samples: int | None = None,
    sizes: Sizes | None = None,
) -> list[dict]:
    """Rows of a JSONL file made by ``make_row``; images are found relative to
    ``image_root`` or the file (and confined to :func:`image_root_of`), and checked per
    ``check_images``; ``sizes``: image sizes already read (:func:`check_record_images`)."""
    rows = []
    # images check_record_images already decoded are not decoded a second time
    check = "exists" if sizes is not None and check_images == "decode" else check_images
    for where, record, images in _records(path, image_root, check, max_samples):
        frames = partial(_frames, record, images, profile, processor, check_images, where, sizes)
        rows.append(make_row(where, record, images, profile, frames))
    if not rows:
        raise DataError(f"{path}: no training records")
    return rows


def sft_records(
    path: str | Path, profile: CoordinateProfile, *args: Any, **options: Any
) -> list[dict]:
    """Prompt/completion rows for TRL's SFTTrainer (images as absolute paths).

    Options: ``processor`` (the frames' source; None: the records' ``input_sizes``),
    ``image_root``, ``check_images`` (``exists``), ``max_samples``, ``sizes``.
    """
    return _rows(_sft_row, path, profile, *args, **options)


def grpo_records(
    path: str | Path, profile: CoordinateProfile, *args: Any, **options: Any
) -> list[dict]:
    """Prompt rows with the columns the core rewards read and every other column of the
    record, for a reward of the user's own (options as :func:`sft_records`); nested sample
    fields as JSON text (:func:`~mirg.data.schema.nested_as_json`).

    ``profile`` and ``input_sizes`` (the frame the model sees for each image) are filled in
    here, so the reward converts the model's coordinates exactly as the model was shown
    the images.
    """
    return _rows(_grpo_row, path, profile, *args, **options)


def to_dataset(rows: list[dict], source: str = "training rows") -> Any:
    """A ``datasets.Dataset`` whose ``images`` column decodes to PIL images on access; a
    column only some rows hold is None in the others (``from_list`` keeps the first row's).
    A column Arrow cannot hold (values of different types) is named (``source``: the file)."""
    from datasets import Dataset, Image, List

    columns = {name: [row.get(name) for row in rows] for row in rows for name in row}
    try:
        dataset = Dataset.from_dict(columns)
    except (ValueError, TypeError) as exc:  # pyarrow's ArrowInvalid, ArrowTypeError
        for name, values in columns.items():  # which column: each alone
            try:
                Dataset.from_dict({name: values})
            except (ValueError, TypeError):
                raise DataError(
                    f"{source}: column {name!r} holds values of different types ({exc}); give "
                    "it one type in every record"
                ) from None
        raise
    return dataset.cast_column("images", List(Image()))
