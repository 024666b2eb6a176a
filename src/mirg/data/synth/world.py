"""Samples of the world: one drawn from its own generator, and datasets written to disk."""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from PIL import Image

from mirg.data.references import MarkedObject, TwoHop
from mirg.data.schema import Sample, write_samples
from mirg.data.synth.canvas import Canvas, NoRoom, render
from mirg.data.synth.config import WorldConfig
from mirg.data.synth.families import TASK_FAMILIES, Ctx
from mirg.errors import MirgError
from mirg.files import LOCK_FILE, check_free, folder_lock, write_json

#: Words for ``filler_words``: unrelated text between the images and the question.
FILLER_WORDS: tuple[str, ...] = tuple(
    "please look at these pictures carefully and then answer the question below here are "
    "some images for you to study take your time note that each one has a label read every "
    "part before you reply we show you a few scenes now consider them all".split()
)
SPLITS: tuple[str, ...] = ("train", "val", "test")


def _caption(canvas: Canvas) -> str:
    if canvas.crop_of is not None:
        return f"A region of Image-{canvas.crop_of[0]}."
    if not canvas.objects:
        return f"An empty {canvas.background[0]} background."
    names = ", ".join(f"a {o.size} {o.colour} {o.shape}" for o in canvas.objects)
    return f"A {canvas.background[0]} background with {names}."


def _filler(config: WorldConfig, seed: int, split: str, index: int) -> str:
    """Unrelated words to put before the question, from their own generator: the world's
    stream stays as without filler."""
    rng = random.Random(f"{seed}/{split}/{index}/filler")
    words = [rng.choice(FILLER_WORDS) for _ in range(rng.randint(*config.filler_words))]
    return " ".join(words).capitalize() + ". " if words else ""


def generate_sample(
    config: WorldConfig, family: str, seed: int, split: str, index: int
) -> tuple[Sample, list[Image.Image]]:
    """One sample and its images, from its own generator (seed, split, index, family)."""
    rng = random.Random(f"{seed}/{split}/{index}/{family}")
    for _attempt in range(50):
        try:
            built = TASK_FAMILIES[family](Ctx(config, rng))
            break
        except NoRoom:
            continue
    else:
        raise MirgError(
            f"family {family!r}: objects do not fit in {config.image_size}-px images; "
            "use fewer distractors or smaller objects"
        )
    S = config.image_size
    sample_id = f"{split}-{index:06d}"
    images: list[Image.Image] = []
    for canvas in built.canvases:
        if canvas.crop_of is not None:
            source = images[canvas.crop_of[0] - 1]
            images.append(source.crop(canvas.crop_of[1]).resize((S, S), Image.Resampling.NEAREST))
        else:
            images.append(render(canvas, S))
    # Annotations in reading order (top to bottom, left to right), not drawing order.
    orders = [sorted(c.objects, key=lambda o: (o.box[1], o.box[0])) for c in built.canvases]
    objects = [[o.annotation(S, S) for o in order] for order in orders]
    target = None
    if built.target is not None:
        k, obj = built.target
        target = {"image": k, "object": next(j for j, o in enumerate(orders[k - 1]) if o is obj)}
        x1, y1, x2, y2 = objects[k - 1][target["object"]]["box"]
        target_box = (x1, y1, x2, y2)
    else:
        assert built.region is not None  # every family draws a target object or a region
        target_box = built.region
    reference = built.reference
    if built.marked is not None and isinstance(reference, (MarkedObject, TwoHop)):
        j = orders[0].index(built.marked)  # point at the marked object's annotation
        x1, y1, x2, y2 = objects[0][j]["box"]
        reference = replace(reference, object=j, box=(x1, y1, x2, y2))
    sample = Sample(
        id=sample_id,
        task=family,
        images=[f"images/{split}/{sample_id}-{k}.png" for k in range(1, len(images) + 1)],
        question=_filler(config, seed, split, index) + built.question,
        target_image=built.target_image,
        target_box=target_box,
        objects=objects,
        relations=built.relations,
        captions=[_caption(c) for c in built.canvases],
        reference=reference,
        target=target,
        image_sizes=[[S, S] for _ in images],
        meta={"family": family, "seed": seed},
    )
    return sample, images


def family_counts(config: WorldConfig, n: int) -> dict[str, int]:
    """How many samples of each family among ``n``: proportional to the weights, exactly."""
    weights = list(config.weights or [1.0] * len(config.families))
    total = sum(weights) or 1.0
    shares = [n * w / total for w in weights]
    counts = [int(s) for s in shares]
    by_remainder = sorted(range(len(shares)), key=lambda i: (counts[i] - shares[i], i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    return dict(zip(config.families, counts, strict=True))


def split_sizes(n: int, fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> dict[str, int]:
    """Train/val/test sizes for ``n`` samples; val and test get at least one from n >= 3."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise MirgError(f"split fractions: three non-negative numbers, got {fractions}")
    total = sum(fractions)
    val = round(n * fractions[1] / total)
    test = round(n * fractions[2] / total)
    if n >= 3:
        val = max(val, 1) if fractions[1] else 0
        test = max(test, 1) if fractions[2] else 0
    return {"train": n - val - test, "val": val, "test": test}


def layout_key(sample: Sample) -> str:
    """What a model sees apart from background pixels: question and object layout."""
    return json.dumps([sample.question, sample.objects], sort_keys=True)


#: Written first and removed last: a folder holding it holds a dataset being written.
IN_PROGRESS = ".mirg-synth.json"


def _previous_dataset(out: Path) -> dict[str, Any] | None:
    """The identity recorded in ``out`` (finished or in progress), or None. A manifest
    that mirg synth did not write (unreadable, or of another generator) is reported as
    ``{"foreign": path}``: the user's file, never a dataset to replace."""
    for name in ("manifest.json", IN_PROGRESS):
        path = out / name
        if path.is_file():
            try:
                recorded = json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, OSError):
                recorded = None
            if isinstance(recorded, dict) and recorded.get("generator") == "mirg synth":
                return {k: recorded.get(k) for k in ("generator", "seed", "n", "knobs", "splits")}
            return {"foreign": str(path)}
    return None


def _clear_dataset(out: Path) -> None:
    """Remove what a previous ``mirg synth`` wrote in ``out``, and nothing else."""
    for split in SPLITS:
        shutil.rmtree(out / "images" / split, ignore_errors=True)
        (out / f"{split}.jsonl").unlink(missing_ok=True)
    for name in ("manifest.json", IN_PROGRESS):
        (out / name).unlink(missing_ok=True)


def _claim_folder(out: Path, identity: dict[str, Any], overwrite: bool) -> None:
    """Refuse ``out`` when it holds another dataset or other files, unless ``overwrite``;
    a rerun of the same dataset (finished or interrupted) rewrites the same bytes. The
    folder's lock file is no file of the user's."""
    if out.exists() and not out.is_dir():
        raise MirgError(f"{out}: --out is a file; give the path of a folder to write")
    previous = _previous_dataset(out) if out.is_dir() else None
    if previous == identity:
        return
    if previous is not None and "foreign" not in previous:
        if not overwrite:
            differ = sorted(k for k in identity if previous.get(k) != identity[k])
            raise MirgError(
                f"{out} holds another dataset (differs in {', '.join(differ) or 'its manifest'}); "
                "refusing to replace it. Choose another --out, or pass --overwrite to replace it"
            )
        _clear_dataset(out)
    elif out.is_dir() and not overwrite:
        others = sorted(child.name for child in out.iterdir() if child.name != LOCK_FILE)
        if others:
            raise MirgError(
                f"{out} holds files that are not a mirg synth dataset ({', '.join(others[:3])}"
                f"{' …' if len(others) > 3 else ''}); choose an empty or new --out folder (or "
                "pass --overwrite to write beside them, replacing those of the same names)"
            )


def dataset_identity(
    n: int, seed: int, config: WorldConfig, fractions: Sequence[float] = (0.8, 0.1, 0.1)
) -> dict[str, Any]:
    """What a dataset's manifest records of how it was made: two datasets with the same
    identity hold the same bytes."""
    return {
        "generator": "mirg synth",
        "seed": seed,
        "n": n,
        "knobs": json.loads(json.dumps(asdict(config))),
        "splits": split_sizes(n, fractions),
    }


def holds_dataset(out: Path, identity: dict[str, Any]) -> bool:
    """Whether ``out`` holds a finished dataset of this identity (nothing to write again)."""
    return (out / "manifest.json").is_file() and _previous_dataset(out) == identity


def write_dataset(
    out: str | Path,
    n: int,
    seed: int,
    config: WorldConfig,
    *,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    preset: str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write ``out/{train,val,test}.jsonl``, ``out/images/`` and ``out/manifest.json``.

    Returns the manifest: seed, knobs, counts per split and family, and how many test
    samples repeat a train sample's question and layout (small worlds repeat; say so).
    A folder holding another dataset, or other files, is refused unless ``overwrite``
    (which removes the other dataset's files first, so no stale image stays); every file
    is replaced only once complete, and the manifest comes last.
    """
    config.validate()
    if n < 1:
        raise MirgError(f"--n must be at least 1, got {n}")
    out = Path(out)
    identity = dataset_identity(n, seed, config, fractions)
    sizes = identity["splits"]
    check_free(out)  # a run in progress is named, not mistaken for another dataset
    if not overwrite:  # refuse before the lock file is made in a folder not ours
        _claim_folder(out, identity, overwrite)
    # One writer per folder: a second run (another seed) is refused, naming this one.
    with folder_lock(out, f"mirg synth (seed {seed}, n {n})"):
        _claim_folder(out, identity, overwrite)
        # the in-progress marker first and the manifest last
        write_json(out / IN_PROGRESS, identity)
        counts: dict[str, dict[str, int]] = {}
        layouts: dict[str, set[str]] = {}
        for split in SPLITS:
            (out / "images" / split).mkdir(parents=True, exist_ok=True)
            per_family = family_counts(config, sizes[split])
            order = [f for f, c in per_family.items() for _ in range(c)]
            random.Random(f"{seed}/{split}/order").shuffle(order)
            layouts[split] = set()

            def samples(split: str = split, order: list[str] = order) -> Iterator[Sample]:
                for index, family in enumerate(order):
                    sample, images = generate_sample(config, family, seed, split, index)
                    for rel, image in zip(sample.images, images, strict=True):
                        image.save(out / rel, format="PNG", compress_level=1)
                    layouts[split].add(layout_key(sample))
                    yield sample

            write_samples(out / f"{split}.jsonl", samples())
            counts[split] = {f: c for f, c in per_family.items() if c}
        manifest = {
            "generator": "mirg synth",
            "seed": seed,
            "n": n,
            "preset": preset,
            "knobs": asdict(config),
            "splits": sizes,
            "counts": counts,
            "test_layouts_seen_in_train": len(layouts["test"] & layouts["train"]),
        }
        write_json(out / "manifest.json", manifest)
        (out / IN_PROGRESS).unlink()
        return manifest
