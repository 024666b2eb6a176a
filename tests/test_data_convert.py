"""Readers of published data (``mirg convert``): MGrounding-630k, LLaVA / VLM-R1, RefCOCO
and COCO captions, each from a handmade fixture in its published layout
(``tests/fixtures/``), through the schema, trajectories with full reward, and exports."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from data_fixtures import frames
from mirg.cli import main
from mirg.core.boxes import iou
from mirg.core.profiles import get_profile, smart_resize
from mirg.core.rewards import score_completion
from mirg.data.readers import records
from mirg.data.readers.captions import read_captions
from mirg.data.readers.conversations import read_conversations
from mirg.data.readers.mgrounding import read_mgrounding, task_of
from mirg.data.readers.records import ImageFiles, Tally, iter_records
from mirg.data.readers.refcoco import RefCoco, names_category, read_refs, refcoco_samples
from mirg.data.references import Expression, QuotedBox, Region
from mirg.data.schema import DataError, Sample, read_samples
from mirg.data.trajectories import build_trajectory

FIXTURES = Path(__file__).parent / "fixtures"
SIZES = [(160, 120), (120, 160), (200, 100), (96, 96)]


def make_images(root: Path, paths: list[str], sizes: dict[str, tuple[int, int]] | None = None):
    """Tiny images at ``paths`` under ``root``: JPEG for .jpg/.jpeg names, else PNG."""
    for i, rel in enumerate(sorted(set(paths))):
        path = root / rel.removeprefix("./")
        path.parent.mkdir(parents=True, exist_ok=True)
        size = (sizes or {}).get(rel, SIZES[i % len(SIZES)])
        image = Image.new("RGB", size, (90 + 20 * (i % 5), 110, 130))
        kind = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
        image.save(path, kind)


def earns_full_reward(samples: list[Sample], profiles=("qwen2-vl", "qwen2.5-vl", "qwen3-vl")):
    """Every sample's trajectory earns image and format reward 1 and the best object reward
    the profile's integer coordinates allow (as the COCO and MIG-Bench readers are tested)."""
    for s in samples:
        for profile in profiles:
            sizes = frames(s) if s.image_sizes else None
            text = build_trajectory(s, profile, frames=sizes)
            reward = score_completion(
                text,
                s.target_image,
                s.target_box,
                profile=profile,
                input_sizes=sizes,
                n_images=s.n_images,
            )
            k = s.answer_image()
            prof, frame = get_profile(profile), sizes[k - 1] if sizes else None
            best = iou(
                s.target_box, prof.to_relative(prof.from_relative(s.target_box, frame), frame)
            )
            assert (reward.image, reward.format) == (1.0, 1.0), (s.id, profile, text)
            assert reward.object == pytest.approx(best) and best > 0.85, (s.id, profile)


def exports_load(data: Path, root: Path, tmp_path: Path, profile: str = "qwen2.5-vl") -> None:
    """``mirg export`` writes TRL sft/grpo, verl and LLaMA-Factory files from the samples."""
    n = len(data.read_text().splitlines())
    for fmt, name in (
        ("sft", "sft.jsonl"),
        ("grpo", "grpo.jsonl"),
        ("verl", "verl.parquet"),
        ("sharegpt", "sharegpt.json"),
    ):
        out = tmp_path / "exports" / name
        args = ["export", "--format", fmt, "--data", str(data), "--root", str(root)]
        assert main([*args, "--profile", profile, "--out", str(out)]) == 0
        if fmt in ("sft", "grpo"):
            assert len(out.read_text().splitlines()) == n
        elif fmt == "sharegpt":
            assert len(json.loads(out.read_text())) == n
        else:
            import pyarrow.parquet as pq

            assert pq.read_table(out).num_rows == n


# ---------------------------------------------------------------------------- MGrounding-630k


@pytest.fixture
def mgrounding(tmp_path) -> tuple[Path, Path]:
    root = tmp_path / "data"
    root.mkdir()
    source = root / "MGrounding-630k.json"
    shutil.copy(FIXTURES / "mgrounding" / "MGrounding-630k.json", source)
    paths = [p for r in json.loads(source.read_text()) for p in r["images"]]
    make_images(root, paths)
    return source, root


#: sample id -> (task, target image, box in 0..1000), as the fixture's answers say.
MG_EXPECTED = {
    "5229016_8929009_6793119_3571391-0": ("group_grounding", 3, (316, 58, 764, 999)),
    "5229016_8929009_6793119_3571391-1": ("group_grounding", 1, (408, 656, 578, 997)),
    "objects365_v2_01803705_objects365_v2_01642180_objects365_v2_00905823-0": (
        "common_object",
        2,
        (120, 240, 480, 810),
    ),
    "spot_the_diff_10014-0": ("diff", None, (612, 345, 733, 520)),
    "objects365_v2_00117524_objects365_v2_00253612-0": ("free_form", 2, (55, 102, 391, 955)),
    "GOT-10k_Train_000001-0": ("object_tracking", 3, (181, 296, 540, 760)),
    "n01440764_10026-0": ("refer_grounding", 2, (203, 150, 870, 640)),
    "objects365_v2_00900003-0": ("region", 1, (500, 420, 980, 960)),
}


def test_mgrounding_fixture_converts_every_box_answer(mgrounding, tmp_path, capsys):
    source, root = mgrounding
    out = tmp_path / "mg.jsonl"
    args = ["convert", "--format", "mgrounding", "--input", str(source), "--out", str(out)]
    assert main([*args, "--image-sizes", "--check-images", "decode"]) == 0
    summary = capsys.readouterr().out
    assert "wrote 8 samples" in summary and "from 10 records (12 turns)" in summary
    assert "left out 4 turns" in summary
    for reason in (
        "answer has no box (gg_reg) 1",
        "answer has no box (free_form) 1",
        "answer has several boxes (diff_train) 1",
        "no target image (gg_train) 1",
    ):
        assert reason in summary
    log = Path(f"{out}.skipped.log").read_text().splitlines()
    assert len(log) == 4 and all("MGrounding-630k.json:" in line for line in log)

    samples = read_samples(out, root=root)  # the schema, every image decoded
    assert {s.id: (s.task, s.target_image, s.target_box) for s in samples} == {
        i: (task, k, pytest.approx(tuple(v / 1000 for v in box)))
        for i, (task, k, box) in MG_EXPECTED.items()
    }
    by_id = {s.id: s for s in samples}
    gg = by_id["5229016_8929009_6793119_3571391-0"]
    assert gg.reference.text == "a statue of a man" and gg.n_images == 4
    assert gg.question.startswith("Give the bounding box") and "<image>" not in gg.question
    assert gg.meta["annotations"] == "target_only" and gg.target_object()["box"] == list(
        gg.target_box
    )
    second_turn = by_id["5229016_8929009_6793119_3571391-1"]
    assert second_turn.images == gg.images  # a later turn keeps the record's images
    ot = by_id["GOT-10k_Train_000001-0"]
    assert ot.reference == QuotedBox(image=1, box=(0.139, 0.305, 0.495, 0.743))
    assert ot.relations == [{"type": "same_object", "images": [1, 2, 3]}]
    region = by_id["objects365_v2_00900003-0"]
    assert region.reference == Region(image=3, source=1)
    assert {"type": "crop_of", "image": 2, "source": 1} in region.relations
    assert all(s.image_sizes for s in samples)

    earns_full_reward(samples)
    think = build_trajectory(region, "qwen2-vl").split("</think>")[0]
    assert "Image-3 is a region of Image-1" in think  # image-level facts from the subset
    exports_load(out, root, tmp_path)


def test_mgrounding_streams_a_json_list_across_buffer_edges(mgrounding, monkeypatch):
    source, _ = mgrounding
    whole = json.loads(source.read_text())
    monkeypatch.setattr(records, "_CHUNK", 97)  # records straddle many refills
    items = list(iter_records(source))
    assert [r for _, r in items] == whole
    assert items[1][0] == f"{source}:30 (item 1)"  # the line each record starts on
    minified = source.with_name("min.json")
    minified.write_text(json.dumps(whole))
    assert [r for _, r in iter_records(minified)] == whole
    jsonl = source.with_name("lines.jsonl")
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in whole))
    assert [r for _, r in iter_records(jsonl)] == whole


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda r: r["conversations"][0].update(value="<image>\nFind the cat."),
            r"MGrounding-630k\.json:2 \(item 0\): record '5229016_8929009_6793119_3571391': "
            r"field 'conversations': 1 '<image>' placeholder\(s\) but 4 image\(s\)",
        ),
        (
            lambda r: r["conversations"][1].update(
                value="<|box_start|>(316,58),(764,1299)<|box_end|>"
            ),
            r"item 0\): record '5229016.*': turn 0: field 'answer'.*outside the image",
        ),
        (
            lambda r: r["images"].__setitem__(1, "../../etc/passwd"),
            r"record '5229016.*': field 'images\[1\]'.*escapes the dataset root",
        ),
        (
            lambda r: r["conversations"].pop(),
            r"record '5229016.*': field 'conversations\[2\]': expected a human turn then a gpt",
        ),
        (
            lambda r: r["conversations"][1].update(value="It's in the fifth image. (1,2),(30,40)"),
            r"record '5229016.*': turn 0: field 'answer': names image 5 of 4",
        ),
    ],
)
def test_mgrounding_bad_records_are_named(mgrounding, tmp_path, change, message):
    source, root = mgrounding
    data = json.loads(source.read_text())
    change(data[0])
    source.write_text(json.dumps(data, indent=4))
    with pytest.raises(DataError, match=message):
        list(read_mgrounding(source, images=ImageFiles(root, "exists"), tally=Tally()))
    tally = Tally(unit="turns", skip_bad=True)
    kept = list(read_mgrounding(source, images=ImageFiles(root, "exists"), tally=tally))
    assert tally.reasons["bad record"] >= 1 and len(kept) >= 6


def test_mgrounding_cut_short_and_subset_names(mgrounding, tmp_path):
    source, _ = mgrounding
    text = source.read_text()
    source.write_text(text[: len(text) // 2])
    with pytest.raises(DataError, match=r"MGrounding-630k\.json:\d+: item \d is not valid JSON"):
        list(iter_records(source))
    assert task_of("gg_train") == "group_grounding" and task_of("region_train") == "region"
    assert task_of("_gg_reg_40k") == "group_grounding" and task_of("ot_train") == "object_tracking"
    assert task_of("free_form_grounding_130k") == "free_form" and task_of("xyz") == "xyz"


# ---------------------------------------------------------------------------- LLaVA / VLM-R1

LLAVA_SIZES = {
    "train2014/COCO_train2014_000000581857.jpg": (427, 640),
    "train2014/COCO_train2014_000000000009.jpg": (640, 480),
}


@pytest.fixture
def llava(tmp_path) -> Path:
    root = tmp_path / "coco"
    root.mkdir()
    for name in ("refcoco_train.jsonl", "refcoco_val.json", "multi_image.jsonl"):
        shutil.copy(FIXTURES / "llava" / name, root / name)
    shutil.copy(FIXTURES / "llava" / "qwen25_frames.jsonl", root / "qwen25_frames.jsonl")
    make_images(
        root, [*LLAVA_SIZES, "pairs/mug_a.png", "pairs/mug_b.png", "pairs/desk.png"], LLAVA_SIZES
    )
    return root


def test_vlmr1_pixel_boxes_convert_with_the_image_sizes(llava, tmp_path, capsys):
    out = tmp_path / "rec.jsonl"
    inputs = [str(llava / "refcoco_train.jsonl"), str(llava / "refcoco_val.json")]
    args = ["convert", "--format", "llava", "--input", *inputs, "--profile", "pixels"]
    assert main([*args, "--out", str(out), "--image-sizes"]) == 0
    summary = capsys.readouterr().out
    assert "wrote 5 samples" in summary and "from 6 records" in summary
    assert "left out 1 turn: answer has no box 1" in summary
    samples = read_samples(out, root=llava)
    lady = samples[0]
    w, h = LLAVA_SIZES[lady.images[0]]
    assert lady.target_box == pytest.approx((103.93 / w, 299.99 / h, 238.15 / w, 477.41 / h))
    assert lady.reference.text == "the lady with the blue shirt"
    assert lady.question.startswith("Please provide the bounding box")
    assert samples[3].target_box == lady.target_box  # the REC json holds the same box
    assert samples[3].image_sizes == [[427, 640]]  # taken from its width/height fields
    assert len({s.id for s in samples}) == len(samples)  # ids unique across the two files
    earns_full_reward(samples)
    exports_load(out, llava, tmp_path)


def test_llava_multi_image_and_qwen25_frames(llava, tmp_path, capsys):
    out = tmp_path / "multi.jsonl"
    args = ["convert", "--format", "llava", "--input", str(llava / "multi_image.jsonl")]
    assert main([*args, "--profile", "qwen2-vl", "--out", str(out), "--image-sizes"]) == 0
    assert "wrote 3 samples" in capsys.readouterr().out
    samples = read_samples(out, root=llava)
    assert [(s.id, s.target_image) for s in samples] == [
        ("pair-0-0", 2),
        ("pair-1-0", 3),
        ("pair-1-1", 3),
    ]
    assert samples[2].question == "And the keyboard?" and samples[2].n_images == 3
    earns_full_reward(samples)

    out = tmp_path / "q25.jsonl"
    args = ["convert", "--format", "llava", "--input", str(llava / "qwen25_frames.jsonl")]
    assert main([*args, "--profile", "qwen2.5-vl", "--out", str(out), "--task", "referring"]) == 0
    (bowl,) = read_samples(out, root=llava)
    fh, fw = smart_resize(480, 640)
    assert bowl.task == "referring"
    assert bowl.target_box == pytest.approx((320 / fw, 214 / fh, 644 / fw, 467 / fh))
    assert iou(bowl.target_box, (318.2 / 640, 215.4 / 480, 1.0, 470.6 / 480)) > 0.99
    assert bowl.image_sizes == [[640, 480]]  # read for the profile, kept for exports
    earns_full_reward([bowl])


def test_llava_placeholders_must_number_the_images(llava, tmp_path):
    bad = llava / "bad.jsonl"
    record = json.loads((llava / "multi_image.jsonl").read_text().splitlines()[0])
    record["image"].append("pairs/desk.png")
    bad.write_text(json.dumps(record) + "\n")
    out = tmp_path / "bad.jsonl"
    args = ["convert", "--format", "llava", "--input", str(bad), "--profile", "qwen2-vl"]
    with pytest.raises(DataError, match=r"bad\.jsonl:1: record 'pair-0': field 'conversations': "
                       r"2 '<image>' placeholder\(s\) but 3 image\(s\)"):  # fmt: skip
        list(read_conversations(bad, profile="qwen2-vl", images=ImageFiles(llava), tally=Tally()))
    assert main([*args, "--out", str(out)]) == 2  # the command says it in one line
    assert main([*args, "--out", str(out), "--skip-bad"]) == 0
    assert "bad record" in Path(f"{out}.skipped.log").read_text()
    assert out.read_text() == ""


def test_a_turn_left_out_for_a_bad_box_takes_no_sample_id(llava):
    """Ids repeat in real files; a skipped turn must not push the next one to ``id@position``."""
    record = json.loads((llava / "multi_image.jsonl").read_text().splitlines()[0])
    broken = json.loads(json.dumps(record))
    broken["conversations"][1]["value"] = "<|box_start|>(400,600),(100,200)<|box_end|>"  # inverted
    quoted = json.loads(json.dumps(record))  # the quoted box fails after the answer's passed
    quoted["conversations"][0]["value"] += " <|box_start|>(900,900),(100,100)<|box_end|>"
    path = llava / "repeated.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (broken, quoted, record)))
    tally = Tally(skip_bad=True)
    images = ImageFiles(llava)
    samples = list(read_conversations(path, profile="qwen2-vl", images=images, tally=tally))
    assert [s.id for s in samples] == ["pair-0-0"]
    assert tally.reasons == {"bad record": 2}
    assert "quoted box" in tally.log.entries[1][1]


# ---------------------------------------------------------------------------- RefCOCO

COLOURS = {
    1: (220, 40, 40),
    3: (40, 40, 220),
    6: (200, 200, 40),
    17: (40, 200, 40),
    18: (150, 80, 20),
}


@pytest.fixture
def refcoco(tmp_path) -> Path:
    """The fixture's instances and refs, and images with each object filled in its
    category's colour."""
    root = tmp_path / "refcoco"
    root.mkdir()
    for name in ("instances.json", "refs.json", "captions_train2014.json"):
        shutil.copy(FIXTURES / "refcoco" / name, root / name)
    data = json.loads((root / "instances.json").read_text())
    images = root / "train2014"
    images.mkdir()
    for im in data["images"]:
        canvas = Image.new("RGB", (im["width"], im["height"]), (128, 128, 128))
        draw = ImageDraw.Draw(canvas)
        for ann in data["annotations"]:
            if ann["image_id"] == im["id"]:
                x, y, w, h = (int(v) for v in ann["bbox"])
                draw.rectangle((x, y, x + w - 1, y + h - 1), fill=COLOURS[ann["category_id"]])
        canvas.save(images / im["file_name"], "PNG")  # lossless, named .jpg as COCO's are
    return root


def refcoco_cli(root: Path, out: Path, *extra: str) -> int:
    args = ["convert", "--format", "refcoco", "--refs", str(root / "refs.json")]
    args += ["--instances", str(root / "instances.json"), "--images", str(root / "train2014")]
    return main([*args, "--out", str(out), *extra])


def test_refcoco_composes_unique_multi_image_samples(refcoco, tmp_path, capsys):
    out = tmp_path / "ref.jsonl"
    captions = str(refcoco / "captions_train2014.json")
    assert refcoco_cli(refcoco, out, "--check-images", "decode", "--captions", captions) == 0
    summary = capsys.readouterr().out
    assert "wrote 8 samples" in summary and "from 7 records (8 expressions)" in summary
    assert "refs of other splits than 'train': 1" in summary
    assert (
        "referring instead of group_grounding (expression does not name its category): 1" in summary
    )
    samples = read_samples(out, root=refcoco / "train2014")
    assert {s.task for s in samples} == {"group_grounding", "referring"}
    instances = json.loads((refcoco / "instances.json").read_text())
    names = {c["id"]: c["name"] for c in instances["categories"]}
    for s in samples:
        ref = s.reference
        assert isinstance(ref, Expression) and s.target_object()["category"] == ref.category
        assert s.target_object()["id"] == f"a{s.meta['ann_id']}"
        assert 1005 not in s.meta["image_ids"]  # the val image never enters train samples
        assert s.meta["caption_source"] == "captions_train2014.json"
        k = s.target_image
        if s.task == "group_grounding":
            assert "Image-" not in s.question and f'"{ref.text}"' in s.question
            # Uniqueness the annotations prove: no other image holds a category it names.
            words = set(ref.text.split())
            for i, objs in enumerate(s.objects, 1):
                if i != k:
                    assert not any(names_category(words, o["category"]) for o in objs), s.id
        else:
            assert f"Image-{k}" in s.question
        # The box holds the object: the image is filled with its category's colour there.
        arr = np.asarray(Image.open(refcoco / "train2014" / s.images[k - 1]).convert("RGB"))
        w, h = s.image_sizes[k - 1]
        x1, y1, x2, y2 = (round(v * d) for v, d in zip(s.target_box, (w, h, w, h), strict=True))
        colour = COLOURS[next(i for i, n in names.items() if n == ref.category)]
        assert (arr[y1:y2, x1:x2] == colour).all(), s.id
    earns_full_reward(samples)
    gg = next(s for s in samples if s.task == "group_grounding")
    think = build_trajectory(gg, "qwen3-vl").split("</think>")[0]
    assert f'"{gg.reference.text}"' in think
    assert f"no {gg.reference.category}" in think  # distractor images ruled out by category
    assert gg.captions[0].rstrip(".").lower()[:20] in think.lower()  # image-level facts
    again = tmp_path / "again.jsonl"
    assert refcoco_cli(refcoco, again, "--captions", captions) == 0
    assert again.read_text() == out.read_text()  # deterministic
    exports_load(out, refcoco / "train2014", tmp_path)


def test_refcoco_same_category_distractors_are_marked_unverified(refcoco):
    tally = Tally(unit="expressions")
    dataset = RefCoco(refcoco / "instances.json", refcoco / "train2014")
    refs = read_refs(refcoco / "refs.json", tally, split=None)
    assert len(refs) == 7
    options = {"families": ["group_grounding"], "images_per_sample": (2, 2)}
    samples = list(refcoco_samples(dataset, refs, tally, distractors="same-category", **options))
    assert len(samples) >= 3 and all(s.meta["unique"] == "unverified" for s in samples)
    for s in samples:  # every distractor holds the target's category: harder negatives
        assert all(any(o["category"] == s.reference.category for o in objs) for objs in s.objects)
    # Position words alone fit an object in any image: never composed this way.
    assert "man on the left" not in {s.reference.text for s in samples}
    assert tally.reasons["no group_grounding sample: expression of position words only"] >= 2


def test_refcoco_parquet_and_pickle_forms_read_the_same_refs(refcoco, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    refs = json.loads((refcoco / "refs.json").read_text())
    rows = [
        r | {"raw_anns": "{}", "raw_image_info": "{}", "image_path": f"coco/train2014/{r['file_name']}",
             "bbox": [0.0, 0.0, 1.0, 1.0], "captions": [], "global_image_id": f"coco.{r['image_id']}"}
        for r in refs
    ]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows), refcoco / "refs.parquet")
    pickled = refcoco / "refs(unc).p"
    pickled.write_bytes(pickle.dumps(refs, protocol=2))
    from_json = tmp_path / "json.jsonl"
    assert refcoco_cli(refcoco, from_json) == 0
    for name, extra in (("refs.parquet", ()), ("refs(unc).p", ("--allow-pickle",))):
        out = tmp_path / f"{name}.jsonl"
        args = ["convert", "--format", "refcoco", "--refs", str(refcoco / name)]
        args += [
            "--instances",
            str(refcoco / "instances.json"),
            "--images",
            str(refcoco / "train2014"),
        ]
        assert main([*args, "--out", str(out), *extra]) == 0
        assert out.read_text() == from_json.read_text(), name


def test_refcoco_pickles_are_refused_unless_asked_and_never_run_code(refcoco, tmp_path):
    pickled = refcoco / "refs(unc).p"
    pickled.write_bytes(pickle.dumps(json.loads((refcoco / "refs.json").read_text())))
    with pytest.raises(DataError, match=r"refs\(unc\)\.p: a pickle; mirg does not unpickle"):
        read_refs(pickled, Tally())
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    evil = refcoco / "evil.p"
    evil.write_bytes(pickle.dumps([Evil()]))
    with pytest.raises(DataError, match=r"evil\.p: cannot be read as a plain-data pickle.*pathlib"):
        read_refs(evil, Tally(), allow_pickle=True)
    assert not marker.exists()


def test_refcoco_bad_refs_are_named(refcoco):
    refs = json.loads((refcoco / "refs.json").read_text())
    refs[2]["ann_id"] = 999
    refs[3]["sentences"] = []
    (refcoco / "refs.json").write_text(json.dumps(refs, indent=1))
    dataset = RefCoco(refcoco / "instances.json", refcoco / "train2014")
    with pytest.raises(DataError, match=r"refs\.json:\d+ \(item 3\) \(ref 4\): field 'sentences'"):
        read_refs(refcoco / "refs.json", Tally())
    tally = Tally(unit="expressions", skip_bad=True)
    refs = read_refs(refcoco / "refs.json", tally)
    samples = list(refcoco_samples(dataset, refs, tally))
    assert tally.reasons["bad record"] == 1 + 2  # the empty ref, both sentences of ref 3
    assert "field 'ann_id': no annotation 999 on image 1002" in "".join(
        r for _, r in tally.log.entries
    )
    assert len(samples) == 5


def test_names_category():
    assert names_category({"left", "guy"}, "person") and not names_category(
        {"left", "one"}, "person"
    )
    assert names_category({"two", "dogs"}, "dog") and names_category({"the", "bus"}, "bus")
    assert names_category({"buses"}, "bus") and names_category({"table"}, "dining table")
    assert not names_category({"cat"}, "dog")


# ---------------------------------------------------------------------------- COCO captions


def test_coco_captions_join_into_samples(refcoco, tmp_path, capsys):
    plain = tmp_path / "plain.jsonl"
    assert refcoco_cli(refcoco, plain) == 0
    assert all(not s.captions for s in read_samples(plain, root=refcoco / "train2014"))
    out = tmp_path / "captioned.jsonl"
    args = ["convert", "--format", "coco-captions", "--data", str(plain), "--images"]
    args += [str(refcoco / "train2014"), "--captions", str(refcoco / "captions_train2014.json")]
    assert main([*args, "--out", str(out)]) == 0
    summary = capsys.readouterr().out
    assert "wrote 8 samples" in summary and "images captioned: " in summary
    samples = read_samples(out, root=refcoco / "train2014")
    index = read_captions(refcoco / "captions_train2014.json")
    for s in samples:
        assert s.captions == [index.by_id.get(i, "") for i in s.meta["image_ids"]]
    earns_full_reward(samples)
    # By file name alone (no image ids), and across the 2014/2017 naming.
    assert index.caption("val2017/000000001004.jpg") == "A cat sits beside a parked car."
    assert index.caption("x/COCO_train2014_000000001002.jpg") == "Two dogs playing on the grass."
    assert index.caption("sa_1004.jpg") == ""
    # The join refuses to overwrite its input.
    assert main([*args[:4], str(out), *args[5:], "--out", str(out)]) == 2


def test_coco_instances_with_captions_reason_at_both_levels(tmp_path, capsys):
    from data_fixtures import write_coco

    annotations, image_dir = write_coco(tmp_path)
    data = json.loads(annotations.read_text())
    captions = tmp_path / "captions_train2017.json"
    texts = ["A dog and a cat on a lawn.", "A dog chasing a bird.", "A car beside a puppy."]
    captions.write_text(
        json.dumps(
            {
                "images": data["images"],
                "annotations": [
                    {"id": 10 + i, "image_id": i + 1, "caption": t} for i, t in enumerate(texts)
                ],
            }
        )
    )
    out = tmp_path / "coco.jsonl"
    args = ["coco", "--annotations", str(annotations), "--images", str(image_dir)]
    assert (
        main(
            [
                *args,
                "--out",
                str(out),
                "--n",
                "6",
                "--min-area",
                "0.005",
                "--captions",
                str(captions),
            ]
        )
        == 0
    )
    assert "samples captioned from" in capsys.readouterr().out
    samples = read_samples(out, root=image_dir)
    captioned = [s for s in samples if any(s.captions)]
    assert captioned and all(s.meta["caption_source"] == captions.name for s in captioned)
    for s in captioned:
        think = build_trajectory(s, "qwen2-vl").split("</think>")[0]
        # Image-level facts first ("Image-2 shows a dog chasing a bird."), then the walk.
        places = [think.index(c[2:].rstrip(".")) for c in s.captions if c]
        assert max(places) < think.index("[")
    earns_full_reward(samples)
    brief = build_trajectory(captioned[0], "qwen2-vl", detail="brief")
    assert texts[0][2:-1] not in brief  # brief trajectories keep to the reference and scope
