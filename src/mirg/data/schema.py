"""One sample schema for every data source (synthetic world, COCO-style, MIG-Bench).

A sample is one JSON object per line of a JSONL file, its fields those of :class:`Sample`
(docs/data.md explains each); its images are files under a dataset root (the JSONL's
folder unless told otherwise), named by relative paths.

Everything that reads samples validates them (images exist and decode within Pillow's
pixel limit, counts agree, boxes valid, paths stay inside the root, questions hold none of
Qwen-VL's reserved tokens) and raises :class:`DataError` naming the file, line, sample and
field; or, given a :class:`SkipLog`, records the reason and skips the sample. Nothing is
dropped silently.

Images are opened and sized here only (:func:`open_image`, :func:`image_size`), as a viewer
shows them: a photo's EXIF orientation is applied everywhere (the policy and why: the
Images section below). JSON and JSONL readers skip a leading UTF-8 byte order mark.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import struct
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image, ImageOps

from mirg.core.boxes import Box, BoxError, validate_box
from mirg.core.prompts import reserved_tokens_problem
from mirg.data.references import Reference, reference_from_json, reference_to_json
from mirg.errors import MirgError
from mirg.files import atomic_write, write_text

#: Image decoding guard: more pixels than this is treated as a decompression bomb.
#: Pillow's own default (about 89 M pixels, where it starts warning); we make it an error.
MAX_IMAGE_PIXELS = 89_478_485

#: The byte order mark some editors (Notepad, Excel) put before UTF-8 text: every JSON and
#: JSONL reader skips one at the start of a file, as ``mirg convert`` always has.
UTF8_BOM = b"\xef\xbb\xbf"

#: How thoroughly to check image files on load: decode every pixel, check existence
#: only, or not at all (annotation-only data such as MIG-Bench without its images).
IMAGE_CHECKS = ("decode", "exists", "none")
#: How questions name images ("Image-2"), as the prompts label them.
_IMAGE_NAME_RE = re.compile(r"\bImage-(\d+)\b")


class DataError(MirgError):
    """Bad input data; the message names the file, line or item, and field."""


@dataclass
class Sample:
    id: str
    task: str
    images: list[str]
    question: str
    target_image: int | None
    target_box: Box
    objects: list[list[dict[str, Any]]] = field(default_factory=list)
    relations: list[dict[str, Any]] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    reference: Reference | None = None
    target: dict[str, int] | None = None
    image_sizes: list[list[int]] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_images(self) -> int:
        return len(self.images)

    def answer_image(self) -> int:
        """The image an answer names: the target image, else where the target object is,
        else Image-1 (for aligned pairs any image is right)."""
        if self.target_image is not None:
            return self.target_image
        if self.target is not None:
            return int(self.target["image"])
        return 1

    def target_object(self) -> dict[str, Any] | None:
        """The annotated object that is the answer, if the sample says which."""
        if self.target is None or not self.objects:
            return None
        return self.objects[self.target["image"] - 1][self.target["object"]]

    def to_json(self) -> dict[str, Any]:
        """The JSONL object (fields in schema order; shares, does not copy, nested values)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["target_box"] = list(self.target_box)
        if self.reference is not None:
            out["reference"] = reference_to_json(self.reference)
        return out


@dataclass
class SkipLog:
    """Samples skipped under ``--skip-bad``: where and why, written to a log file."""

    entries: list[tuple[str, str]] = field(default_factory=list)

    def add(self, where: str, reason: str) -> None:
        self.entries.append((where, reason))

    def __len__(self) -> int:
        return len(self.entries)

    def write(self, path: str | Path, what: str = "samples") -> str:
        """Write the log; returns the clause a command's summary line ends with."""
        write_text(path, "".join(f"{where}\t{reason}\n" for where, reason in self.entries))
        return f"; skipped {len(self)} bad {what} (reasons in {path})"


def _bad(where: str, name: str, why: str) -> DataError:
    return DataError(f"{where}: field {name!r}: {why}")


def data_box(values: object, where: str, name: str) -> Box:
    """A valid relative box, or DataError naming ``where`` and the field ``name``."""
    try:
        return validate_box(values, where=f"{where}: field {name!r}")
    except BoxError as exc:
        raise DataError(str(exc)) from None


def check_targets(raw: dict[str, Any], n_images: int, where: str) -> tuple[int | None, Box]:
    """``target_image`` (1-based or null) and ``target_box`` (relative) of a sample or a
    training row, checked the same way for both."""
    target_image = raw["target_image"]
    if target_image is not None and (not _int(target_image) or not 1 <= target_image <= n_images):
        raise _bad(
            where, "target_image", f"expected 1..{n_images} (1-based) or null, got {target_image!r}"
        )
    return target_image, data_box(raw["target_box"], where, "target_box")


def check_placeholders(n_placeholders: int, images: Sequence[object], where: str) -> None:
    """Raise DataError unless there is exactly one image placeholder per image."""
    if n_placeholders != len(images):
        raise DataError(
            f"{where}: field 'prompt': {n_placeholders} image placeholders but the record has "
            f"{len(images)} images"
        )


def check_relative_path(relative: object, where: str, root: Path | None = None) -> None:
    """Refuse, by its text alone, an image path that is empty, absolute, or whose ``..``
    climb out of the dataset root (``root`` only names it in the message)."""
    if not isinstance(relative, str) or not relative:
        raise DataError(f"{where}: expected a non-empty relative path, got {relative!r}")
    if os.path.isabs(relative) or relative.startswith(("/", "\\")):
        raise DataError(f"{where}: image path {relative!r} is absolute; paths are relative")
    if ".." in relative:
        normal = os.path.normpath(relative)
        if normal == ".." or normal.startswith((".." + os.sep, "../")):
            named = "" if root is None else f" {root}"
            raise DataError(f"{where}: image path {relative!r} escapes the dataset root{named}")


def resolve_image_path(root: Path, relative: str, where: str) -> Path:
    """``root / relative`` resolved (symbolic links followed), refusing absolute paths and
    any path that ends up outside the resolved root: neither ``..`` nor a link inside the
    dataset may point a sample at another file on the machine."""
    check_relative_path(relative, where, root)
    base = Path(root).resolve()
    path = (base / os.path.normpath(relative)).resolve()
    if not path.is_relative_to(base):
        raise DataError(
            f"{where}: image path {relative!r} leads to {path}, outside the dataset root "
            f"{base} (a symbolic link?); copy the image under the root, or give the real "
            "folder as the root"
        )
    return path


# ---------------------------------------------------------------------------------------
# Images: one way to open them, one orientation policy.
#
# A photo's pixels may be stored turned, with an EXIF tag (Orientation 2-8) saying how to
# show them. mirg uses every image as a viewer shows it, the tag applied, everywhere: the
# frames and ``input_sizes`` of exports and training, the pixels training, evaluation and
# predict feed the model, and the report's thumbnails. Boxes are drawn on what a viewer
# shows (browser-based annotation tools draw on the turned image), and Hugging Face
# ``datasets``, which TRL trains from, decodes images turned (``ImageOps.exif_transpose``);
# any other choice would let one ``target_box`` cover different pixels in training and
# evaluation.

#: EXIF orientations that turn an image a quarter (its width and height swap).
_QUARTER_TURNS = frozenset({5, 6, 7, 8})
#: Where Pillow finds an orientation besides a PNG's eXIf chunk (``Image.getexif``).
_PNG_ORIENTATION_KEYS = ("Raw profile type exif", "XML:com.adobe.xmp", "xmp")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_metadata_after_pixels(source: Path | bytes) -> bool:
    """Whether a PNG holds an EXIF or text chunk after its pixel data, where Pillow reads
    it only once the pixels are decoded (chunk headers only; the pixels are skipped)."""
    with io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb") as handle:
        if handle.read(8) != _PNG_SIGNATURE:
            return False
        seen_pixels = False
        while len(head := handle.read(8)) == 8:
            length, kind = struct.unpack(">I4s", head)
            if kind == b"IEND":
                return False
            if kind == b"IDAT":
                seen_pixels = True
            elif seen_pixels and kind in (b"eXIf", b"tEXt", b"zTXt", b"iTXt"):
                return True
            handle.seek(length + 4, os.SEEK_CUR)  # the data and its CRC
    return False


def _orientation(image: Image.Image, source: Path | bytes, loaded: bool = False) -> int:
    """The EXIF orientation of an opened image (1: shown as stored), read as Pillow's
    ``exif_transpose`` and ``datasets`` read it, without decoding the pixels where the
    format allows (a PNG decodes only when its metadata follows the pixels). ``loaded``:
    the pixels are decoded, so Pillow has read every chunk into ``image.info`` already."""
    if (
        image.format == "PNG"
        and "exif" not in image.info
        and not any(key in image.info for key in _PNG_ORIENTATION_KEYS)
        and (loaded or not _png_metadata_after_pixels(source))
    ):
        return 1
    value = image.getexif().get(ExifTags.Base.Orientation, 1)
    return value if isinstance(value, int) else 1


def _require_file(path: Path, where: str) -> None:
    """Raise DataError saying why ``path`` cannot be an image file (missing, a folder, a
    broken link, a device or pipe) unless it is a regular file."""
    if path.is_file():
        return
    link = f" (a symbolic link to {os.readlink(path)})" if path.is_symlink() else ""
    if path.is_dir():
        raise DataError(f"{where}: image path {path}{link} is a folder, not an image file")
    if path.exists():
        raise DataError(f"{where}: image path {path}{link} is not a regular file")
    if link:
        raise DataError(f"{where}: image file {path} does not exist{link[:-1]}, which is missing)")
    raise DataError(f"{where}: image file {path} does not exist")


@contextlib.contextmanager
def _image(source: Path | bytes, where: str, max_pixels: int) -> Iterator[Image.Image]:
    """The opened (not decoded) image of a file or of its bytes, its pixel count checked
    from the header; anything wrong with it, there or in what the caller reads of it, is a
    DataError naming ``where`` and the file."""
    if isinstance(source, bytes):
        name, stream = "image", io.BytesIO(source)
    else:
        _require_file(source, where)
        name, stream = f"image {source}", source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(stream) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise DataError(
                        f"{where}: {name} is {width}x{height} pixels, over the limit of "
                        f"{max_pixels} (decompression bomb guard)"
                    )
                yield image
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{where}: image file {source} does not exist") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"{where}: {name} refused as a decompression bomb: {exc}") from None
    except (OSError, SyntaxError, ValueError, struct.error) as exc:
        raise DataError(f"{where}: {name} cannot be read: {exc}") from None


def image_size(
    path: str | Path, where: str, max_pixels: int = MAX_IMAGE_PIXELS, *, decode: bool = False
) -> tuple[int, int]:
    """(width, height) of an image file as it is shown (EXIF orientation applied: a photo
    stored 120x60 and tagged to turn a quarter is 60x120), from its header; with ``decode``
    every pixel is decoded too, which catches truncated files. The pixel count is checked
    before decoding, so a decompression bomb is refused without allocating its pixels.
    DataError naming ``where`` when the file is missing, not a file, unreadable or over the
    limit."""
    path = Path(path)
    with _image(path, where, max_pixels) as image:
        width, height = image.size
        if decode:
            image.load()
        if _orientation(image, path, loaded=decode) in _QUARTER_TURNS:
            width, height = height, width
    return width, height


def open_image(source: str | Path | bytes, where: str | None = None) -> Image.Image:
    """The one way mirg opens a sample's image (a file, or a file's bytes): decoded, RGB,
    turned as its EXIF orientation says (see the policy above; the same pixels ``datasets``
    decodes for training), the pixel count checked from the header first. DataError naming
    ``where`` (default: the path) when it cannot be used."""
    source = source if isinstance(source, bytes) else Path(source)
    where = where or ("image bytes" if isinstance(source, bytes) else str(source))
    with _image(source, where, MAX_IMAGE_PIXELS) as image:
        image.load()
        if _orientation(image, source, loaded=True) != 1:
            return ImageOps.exif_transpose(image).convert("RGB")
        return image.convert("RGB")


def image_bytes_as_shown(path: str | Path, where: str) -> bytes:
    """The file's bytes, for records that embed images (verl): as they are where the image
    is shown as stored (exports stay byte-identical), else the turned pixels as PNG without
    the tag, so the record holds the image as shown whether or not its reader applies EXIF
    orientations."""
    path = Path(path)
    with _image(path, where, MAX_IMAGE_PIXELS) as image:
        turned = _orientation(image, path) in range(2, 9)
    if not turned:
        return path.read_bytes()
    buffer = io.BytesIO()
    open_image(path, where).save(buffer, format="PNG")
    return buffer.getvalue()


def check_image(
    path: Path, where: str, check: str = "decode", max_pixels: int = MAX_IMAGE_PIXELS
) -> tuple[int, int] | None:
    """Check an image file as ``check`` says (one of :data:`IMAGE_CHECKS`); ``decode``
    returns its (width, height) as shown (:func:`image_size`). Raises DataError naming
    ``where``: a folder or a link to one is named as such, not as missing."""
    if check not in IMAGE_CHECKS:
        raise MirgError(f"check_images must be one of {IMAGE_CHECKS}, got {check!r}")
    if check == "none":
        return None
    if check == "exists":
        return _require_file(Path(path), where)
    return image_size(path, where, max_pixels, decode=True)


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def sample_from_json(
    raw: object,
    where: str,
    root: Path | None = None,
    check_images: str = "decode",
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> Sample:
    """The :class:`Sample` of one decoded JSON object, validated: errors name ``where``
    (``file:line``) and the field. Image paths are relative to ``root``, their files
    checked there as ``check_images`` says."""
    if not isinstance(raw, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    for name in ("id", "task", "images", "question", "target_image", "target_box"):
        if name not in raw:
            raise _bad(where, name, "missing")
    sample_id = raw["id"]
    if not isinstance(sample_id, (str, int)) or isinstance(sample_id, bool) or sample_id == "":
        raise _bad(where, "id", f"expected a non-empty string, got {sample_id!r}")
    where = f"{where}: sample {str(sample_id)!r}"
    task = raw["task"]
    if not isinstance(task, str) or not task:
        raise _bad(where, "task", f"expected a task name, got {task!r}")
    question = raw["question"]
    if not isinstance(question, str) or not question.strip():
        raise _bad(where, "question", "expected non-empty text")
    if "<image>" in question:
        # Exports add one <image> placeholder per image; one more in the text would leave
        # more placeholders than images.
        raise _bad(
            where, "question", "contains an '<image>' placeholder (more placeholders than images)"
        )
    problem = reserved_tokens_problem(question)
    if problem is not None:
        raise _bad(where, "question", problem)
    images = raw["images"]
    if not isinstance(images, list) or not images:
        raise _bad(where, "images", "expected a non-empty list of relative paths")
    n = len(images)
    named = sorted({int(k) for k in _IMAGE_NAME_RE.findall(question)} - set(range(1, n + 1)))
    if named:
        raise _bad(where, "question", f"names Image-{named[0]} but the sample has {n} image(s)")
    paths = []
    for k, rel in enumerate(images):
        if not isinstance(rel, str) or not rel:
            raise _bad(where, f"images[{k}]", f"expected a relative path, got {rel!r}")
        paths.append(resolve_image_path(root or Path("."), rel, f"{where}: field 'images[{k}]'"))
    target_image, target_box = check_targets(raw, n, where)

    objects = raw.get("objects") or []
    if not isinstance(objects, list) or (objects and len(objects) != n):
        got = len(objects) if isinstance(objects, list) else type(objects).__name__
        raise _bad(where, "objects", f"expected one list per image ({n}), got {got}")
    for k, per_image in enumerate(objects):
        if not isinstance(per_image, list):
            raise _bad(where, f"objects[{k}]", "expected a list of objects")
        for j, obj in enumerate(per_image):
            name = f"objects[{k}][{j}]"
            if not isinstance(obj, dict) or "box" not in obj:
                raise _bad(where, name, "expected an object with a 'box'")
            data_box(obj["box"], where, f"{name}.box")
            category = obj.get("category")
            if category is not None and not isinstance(category, str):
                raise _bad(where, f"{name}.category", f"expected text or null, got {category!r}")
            if not isinstance(obj.get("attributes", {}), dict):
                raise _bad(where, f"{name}.attributes", "expected an object")

    relations = raw.get("relations") or []
    if not isinstance(relations, list) or not all(isinstance(r, dict) for r in relations):
        raise _bad(where, "relations", "expected a list of objects")
    for i, relation in enumerate(relations):
        for key in ("image", "source"):
            if key in relation and (not _int(relation[key]) or not 1 <= relation[key] <= n):
                raise _bad(where, f"relations[{i}].{key}", f"image {relation[key]!r} not in 1..{n}")
        refs = relation.get("images", [])
        if not isinstance(refs, list) or not all(_int(r) and 1 <= r <= n for r in refs):
            raise _bad(where, f"relations[{i}].images", f"expected image numbers in 1..{n}")
        if "box" in relation:
            data_box(relation["box"], where, f"relations[{i}].box")

    captions = raw.get("captions") or []
    if not isinstance(captions, list) or (captions and len(captions) != n):
        raise _bad(where, "captions", f"expected one caption per image ({n})")
    if not all(isinstance(c, str) for c in captions):
        raise _bad(where, "captions", "expected text")

    reference = None
    if raw.get("reference") is not None:
        try:
            reference = reference_from_json(raw["reference"], n)
        except MirgError as exc:
            raise DataError(f"{where}: {exc}") from None

    target = raw.get("target")
    if target is not None:
        if (
            not isinstance(target, dict)
            or not _int(target.get("image"))
            or not _int(target.get("object"))
        ):
            raise _bad(where, "target", "expected {'image': K, 'object': J}")
        k, j = target["image"], target["object"]
        if not 1 <= k <= n or not objects or not 0 <= j < len(objects[k - 1]):
            raise _bad(where, "target", f"no annotated object {j} on image {k}")

    sizes = raw.get("image_sizes")
    if sizes is not None:
        if not isinstance(sizes, list) or len(sizes) != n:
            raise _bad(where, "image_sizes", f"expected one [w, h] per image ({n})")
        for k, size in enumerate(sizes):
            if not (
                isinstance(size, list) and len(size) == 2 and all(_int(v) and v > 0 for v in size)
            ):
                raise _bad(
                    where, f"image_sizes[{k}]", f"expected [w, h] positive integers, got {size!r}"
                )

    meta = raw.get("meta") or {}
    if not isinstance(meta, dict):
        raise _bad(where, "meta", "expected an object")

    for k, path in enumerate(paths):
        size = check_image(path, f"{where}: field 'images[{k}]'", check_images, max_pixels)
        if size is not None and sizes is not None and list(size) != sizes[k]:
            turned = (
                " as shown (its EXIF orientation turns it)" if size[::-1] == tuple(sizes[k]) else ""
            )
            raise _bad(
                where, f"image_sizes[{k}]", f"says {sizes[k]}, the file is {list(size)}{turned}"
            )

    return Sample(
        id=str(sample_id),
        task=task,
        images=list(images),
        question=question,
        target_image=target_image,
        target_box=target_box,
        objects=objects,
        relations=relations,
        captions=captions,
        reference=reference,
        target=target,
        image_sizes=sizes,
        meta=meta,
    )


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, object | DataError]]:
    """(line number, decoded object) for each non-blank line. A line that is not JSON or
    not UTF-8 yields a :class:`DataError` in place of the object, so callers can skip it and
    go on reading (``--skip-bad``) or raise it; a folder or a missing path raises."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder; expected a JSONL file (e.g. {path}/train.jsonl)")
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    with handle:
        for number, raw in enumerate(handle, 1):
            if number == 1:
                raw = raw.removeprefix(UTF8_BOM)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                why = f"not UTF-8 text (byte {raw[exc.start]:#04x} at column {exc.start + 1})"
                yield number, DataError(f"{path}:{number}: {why}; save the file as UTF-8")
                continue
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, DataError(f"{path}:{number}: not valid JSON: {exc.msg}")


def read_json(path: str | Path, what: str = "file") -> Any:
    """A whole JSON file (a leading UTF-8 byte order mark skipped); DataError naming the file
    (and line) when it is missing, a folder, not UTF-8 or not JSON."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder; expected a JSON {what}")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found") from None
    try:
        text = data.removeprefix(UTF8_BOM).decode("utf-8")
    except UnicodeDecodeError as exc:
        start = exc.start + (len(UTF8_BOM) if data.startswith(UTF8_BOM) else 0)
        line = data.count(b"\n", 0, start) + 1
        raise DataError(
            f"{path}:{line}: not UTF-8 text (byte {data[start]:#04x}); save it as UTF-8"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}:{exc.lineno}: not valid JSON (column {exc.colno}): {exc.msg}"
        ) from None


def read_samples(
    path: str | Path,
    *,
    root: str | Path | None = None,
    check_images: str = "decode",
    max_pixels: int = MAX_IMAGE_PIXELS,
    skips: SkipLog | None = None,
) -> list[Sample]:
    """The validated samples of a JSONL file, their images under ``root`` (default: the
    file's folder, where ``mirg synth`` puts ``images/``). The first bad sample or line
    raises :class:`DataError`, or with ``skips`` is recorded there and skipped."""
    path = Path(path)
    base = Path(root) if root is not None else path.parent
    samples: list[Sample] = []
    seen: set[str] = set()
    for number, raw in iter_jsonl(path):
        where = f"{path}:{number}"
        try:
            if isinstance(raw, DataError):
                raise raw
            sample = sample_from_json(raw, where, base, check_images, max_pixels)
            if sample.id in seen:
                raise DataError(f"{where}: field 'id': duplicate id {sample.id!r}")
        except DataError as exc:
            if skips is None:
                raise
            skips.add(where, str(exc))
            continue
        seen.add(sample.id)
        samples.append(sample)
    return samples


def write_samples(path: str | Path, samples: Iterable[Sample]) -> int:
    """Write samples as JSONL (one compact line each, keys in schema order); returns the count."""
    return write_jsonl(path, (sample.to_json() for sample in samples), compact=True)


def write_jsonl(
    path: str | Path, records: Iterable[dict[str, Any]], *, compact: bool = False
) -> int:
    """Write records as UTF-8 JSONL (``compact``: without spaces); returns the count. The
    file is replaced only once complete (:func:`mirg.files.atomic_write`)."""
    separators = (",", ":") if compact else None
    count = 0
    with atomic_write(path) as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False, separators=separators) + "\n")
            count += 1
    return count


#: Sample fields whose shape varies between samples (keys, nesting): a dataset holds them
#: as JSON text, since Arrow needs one schema per column.
NESTED_FIELDS = ("objects", "relations", "reference", "target", "meta")


def nested_as_json(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with the nested sample fields it holds as JSON text."""
    return row | {name: json.dumps(row[name]) for name in NESTED_FIELDS if name in row}


def to_hf_dataset(samples: list[Sample], root: str | Path, *, decode_images: bool = False):
    """Samples as a Hugging Face ``datasets.Dataset``: ``images`` as absolute paths (or,
    with ``decode_images``, an ``Image`` feature that yields PIL images), the
    :data:`NESTED_FIELDS` as JSON text."""
    import datasets

    base = Path(root).resolve()
    rows = []
    for s in samples:
        row = s.to_json() | {"images": [str(base / p) for p in s.images]}
        rows.append(nested_as_json(row | {"captions": s.captions or [""] * s.n_images}))
    text, number, integer = (datasets.Value(t) for t in ("string", "float64", "int64"))
    features = {
        "id": text,
        "task": text,
        "images": datasets.List(datasets.Image() if decode_images else text),
        "question": text,
        "target_image": integer,
        "target_box": datasets.List(number),
        "captions": datasets.List(text),
        "image_sizes": datasets.List(datasets.List(integer)),
    }
    features |= dict.fromkeys(NESTED_FIELDS, text)
    return datasets.Dataset.from_list(rows, features=datasets.Features(features))
