"""Readers: a COCO-style fixture the test writes, and the real MIG-Bench annotation file."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from data_fixtures import COCO_SCENES, frames, write_coco, write_png
from mirg.cli import main
from mirg.core.boxes import iou
from mirg.core.profiles import get_profile
from mirg.core.rewards import score_completion
from mirg.data.coco import coco_samples, read_coco
from mirg.data.migbench_samples import migbench_samples
from mirg.data.references import Description
from mirg.data.schema import DataError, SkipLog, read_samples
from mirg.data.trajectories import build_trajectory

# ---------------------------------------------------------------------------- COCO


@pytest.fixture
def coco(tmp_path):
    return write_coco(tmp_path)


def test_coco_reader_converts_boxes_and_sizes(coco):
    annotations, image_dir = coco
    images = read_coco(annotations, image_dir)
    assert len(images) == 4
    first = images[1]
    assert (first.width, first.height) == (100, 80)
    dog = next(o for o in first.objects if o["category"] == "dog")
    assert dog["box"] == [0.1, 0.125, 0.5, 0.5]
    assert dog["attributes"]["size"] == "medium"  # 40x30 pixels: COCO's medium
    tiny = next(o for o in images[3].objects if o["category"] == "dog")
    assert tiny["attributes"]["size"] == "small"


def test_coco_samples_target_the_described_object(coco):
    annotations, image_dir = coco
    images = read_coco(annotations, image_dir)
    samples = coco_samples(images, 12, seed=4, images_per_sample=(2, 3), min_area=0.005)
    assert len(samples) == 12
    assert Counter(s.task for s in samples) == {"group_grounding": 6, "common_object": 6}
    colours = {c: rgb for _, _, objs in COCO_SCENES for c, rgb, _ in objs}
    for s in samples:
        target = s.target_object()
        assert list(s.target_box) == target["box"]
        k = s.target_image
        match = s.reference.match
        if s.task == "group_grounding":
            fits = [
                o
                for per in s.objects
                for o in per
                if all((o["category"] if key == "category" else o["attributes"][key]) == v
                       for key, v in match.items())
            ]  # fmt: skip
            assert fits == [target]
        else:
            shared = set.intersection(*({o["category"] for o in per} for per in s.objects))
            assert shared == {match["category"]} == {target["category"]}
            assert sum(o["category"] == target["category"] for o in s.objects[k - 1]) == 1
        # The box really holds the object: the fixture filled it with the category's colour.
        arr = np.asarray(Image.open(image_dir / s.images[k - 1]).convert("RGB"))
        w, h = s.image_sizes[k - 1]
        x1, y1, x2, y2 = (round(v * d) for v, d in zip(s.target_box, (w, h, w, h), strict=True))
        assert (arr[y1:y2, x1:x2] == colours[target["category"]]).all()
        for profile in ("qwen2.5-vl", "qwen2-vl"):
            text = build_trajectory(s, profile, frames=frames(s))
            reward = score_completion(
                text, k, s.target_box, profile=profile, input_sizes=frames(s), n_images=s.n_images
            )
            # Full reward up to the rounding of the profile's integer coordinates.
            prof, frame = get_profile(profile), frames(s)[k - 1]
            best = iou(
                s.target_box, prof.to_relative(prof.from_relative(s.target_box, frame), frame)
            )
            assert (reward.image, reward.format) == (1.0, 1.0)
            assert reward.object == pytest.approx(best) and best > 0.85
    assert coco_samples(images, 12, seed=4, images_per_sample=(2, 3), min_area=0.005) == samples


def _break(annotations, change):
    data = json.loads(annotations.read_text())
    change(data)
    annotations.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["annotations"][2].update(bbox=[90, 10, 40, 30]),
            r"annotations\[2\] \(id 3\): field 'bbox'.*outside",
        ),
        (
            lambda d: d["annotations"][0].update(bbox=[10, 10, -4, 30]),
            r"annotations\[0\] \(id 1\): field 'bbox'.*positive",
        ),
        (
            lambda d: d["annotations"][1].update(category_id=99),
            r"annotations\[1\] \(id 2\): field 'category_id'",
        ),
        (lambda d: d["annotations"][1].update(image_id=42), r"field 'image_id': no image 42"),
        (
            lambda d: d["images"][0].update(file_name="../../etc/x.png"),
            r"images\[0\] \(id 1\).*escapes",
        ),
        (
            lambda d: d["images"][1].update(file_name="nope.png"),
            r"images\[1\] \(id 2\).*does not exist",
        ),
        (
            lambda d: d["images"][2].update(width=50),
            r"images\[2\] \(id 3\).*say 50x90, the file is 120x90",
        ),
    ],
)
def test_coco_bad_input_is_named(coco, change, message):
    annotations, image_dir = coco
    _break(annotations, change)
    with pytest.raises(DataError, match=message):
        read_coco(annotations, image_dir)
    skips = SkipLog()
    read_coco(annotations, image_dir, skips=skips)
    assert len(skips) == 1


def test_coco_cli_then_trajectories(coco, tmp_path, capsys):
    annotations, image_dir = coco
    write_png(image_dir / "unused.png")
    out = tmp_path / "coco.jsonl"
    args = ["coco", "--annotations", str(annotations), "--images", str(image_dir)]
    assert main([*args, "--out", str(out), "--n", "6", "--min-area", "0.005"]) == 0
    assert "wrote 6 samples" in capsys.readouterr().out
    samples = read_samples(out, root=image_dir)  # validates against the image folder
    assert len(samples) == 6
    traj = tmp_path / "traj.jsonl"
    command = [
        "trajectories",
        "--data",
        str(out),
        "--root",
        str(image_dir),
        "--profile",
        "qwen2.5-vl",
    ]
    assert main([*command, "--out", str(traj)]) == 0
    assert len(traj.read_text().splitlines()) == 6


# ---------------------------------------------------------------------------- MIG-Bench

#: Answers in the real file that are inverted or exceed 1 (the file's README lists them).
BAD_ANSWERS = [7, 34, 105, 126, 163, 512, 703]


def test_migbench_reader_over_the_real_file(migbench_path, migbench_items):
    with pytest.raises(DataError, match=r"MIG_data\.json: item 7: field 'answer'.*inverted"):
        migbench_samples(migbench_path)
    skips = SkipLog()
    samples = migbench_samples(migbench_path, skips=skips)
    assert len(samples) == 4295 - len(BAD_ANSWERS)
    assert [where.rsplit(" ", 1)[-1] for where, _ in skips.entries] == [str(i) for i in BAD_ANSWERS]
    by_index = {it.index: it for it in migbench_items}
    tasks = Counter()
    for s in samples:
        item = by_index[s.meta["index"]]
        tasks[s.task] += 1
        assert s.id == f"migbench-{item.index}"
        assert s.target_image == item.target_image and list(s.target_box) == list(item.target_box)
        assert len(s.images) == len(item.images) and s.meta["annotations"] == "target_only"
        if s.target_image is None:
            assert s.task == "diff" and s.target is None
        else:
            assert s.target_object()["box"] == list(item.target_box)
        if item.reference_boxes:
            assert list(s.reference.box) == list(item.reference_boxes[0])
    assert tasks["diff"] == 528 and tasks["common_object"] == 816 - 7 and len(tasks) == 10
    gg = next(s for s in samples if s.task == "group_grounding")
    assert isinstance(gg.reference, Description) and "<|object_ref" not in gg.reference.text


def test_migbench_trajectories_earn_full_reward(migbench_path):
    samples = migbench_samples(migbench_path, skips=SkipLog())
    for s in samples[::7]:
        text = build_trajectory(s, "qwen2-vl")
        reward = score_completion(
            text, s.target_image, s.target_box, profile="qwen2-vl", n_images=s.n_images
        )
        assert (reward.object, reward.image, reward.format) == (1.0, 1.0, 1.0), text
    with pytest.raises(DataError, match="image_sizes"):
        build_trajectory(samples[0], "qwen2.5-vl")  # absolute pixels need the images' sizes


def test_migbench_image_checking_is_an_option(migbench_path, tmp_path):
    with pytest.raises(DataError, match=r"item 0: field 'images\[0\]'.*does not exist"):
        migbench_samples(migbench_path, image_root=tmp_path, check_images="exists")


# ---------------------------------------------------------------------------- MIG-Bench files


def test_a_revised_migbench_file_is_read_and_named(migbench_path, tmp_path):
    from mirg.core.migbench import (
        PUBLIC_COUNTS,
        REVISED_COUNTS,
        bench_file,
        load_migbench,
        task_counts,
    )

    items = json.loads(migbench_path.read_text())
    assert task_counts(load_migbench(migbench_path)) == PUBLIC_COUNTS
    assert bench_file(PUBLIC_COUNTS) == "public"
    # A revised copy: fewer Common, GG and Reason items, the inverted answers put right.
    drop = {"common_object": 1, "group_grounding": 14, "reasoning": 4}
    revised = []
    for item in items:
        if drop.get(item["task"], 0) > 0:
            drop[item["task"]] -= 1
            continue
        x1, y1, x2, y2 = item["answer"]
        box = [min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)]
        revised.append(item | {"answer": [min(1.0, max(0.0, v)) for v in box]})
    path = tmp_path / "revised_MIG_bench.json"
    path.write_text(json.dumps(revised))
    assert task_counts(load_migbench(path)) == REVISED_COUNTS
    assert bench_file(REVISED_COUNTS) == "revised"
    assert len(migbench_samples(path)) == sum(REVISED_COUNTS.values()) == 4276  # no bad answer
    assert bench_file({"diff": 528, "region": 10}) == "other"  # --limit, --tasks


def test_published_rows_say_which_file_their_figures_are_fractions_of():
    from mirg.core.migbench import PUBLIC_COUNTS, REVISED_COUNTS, TASK_COLUMNS
    from mirg.eval.benchmarks.migbench import BENCH_FILE_NOTE, published_results, published_table

    def fits(row, counts):
        return all(
            abs(round(float(row[col]) * counts[task] / 100) / counts[task] * 100 - float(row[col]))
            <= 0.005 + 1e-9
            for task, col in TASK_COLUMNS.items()
        )

    rows = published_results()
    for row in rows:
        public, revised = fits(row, PUBLIC_COUNTS), fits(row, REVISED_COUNTS)
        expected = "public" if public else "revised" if revised else "unknown"
        assert row["file"] == expected, row["model"]
    assert {r["model"] for r in rows if r["file"] == "revised"} == {
        "InternVL2-8B", "Qwen2-VL-7B", "Migician", "UniVG-R1",
    }  # fmt: skip
    metrics = {
        "protocol": "official",
        "tasks": {t: {"n": n, "acc@0.5": 50.0} for t, n in PUBLIC_COUNTS.items()},
        "average": {"acc@0.5": 50.0},
    }
    html = published_table(metrics)
    assert "<th>file</th>" in html and BENCH_FILE_NOTE.split(". ")[-1] in html
    assert "<td>50.00</td><td>public</td><td>this report</td>" in html
    assert html.count("<td>revised</td>") == 4
