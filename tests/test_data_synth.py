"""The synthetic world: determinism, splits and manifest, and answers that hold in the pixels."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_fixtures import make_world
from mirg.data.schema import read_samples
from mirg.data.synth import (
    COLOURS,
    DEFAULT_FAMILIES,
    MARKER_RGB,
    PRESETS,
    WorldConfig,
    family_counts,
    generate_sample,
    split_sizes,
)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return make_world(tmp_path_factory.mktemp("world"), n=70, seed=5)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_seed_writes_the_same_bytes(tmp_path):
    a = _files(make_world(tmp_path / "a", n=21, seed=11))
    b = _files(make_world(tmp_path / "b", n=21, seed=11))
    assert a == b
    assert any(k.endswith(".png") for k in a)
    c = _files(make_world(tmp_path / "c", n=21, seed=12))
    assert c["train.jsonl"] != a["train.jsonl"]


def test_contract_files_splits_and_manifest(world):
    for name in ("train.jsonl", "val.jsonl", "test.jsonl", "manifest.json"):
        assert (world / name).is_file(), name
    manifest = json.loads((world / "manifest.json").read_text())
    assert manifest["seed"] == 5 and manifest["n"] == 70
    assert manifest["splits"] == {"train": 56, "val": 7, "test": 7}
    assert sum(manifest["counts"]["train"].values()) == 56
    assert set(manifest["counts"]["train"]) == set(DEFAULT_FAMILIES)
    assert manifest["knobs"]["image_size"] == 112
    total = 0
    for split in ("train", "val", "test"):
        samples = read_samples(world / f"{split}.jsonl")  # validates, decodes every image
        assert len(samples) == manifest["splits"][split]
        total += len(samples)
        for s in samples:
            assert s.id.startswith(split)
            assert all(p.startswith(f"images/{split}/") for p in s.images)
            assert len(s.objects) == s.n_images == len(s.captions) == len(s.image_sizes)
    assert total == 70
    line = json.loads((world / "train.jsonl").read_text().splitlines()[0])
    for key in (
        "id",
        "task",
        "images",
        "question",
        "target_image",
        "target_box",
        "objects",
        "relations",
    ):
        assert key in line
    obj = next(o for per in line["objects"] for o in per)
    assert set(obj) >= {"box", "category", "attributes"}


def _pixels(root: Path, rel: str) -> np.ndarray:
    return np.asarray(Image.open(root / rel).convert("RGB"))


def _px(box, size):
    return [round(v * size) for v in box]


def _colour_bbox(arr: np.ndarray, box_px, rgb) -> tuple[int, int, int, int] | None:
    x1, y1, x2, y2 = box_px
    region = arr[y1:y2, x1:x2]
    mask = np.all(region == np.array(rgb, np.uint8), axis=-1)
    if not mask.any():
        return None
    ys, xs = np.nonzero(mask)
    return (x1 + xs.min(), y1 + ys.min(), x1 + xs.max() + 1, y1 + ys.max() + 1)


def _feature(obj, key):
    return obj["category"] if key == "category" else obj["attributes"].get(key)


def _matches(obj, match):
    return all(_feature(obj, k) == v for k, v in match.items())


def test_every_family_answer_holds_in_the_pixels(world):
    """The target box holds the described object on the target image, drawn in its colour
    out to the box's edges, and the family's rule picks exactly that object."""
    samples = read_samples(world / "train.jsonl") + read_samples(world / "test.jsonl")
    seen = set()
    for s in samples:
        seen.add(s.task)
        size = s.image_sizes[0][0]
        ref = s.reference
        if s.task == "region":
            source = Image.open(world / s.images[0])
            j = ref.image
            x1, y1, x2, y2 = _px(s.target_box, size)
            crop = source.crop((x1, y1, x2, y2)).resize((size, size), Image.Resampling.NEAREST)
            assert np.array_equal(np.asarray(crop), _pixels(world, s.images[j - 1])), s.id
            assert s.target_image == 1
            continue
        k = s.target["image"]
        target = s.target_object()
        assert list(s.target_box) == target["box"], s.id
        arr = _pixels(world, s.images[k - 1])
        box_px = _px(s.target_box, size)
        found = _colour_bbox(arr, box_px, COLOURS[target["attributes"]["colour"]])
        assert found is not None, s.id
        assert all(abs(a - b) <= 1 for a, b in zip(found, box_px, strict=True)), (
            s.id,
            found,
            box_px,
        )
        if s.task in ("single_object", "group_grounding"):
            assert s.target_image == k
            hits = [o for per in s.objects for o in per if _matches(o, ref.match)]
            assert hits == [target], s.id  # unique across all images
        elif s.task == "common_object":
            kind = (target["category"], target["attributes"]["colour"])
            kinds = [{(o["category"], o["attributes"]["colour"]) for o in per} for per in s.objects]
            assert set.intersection(*kinds) == {kind}, s.id
            assert s.target_image == k
        elif s.task in ("visual_reference", "reasoning"):
            marked = s.objects[0][ref.object]
            assert marked.get("marked") and list(ref.box) == marked["box"]
            first = _pixels(world, s.images[0])
            mx1, my1, _mx2, my2 = _px(marked["box"], size)
            assert tuple(first[(my1 + my2) // 2, mx1 - 2]) == MARKER_RGB, s.id
            if s.task == "visual_reference":
                assert _matches(target, ref.match) and s.target_image == k >= 2
                assert sum(_matches(o, ref.match) for o in s.objects[k - 1]) == 1
            else:
                colour, shape = marked["attributes"]["colour"], marked["category"]
                assert target["attributes"]["colour"] == colour and target["category"] != shape
                rivals = [
                    o
                    for o in s.objects[k - 1]
                    if o["attributes"]["colour"] == colour and o["category"] != shape
                ]
                assert rivals == [target], s.id
        elif s.task == "diff":
            assert s.target_image is None and s.n_images == 2
            a, b = _pixels(world, s.images[0]), _pixels(world, s.images[1])
            ys, xs = np.nonzero(np.any(a != b, axis=-1))
            assert len(xs), s.id
            x1, y1, x2, y2 = box_px
            assert x1 <= xs.min() and xs.max() < x2 and y1 <= ys.min() and ys.max() < y2, s.id
    assert seen == set(DEFAULT_FAMILIES)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_valid_and_generate(name):
    config = PRESETS[name].validate()
    for family in config.families:
        sample, images = generate_sample(config, family, 0, "train", 0)
        assert len(images) == sample.n_images
        lo, hi = config.images
        if family not in ("single_object", "diff"):
            assert max(lo, 2) <= sample.n_images <= max(hi, 2)
        assert all(im.size == (config.image_size, config.image_size) for im in images)


def test_cell_grid_alignment_and_fixed_layout():
    config = PRESETS["starter"]
    questions = set()
    for i in range(30):
        sample, images = generate_sample(config, "common_object", 1, "train", i)
        assert sample.n_images == 2 and images[0].size == (84, 84)
        for per in sample.objects:
            assert len(per) == 1  # starter: the shared object alone in each image
            x1, y1, x2, y2 = (round(v * 84) for v in per[0]["box"])
            assert (x1 - 2) % 28 == 0 and (y1 - 2) % 28 == 0 and x2 - x1 == 24 == y2 - y1
        questions.add(sample.question.replace(str(sample.target_image), "K"))
    assert questions == {"These images share one object. Locate it in Image-K."}


def test_binding_preset_puts_a_look_alike_in_the_other_image():
    for i in range(20):
        sample, _ = generate_sample(PRESETS["binding"], "group_grounding", 2, "train", i)
        assert sample.n_images == 2 and all(len(per) == 1 for per in sample.objects)
        target, other = sample.target_object(), sample.objects[2 - sample.target_image][0]
        same = (target["category"] == other["category"]) + (
            target["attributes"]["colour"] == other["attributes"]["colour"]
        )
        assert same == 1  # differs in exactly one of shape and colour
        assert "Image-" not in sample.question


def test_default_look_alikes_draw_the_same_samples_as_before_the_knob():
    """Pinned annotations of the look-alike families (measured before ``look_alike_changes``
    existed): the default knob must keep every dataset drawn earlier reproducible."""
    import hashlib
    from dataclasses import asdict

    digest = hashlib.sha256()
    for preset, family in (
        ("binding", "group_grounding"),
        ("default", "visual_reference"),
        ("default", "reasoning"),
    ):
        for i in range(8):
            sample, _ = generate_sample(PRESETS[preset], family, 2, "train", i)
            digest.update(json.dumps(asdict(sample), sort_keys=True).encode())
    assert digest.hexdigest() == "26e9d3425362e6d9837e35a13b4c079514594efcbfeb610afd8cd9097409034d"


@pytest.mark.parametrize("changes", [("colour",), ("shape",)])
def test_look_alikes_change_only_the_chosen_attribute(changes):
    config = replace(PRESETS["binding"], look_alike_changes=changes)
    for i in range(20):
        sample, _ = generate_sample(config, "group_grounding", 2, "train", i)
        target, other = sample.target_object(), sample.objects[2 - sample.target_image][0]
        same_shape = target["category"] == other["category"]
        same_colour = target["attributes"]["colour"] == other["attributes"]["colour"]
        assert (same_shape, same_colour) == (
            (True, False) if changes == ("colour",) else (False, True)
        )


def test_name_object_asks_about_one_image_whose_object_the_question_never_names():
    config = replace(PRESETS["single"], families=("name_object",), images=(1, 3))
    asked = set()
    for i in range(30):
        sample, _ = generate_sample(config, "name_object", 4, "train", i)
        assert all(len(per) == 1 for per in sample.objects)  # "the object" is unambiguous
        target = sample.target_object()
        assert target is sample.objects[sample.target_image - 1][0]
        assert f"Image-{sample.target_image}" in sample.question
        assert target["attributes"]["colour"] not in sample.question
        assert target["category"] not in sample.question
        assert sample.reference.match["colour"] == target["attributes"]["colour"]
        asked.add((sample.n_images, sample.target_image))
    assert {n for n, _ in asked} == {1, 2, 3} and {k for _, k in asked} == {1, 2, 3}


def test_free_placement_with_occlusion_keeps_targets_whole():
    config = PRESETS["hard"]
    occluded = 0
    for i in range(40):
        sample, _ = generate_sample(config, "group_grounding", 0, "train", i)
        assert "occluded" not in sample.target_object()["attributes"]
        occluded += sum("occluded" in o["attributes"] for per in sample.objects for o in per)
    assert occluded > 0


def test_family_mix_and_splits():
    config = replace(PRESETS["default"], families=("diff", "region"), weights=(3.0, 1.0))
    assert family_counts(config, 10) == {"diff": 8, "region": 2}
    assert split_sizes(10) == {"train": 8, "val": 1, "test": 1}
    assert split_sizes(3) == {"train": 1, "val": 1, "test": 1}
    assert split_sizes(1) == {"train": 1, "val": 0, "test": 0}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"families": ("nope",)}, "unknown families"),
        ({"images": (0, 2)}, "images"),
        ({"cell": 30}, "cell 30"),
        ({"image_size": 56, "cell": 28}, "3x3"),
        ({"cell": 0, "min_object": 40, "max_object": 30}, "min_object"),
        ({"colours": ("red",)}, "two shapes and two colours"),
        ({"weights": (1.0,)}, "weights"),
        ({"look_alike_changes": ("size",)}, "look_alike_changes"),
        ({"look_alike_changes": ()}, "look_alike_changes"),
    ],
)
def test_bad_knobs_are_refused_by_name(change, message):
    with pytest.raises(ValueError, match=message):
        replace(WorldConfig(), **change).validate()


def test_distractors_beyond_the_grid_are_dropped_not_overlapped():
    config = replace(PRESETS["single"], images=(6, 6), distractors=(20, 20))
    sample, _ = generate_sample(config, "common_object", 0, "train", 0)
    assert sample.n_images == 6
    for per in sample.objects:
        assert len(per) == 9  # a 3x3 grid holds nine one-cell objects, the rest are dropped
        cells = {(round(o["box"][0] * 3), round(o["box"][1] * 3)) for o in per}
        assert len(cells) == 9


def test_synth_cli_contract(tmp_path, capsys):
    from mirg.cli import main

    out = tmp_path / "w"
    args = ["synth", "--out", str(out), "--n", "12", "--seed", "4", "--families", "diff:3,region"]
    assert main([*args, "--image-size", "96", "--cell", "32", "--distractors", "0-1"]) == 0
    printed = capsys.readouterr().out
    assert "wrote 12 samples" in printed and "diff" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["knobs"]["families"] == ["diff", "region"]
    assert manifest["knobs"]["weights"] == [3.0, 1.0]
    assert manifest["knobs"]["cell"] == 32 and manifest["knobs"]["image_size"] == 96
    samples = read_samples(out / "train.jsonl")
    assert {s.task for s in samples} <= {"diff", "region"}
    assert all(s.image_sizes[0] == [96, 96] for s in samples)
    assert main(["synth", "--out", str(out), "--n", "3", "--families", "nope"]) == 2
    assert "unknown family 'nope'" in capsys.readouterr().err
    binding = tmp_path / "b"
    assert main(["synth", "--out", str(binding), "--n", "10", "--preset", "binding",
                 "--look-alikes", "colour"]) == 0  # fmt: skip
    manifest = json.loads((binding / "manifest.json").read_text())
    assert manifest["knobs"]["look_alike_changes"] == ["colour"]
    for s in read_samples(binding / "train.jsonl"):
        target, other = s.target_object(), s.objects[2 - s.target_image][0]
        assert target["category"] == other["category"]
        assert target["attributes"]["colour"] != other["attributes"]["colour"]
