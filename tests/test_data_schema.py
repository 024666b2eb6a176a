"""Sample schema: validation on load, bad input named precisely, --skip-bad never silent."""

from __future__ import annotations

import json

import pytest

from data_fixtures import make_world, sample_line, write_bomb_png, write_jsonl, write_png
from mirg.cli import main
from mirg.data.schema import DataError, SkipLog, read_samples, to_hf_dataset, write_samples


@pytest.fixture
def root(tmp_path):
    write_png(tmp_path / "images" / "a.png")
    return tmp_path


def test_valid_sample_loads_and_round_trips(root):
    path = write_jsonl(root / "d.jsonl", [sample_line()])
    [sample] = read_samples(path)
    assert sample.target_box == (0.25, 0.25, 0.5, 0.5) and sample.answer_image() == 1
    write_samples(root / "again.jsonl", [sample])
    assert read_samples(root / "again.jsonl")[0] == sample


@pytest.mark.parametrize(
    ("change", "field", "why"),
    [
        ({"target_box": [0.5, 0.5, 0.25, 0.75]}, "target_box", "inverted"),
        ({"target_box": [0.1, 0.1, 1.4, 0.5]}, "target_box", "outside the image"),
        ({"target_box": [0.1, 0.1, 0.5]}, "target_box", "expected 4 numbers"),
        ({"target_image": 2}, "target_image", "1..1"),
        ({"target_image": 0}, "target_image", "1-based"),
        ({"objects": [[], []]}, "objects", "one list per image"),
        (
            {"objects": [[{"box": [0.9, 0.1, 0.2, 0.3], "category": "x"}]]},
            "objects[0][0].box",
            "inverted",
        ),
        ({"image_sizes": [[64, 64], [64, 64]]}, "image_sizes", "one [w, h] per image"),
        ({"image_sizes": [[32, 64]]}, "image_sizes[0]", "the file is [64, 64]"),
        ({"images": ["../outside.png"]}, "images[0]", "escapes the dataset root"),
        ({"images": ["images/../../x.png"]}, "images[0]", "escapes the dataset root"),
        ({"images": ["/etc/passwd"]}, "images[0]", "absolute"),
        ({"images": ["images/missing.png"]}, "images[0]", "does not exist"),
        ({"question": "Image-1: <image> where?"}, "question", "more placeholders than images"),
        ({"target": {"image": 1, "object": 3}}, "target", "no annotated object 3"),
        (
            {"relations": [{"type": "crop_of", "image": 4, "source": 1}]},
            "relations[0].image",
            "1..1",
        ),
    ],
)
def test_bad_sample_names_file_line_sample_and_field(root, change, field, why):
    path = write_jsonl(root / "d.jsonl", [sample_line(id="ok"), sample_line(**change)])
    with pytest.raises(DataError) as info:
        read_samples(path)
    message = str(info.value)
    assert f"{path}:2" in message and "'s1'" in message
    assert f"'{field}" in message and why in message


def test_missing_field_and_bad_json_and_duplicate_id(root):
    no_box = sample_line()
    del no_box["target_box"]
    with pytest.raises(DataError, match=r"d\.jsonl:1: field 'target_box': missing"):
        read_samples(write_jsonl(root / "d.jsonl", [no_box]))
    (root / "e.jsonl").write_text(json.dumps(sample_line()) + "\n{not json\n")
    with pytest.raises(DataError, match=r"e\.jsonl:2: not valid JSON"):
        read_samples(root / "e.jsonl")
    with pytest.raises(DataError, match="duplicate id 's1'"):
        read_samples(write_jsonl(root / "f.jsonl", [sample_line(), sample_line()]))


def test_truncated_and_unreadable_images(root):
    good = (root / "images" / "a.png").read_bytes()
    (root / "images" / "cut.png").write_bytes(good[: len(good) // 2])
    (root / "images" / "junk.png").write_bytes(b"this is not an image")
    for name in ("cut.png", "junk.png"):
        path = write_jsonl(root / "d.jsonl", [sample_line(images=[f"images/{name}"])])
        with pytest.raises(DataError, match=rf"field 'images\[0\]': image .*{name} cannot be read"):
            read_samples(path)
        # Annotation-only checks accept it: image checking is an option.
        assert len(read_samples(path, check_images="exists")) == 1


def test_decompression_bomb_is_refused_before_decoding(root):
    write_bomb_png(root / "images" / "bomb.png")
    path = write_jsonl(
        root / "d.jsonl", [sample_line(images=["images/bomb.png"], image_sizes=None)]
    )
    with pytest.raises(DataError, match="decompression bomb"):
        read_samples(path)
    write_bomb_png(root / "images" / "big.png", 5000, 5000)  # under Pillow's limit, over ours
    path = write_jsonl(root / "d.jsonl", [sample_line(images=["images/big.png"], image_sizes=None)])
    with pytest.raises(DataError, match="over the limit of 1000000"):
        read_samples(path, max_pixels=1_000_000)


def test_skip_log_records_every_skip_with_its_reason(root):
    lines = [sample_line(id="a"), sample_line(id="b", target_box=[0.6, 0.1, 0.2, 0.3])]
    path = write_jsonl(root / "d.jsonl", lines)
    with path.open("a") as handle:
        handle.write("{broken\n")
        handle.write(json.dumps(sample_line(id="c", images=["images/gone.png"])) + "\n")
    skips = SkipLog()
    samples = read_samples(path, skips=skips)
    assert [s.id for s in samples] == ["a"]
    assert [where for where, _ in skips.entries] == [f"{path}:2", f"{path}:3", f"{path}:4"]
    reasons = " | ".join(r for _, r in skips.entries)
    assert "inverted" in reasons and "not valid JSON" in reasons and "does not exist" in reasons
    skips.write(root / "skips.log")
    assert len((root / "skips.log").read_text().splitlines()) == 3


def test_cli_fails_clearly_or_skips_with_log_and_count(root, capsys):
    path = write_jsonl(
        root / "d.jsonl", [sample_line(id="a"), sample_line(id="b", images=["../x.png"])]
    )
    out = root / "t.jsonl"
    args = ["trajectories", "--data", str(path), "--profile", "qwen3-vl", "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{path}:2" in err and "escapes the dataset root" in err and not out.exists()
    assert main([*args, "--skip-bad"]) == 0
    printed = capsys.readouterr().out
    assert "wrote 1 sft records" in printed and "skipped 1 bad samples" in printed
    log = root / "t.jsonl.skipped.log"
    assert "escapes the dataset root" in log.read_text()
    assert len(out.read_text().splitlines()) == 1


def test_to_hf_dataset(tmp_path):
    world = make_world(tmp_path / "w", n=8, seed=1)
    samples = read_samples(world / "train.jsonl")
    dataset = to_hf_dataset(samples, world)
    assert len(dataset) == len(samples)
    row = dataset[0]
    assert row["id"] == samples[0].id and row["target_box"] == list(samples[0].target_box)
    assert json.loads(row["objects"]) == samples[0].objects
    assert row["images"][0].startswith(str(world.resolve()))
    decoded = to_hf_dataset(samples, world, decode_images=True)[0]["images"][0]
    assert decoded.size == (112, 112)
