"""RefCOCO / RefCOCO+ / RefCOCOg referring expressions -> multi-image samples: the
object-level annotations at scale.

Inputs (``mirg convert --format refcoco``):

* refs, one record per referred object: ``{"ref_id", "ann_id", "image_id",
  "category_id", "split", "sentences": [{"sent", "raw", "sent_id", "tokens"}, …], …}``,
  as the refer toolkit's ``refs(unc).p`` holds them (github.com/lichengunc/refer), as a
  JSON list or JSONL of the same records, or as parquet rows with the same columns (hub
  dataset ``jxu124/refcoco``, ``…/refcocog``). A pickle is read only when asked
  (``allow_pickle``), and then by an unpickler that refuses every class: plain lists,
  dicts, strings and numbers, which is all a refs file holds, can be read; no code runs.
* instances, COCO style (refer's ``instances.json`` or COCO's
  ``instances_train2014.json``): every object of every image, with its category and
  supercategory, and the images' sizes. Read by :func:`mirg.data.readers.coco.coco_images`.

Each expression becomes one sample, families in turn:

* ``group_grounding``: the referred image among distractor images; the question names no
  image. The expression must fit exactly one object among all images. RefCOCO makes it
  unique within its image; across images the annotations can prove it only when the
  expression names its category (``"man in red"`` names person; ``"left one"`` names
  nothing) and no distractor holds an object of a category the expression names. So
  distractors (``distractors="other-category"``, the default) hold none of those
  categories, preferably objects of the same supercategory (a dog's expression among
  cats and horses). ``"same-category"`` takes distractors that do hold the category
  (harder negatives, as MGrounding's group grounding does); the annotations cannot prove
  such an expression fits no distractor object, so it is refused for expressions of
  position words only and for expressions another object of the chosen images carries,
  and the sample is marked ``meta.unique = "unverified"``.
* ``referring``: the question names the image ("Locate "man in red" in Image-3."); the
  others are distractors holding objects of the same category, which a named image makes
  harmless.

An expression that cannot make a ``group_grounding`` sample becomes a ``referring`` one
(counted by reason in the summary). Distractors come from the images referred to in the
same split, so a test image never enters training data. Objects carry their category,
COCO's size word and their annotation id; the reference is an
:class:`~mirg.data.references.Expression`. With ``--captions``, ``mirg convert`` joins
the images' captions as image-level facts.
"""

from __future__ import annotations

import functools
import pickle
import random
import re
import zlib
from argparse import Namespace
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mirg.data.readers import Reader
from mirg.data.readers.coco import CocoImage, _public, coco_images
from mirg.data.readers.records import Tally, check_sample, iter_parquet, iter_records
from mirg.data.references import Expression
from mirg.data.schema import DataError, Sample, _int, read_json
from mirg.errors import MirgError

REFCOCO_FAMILIES = ("group_grounding", "referring")
DISTRACTORS = ("other-category", "same-category")
_REF_COLUMNS = ("ref_id", "ann_id", "image_id", "category_id", "split", "sentences")
_WORD_RE = re.compile(r"[a-z]+")
#: Words that name a person in referring expressions (COCO's category is "person").
PERSON_WORDS = frozenset(
    "person persons people man men woman women guy guys lady ladies boy boys girl girls kid "
    "kids child children baby player players dude gentleman mom dad skier surfer skater "
    "batter catcher umpire pitcher".split()
)
#: Position and filler words: an expression of these alone fits an object in any image.
_POSITION_WORDS = frozenset(
    "left right middle center centre top bottom front back behind closest nearest farthest "
    "far near first second third upper lower side corner edge leftmost rightmost background "
    "foreground the a an on in of at to with from one thing part half piece who is that and "
    "by next".split()
)
_QUESTIONS = {
    "group_grounding": (
        'Find "{text}" in one of the images.',
        'Which image holds "{text}"? Locate it.',
        'Locate "{text}"; it is in one of the images.',
    ),
    "referring": (
        'Locate "{text}" in Image-{k}.',
        'In Image-{k}, find "{text}".',
        'Find "{text}" in Image-{k} and locate it.',
    ),
}


class _PlainUnpickler(pickle.Unpickler):
    """Builds lists, dicts, strings and numbers only: every class lookup is refused, so no
    constructor or function named by the file can run."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(
            f"the file asks for {module}.{name}; only plain lists, dicts, strings and numbers "
            "are read from a refs pickle"
        )


def _read_pickle(path: Path) -> list[Any]:
    try:
        with path.open("rb") as handle:
            data = _PlainUnpickler(handle, encoding="utf-8", errors="replace").load()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise DataError(f"{path}: cannot be read as a plain-data pickle: {exc}") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a list of refs, got {type(data).__name__}")
    return data


def iter_refs(path: str | Path, *, allow_pickle: bool = False) -> Iterator[tuple[str, object]]:
    """(where, ref) for each ref of a refs file: JSON list, JSONL, parquet, or (only with
    ``allow_pickle``) the refer toolkit's pickle."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".p", ".pkl", ".pickle"):
        if not allow_pickle:
            raise DataError(
                f"{path}: a pickle; mirg does not unpickle files unless told to. Pass "
                "--allow-pickle (read with an unpickler that refuses every class), or give "
                "the refs as JSON or parquet"
            )
        for i, ref in enumerate(_read_pickle(path)):
            yield f"{path}: ref {i}", ref
    elif suffix == ".parquet":
        yield from iter_parquet(path, _REF_COLUMNS)
    else:
        yield from iter_records(path)


@dataclass(frozen=True)
class Ref:
    ref_id: int
    ann_id: int
    image_id: int
    category_id: int
    split: str
    sentences: tuple[str, ...]
    where: str


def parse_ref(raw: object, where: str) -> Ref:
    """One ref, checked; DataError naming where and the field."""
    if not isinstance(raw, dict):
        raise DataError(f"{where}: expected an object, got {type(raw).__name__}")
    for key in ("ref_id", "ann_id", "image_id", "category_id"):
        if not _int(raw.get(key)):
            raise DataError(f"{where}: field {key!r}: expected an integer, got {raw.get(key)!r}")
    where = f"{where} (ref {raw['ref_id']})"
    split = raw.get("split", "")
    if not isinstance(split, str):
        raise DataError(f"{where}: field 'split': expected text, got {split!r}")
    sentences = raw.get("sentences")
    if not isinstance(sentences, list) or not sentences:
        raise DataError(f"{where}: field 'sentences': expected a list of sentences")
    texts = []
    for j, sentence in enumerate(sentences):
        text = (sentence.get("sent") or sentence.get("raw")) if isinstance(sentence, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{where}: field 'sentences[{j}]': expected {{'sent': text}}")
        texts.append(" ".join(text.split()))
    ids = (raw["ref_id"], raw["ann_id"], raw["image_id"], raw["category_id"])
    return Ref(*ids, split=split, sentences=tuple(texts), where=where)


def _words(text: str) -> set[str]:
    return set(_WORD_RE.findall(text.lower()))


@functools.cache
def category_words(category: str) -> frozenset[str]:
    """The words that name a category: each word of its name, singular or plural; for
    people, :data:`PERSON_WORDS`."""
    if category == "person":
        return PERSON_WORDS
    out = set()
    for word in category.lower().split():
        out |= {word, word + "s", word + "es"}
        if word.endswith("s"):
            out.add(word[:-1])
    return frozenset(out)


def names_category(words: set[str], category: str) -> bool:
    """Whether an expression's words name the category."""
    return not words.isdisjoint(category_words(category))


class RefCoco:
    """The instances and refs of one RefCOCO-family dataset, ready to compose samples."""

    def __init__(
        self, instances: str | Path, image_root: str | Path, *, check_images: str = "none"
    ) -> None:
        path = Path(instances)
        data = read_json(path, "instances file")
        # The dataset's own file: it must be whole, so the first bad entry raises.
        self.images: dict[int, CocoImage] = coco_images(
            data, path, image_root, check_images=check_images
        )
        self.category_of: dict[int, str] = {}
        self.supercategory: dict[str, str] = {}
        for cat in data["categories"]:
            self.category_of[cat["id"]] = cat["name"]
            self.supercategory[cat["name"]] = str(cat.get("supercategory") or cat["name"])
        self.located: dict[int, tuple[int, int]] = {}  # ann id -> (image id, object index)
        self.categories: dict[int, frozenset[str]] = {}
        self.objects: dict[int, list[dict[str, Any]]] = {}  # as samples show them, shared
        for image_id, image in self.images.items():
            self.categories[image_id] = frozenset(o["category"] for o in image.objects)
            self.objects[image_id] = [_public(o) for o in image.objects]
            for j, obj in enumerate(image.objects):
                self.located[int(obj["id"][1:])] = (image_id, j)

    def named(self, words: set[str]) -> set[str]:
        """The categories an expression's words name."""
        return {c for c in self.supercategory if names_category(words, c)}


def refcoco_samples(
    dataset: RefCoco,
    refs: Sequence[Ref],
    tally: Tally,
    *,
    families: Sequence[str] = REFCOCO_FAMILIES,
    images_per_sample: tuple[int, int] = (2, 4),
    distractors: str = "other-category",
    seed: int = 0,
    name: str = "refcoco",
) -> Iterator[Sample]:
    """One sample per expression of ``refs`` (already filtered to a split), families in
    turn, deterministic given ``seed``; see the module docstring for the rules."""
    unknown = [f for f in families if f not in REFCOCO_FAMILIES]
    if unknown or not families:
        raise MirgError(f"unknown families {unknown}; known: {', '.join(REFCOCO_FAMILIES)}")
    if distractors not in DISTRACTORS:
        raise MirgError(f"distractors must be one of {DISTRACTORS}, got {distractors!r}")
    lo, hi = images_per_sample
    if not 1 <= lo <= hi <= 6:
        raise MirgError(f"images per sample: need 1 <= min <= max <= 6, got {images_per_sample}")
    # Pools: the images this split refers to, by category and supercategory.
    pool = sorted({r.image_id for r in refs if r.image_id in dataset.images})
    by_category: dict[str, list[int]] = defaultdict(list)
    sentences_of: dict[int, set[str]] = defaultdict(set)
    for ref in refs:
        sentences_of[ref.image_id].update(s.lower() for s in ref.sentences)
    for image_id in pool:
        for category in sorted(dataset.categories[image_id]):
            by_category[category].append(image_id)
    near: dict[str, list[int]] = {}  # category -> images holding others of its supercategory
    for category in by_category:
        sc = dataset.supercategory.get(category, category)
        mates = [c for c in by_category if c != category and dataset.supercategory.get(c) == sc]
        near[category] = sorted({i for c in mates for i in by_category[c]})
    composer = _Composer(dataset, pool, by_category, near, sentences_of, distractors)
    count = 0
    for ref in refs:
        located = dataset.located.get(ref.ann_id)
        category = dataset.category_of.get(ref.category_id)
        problem = None
        if located is None or located[0] != ref.image_id:
            problem = f"field 'ann_id': no annotation {ref.ann_id} on image {ref.image_id}"
        elif category is None:
            problem = f"field 'category_id': unknown category {ref.category_id}"
        elif dataset.images[ref.image_id].objects[located[1]]["category"] != category:
            problem = f"field 'category_id': {category!r}, but annotation {ref.ann_id} is not"
        elif dataset.images[ref.image_id].objects[located[1]]["crowd"]:
            problem = f"field 'ann_id': annotation {ref.ann_id} is a crowd region"
        for j, text in enumerate(ref.sentences):
            tally.items += 1
            where = f"{ref.where}: sentence {j}"
            if problem is not None:
                tally.bad(DataError(f"{ref.where}: {problem}"), where)
                continue
            rng = random.Random(zlib.crc32(f"{name}/{seed}/{ref.ref_id}/{j}".encode()))
            family = families[count % len(families)]
            n = rng.randint(lo, hi)
            if family == "group_grounding":
                chosen, why_not = composer.group(ref, category, text, n, rng)  # type: ignore[arg-type]
                if chosen is None:
                    if "referring" not in families:
                        tally.leave_out(where, f"no group_grounding sample: {why_not}", text)
                        continue
                    tally.notes[f"referring instead of group_grounding ({why_not})"] += 1
                    family = "referring"
            if family == "referring":
                chosen = composer.referring(ref, category, n, rng)  # type: ignore[arg-type]
            assert chosen is not None
            sample = _sample(dataset, ref, j, text, category, family, chosen, rng, name)  # type: ignore[arg-type]
            if family == "group_grounding" and distractors == "same-category" and len(chosen) > 1:
                sample.meta["unique"] = "unverified"
            try:
                sample = check_sample(sample, where, paths=False)  # coco_images confined them
            except DataError as exc:
                tally.bad(exc, where)
                continue
            count += 1
            tally.written += 1
            yield sample


@dataclass(frozen=True)
class _Composer:
    """Chooses the images of a sample around the referred one."""

    dataset: RefCoco
    pool: list[int]
    by_category: dict[str, list[int]]
    near: dict[str, list[int]]
    sentences_of: dict[int, set[str]]
    mode: str

    def _draw(
        self,
        rng: random.Random,
        candidates: Sequence[int],
        need: int,
        ok: Callable[[int], bool],
        chosen: list[int],
    ) -> None:
        """Add up to ``need`` distinct images from ``candidates`` passing ``ok``."""
        tries = 0
        while len(chosen) < need and candidates and tries < 8 * need + 8:
            tries += 1
            image_id = candidates[rng.randrange(len(candidates))]
            if image_id not in chosen and ok(image_id):
                chosen.append(image_id)

    def _arrange(self, ref_image: int, others: list[int], rng: random.Random) -> list[int]:
        k = rng.randint(0, len(others))
        return [*others[:k], ref_image, *others[k:]]

    def group(
        self, ref: Ref, category: str, text: str, n: int, rng: random.Random
    ) -> tuple[list[int] | None, str]:
        """The images of a group_grounding sample, or None and why not."""
        if n < 2:
            return None, "one image per sample"
        words = _words(text)
        chosen: list[int] = []
        if self.mode == "other-category":
            named = self.dataset.named(words)
            if category not in named:
                return None, "expression does not name its category"

            def ok(image_id: int) -> bool:
                return image_id != ref.image_id and named.isdisjoint(
                    self.dataset.categories[image_id]
                )

            self._draw(rng, self.near.get(category, []), n - 1, ok, chosen)
            self._draw(rng, self.pool, n - 1, ok, chosen)
        else:
            if words <= _POSITION_WORDS | _words(category) | PERSON_WORDS:
                return None, "expression of position words only"
            phrase = text.lower()

            def ok(image_id: int) -> bool:
                return image_id != ref.image_id and phrase not in self.sentences_of[image_id]

            self._draw(rng, self.by_category.get(category, []), n - 1, ok, chosen)
        if len(chosen) < n - 1:
            return None, "too few distractor images"
        return self._arrange(ref.image_id, chosen, rng), ""

    def referring(self, ref: Ref, category: str, n: int, rng: random.Random) -> list[int]:
        """The images of a referring sample: distractors with the same category first."""
        chosen: list[int] = []

        def ok(image_id: int) -> bool:
            return image_id != ref.image_id

        self._draw(rng, self.by_category.get(category, []), n - 1, ok, chosen)
        self._draw(rng, self.pool, n - 1, ok, chosen)
        return self._arrange(ref.image_id, chosen, rng)


def _sample(
    dataset: RefCoco,
    ref: Ref,
    sentence: int,
    text: str,
    category: str,
    family: str,
    chosen: list[int],
    rng: random.Random,
    name: str,
) -> Sample:
    k = chosen.index(ref.image_id) + 1
    image_id, j = dataset.located[ref.ann_id]
    target = dataset.images[image_id].objects[j]
    question = rng.choice(_QUESTIONS[family]).format(text=text, k=k)
    return Sample(
        id=f"{name}-{ref.ref_id}-{sentence}",
        task=family,
        images=[dataset.images[i].file_name for i in chosen],
        question=question,
        target_image=k,
        target_box=tuple(target["box"]),  # type: ignore[arg-type]
        objects=[dataset.objects[i] for i in chosen],
        reference=Expression(text=text, category=category),
        target={"image": k, "object": j},
        image_sizes=[[dataset.images[i].width, dataset.images[i].height] for i in chosen],
        meta={
            "source": name,
            "ref_id": ref.ref_id,
            "ann_id": ref.ann_id,
            "sentence": sentence,
            "split": ref.split,
            "image_ids": chosen,
        },
    )


def read_refs(
    path: str | Path, tally: Tally, *, split: str | None = "train", allow_pickle: bool = False
) -> list[Ref]:
    """The refs of one split (``None``: all), checked; bad refs raise, or are left out
    under ``tally.skip_bad``."""
    out = []
    for where, raw in iter_refs(path, allow_pickle=allow_pickle):
        tally.records += 1
        try:
            if isinstance(raw, DataError):
                raise raw
            ref = parse_ref(raw, where)
        except DataError as exc:
            tally.bad(exc, where)
            continue
        if split is None or ref.split == split:
            out.append(ref)
    return out


def _read(args: Namespace, tally: Tally) -> Iterator[Sample]:
    root = Path(args.images or Path(args.instances).parent)
    dataset = RefCoco(args.instances, root, check_images=args.check_images)
    split = None if args.split == "all" else args.split
    refs = read_refs(args.refs, tally, split=split, allow_pickle=args.allow_pickle)
    if tally.records and not refs:
        raise MirgError(f"{args.refs}: no refs of split {args.split!r}; try --split all")
    if len(refs) < tally.records:
        tally.notes[f"refs of other splits than {args.split!r}"] = tally.records - len(refs)
    return refcoco_samples(
        dataset,
        refs,
        tally,
        families=tuple(f for f in args.families.split(",") if f),
        images_per_sample=args.images_per_sample,
        distractors=args.distractors,
        seed=args.seed,
        name=args.name,
    )


#: ``mirg convert --format refcoco``.
READER = Reader(
    "refcoco", _read, needs=("refs", "instances"), unit="expressions", images_beside="instances"
)
