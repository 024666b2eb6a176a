"""Images and questions under bad input, third round (issue 20), run as a user would.

One way to open an image: a photo whose EXIF tag says to turn it is seen turned (as a
viewer shows it) by the export's frames, training's frames and decoded pixels,
evaluation, predict and the report, and the target box covers the same object in each.
One root for every image a sample names: training confines its images as ``mirg
trajectories``, export, evaluation and the report do. Images are checked, and named,
before a model loads; a link to a folder says so. Qwen-VL's reserved tokens in a question
are refused up front, naming the file, record and field. A UTF-8 byte order mark is read
by every JSON and JSONL reader.

Each refusal is exit code 2 with one line naming the file, record and field, and leaves
every input as it was.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import struct
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image, ImageDraw

from data_fixtures import sample_line, write_bomb_png, write_coco, write_png
from mirg.cli import main
from mirg.core.profiles import get_profile
from mirg.core.prompts import RESERVED_TOKENS, PromptError, build_messages
from mirg.data.schema import DataError, image_size, open_image

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

#: The photo as a viewer shows it (portrait), and where its one blue object lies (pixels,
#: right and bottom exclusive): the box an annotation tool would have drawn.
SHOWN = (64, 128)
OBJECT = (8, 16, 24, 48)
BLUE = (20, 40, 230)
TARGET = [OBJECT[0] / SHOWN[0], OBJECT[1] / SHOWN[1], OBJECT[2] / SHOWN[0], OBJECT[3] / SHOWN[1]]
#: How a camera stores the shown picture under each EXIF orientation: the inverse of what
#: the tag tells a viewer (and ``ImageOps.exif_transpose``) to do.
STORED = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def shown_picture() -> Image.Image:
    image = Image.new("RGB", SHOWN, (128, 128, 128))
    ImageDraw.Draw(image).rectangle([OBJECT[0], OBJECT[1], OBJECT[2] - 1, OBJECT[3] - 1], BLUE)
    return image


def write_photo(path: Path, orientation: int, fmt: str = "JPEG") -> Path:
    """The shown picture stored as a camera stores it, tagged with ``orientation``."""
    stored = shown_picture()
    if STORED[orientation] is not None:
        stored = stored.transpose(STORED[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    stored.save(path, format=fmt, exif=exif, **({"quality": 95} if fmt == "JPEG" else {}))
    return path


def exif_after_pixels(path: Path) -> Path:
    """Move a PNG's eXIf chunk behind its pixel data (allowed by the format; Pillow then
    reads the tag only once the pixels are decoded)."""
    data, chunks, pos = path.read_bytes(), [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        chunks.append(data[pos : pos + 12 + length])
        pos += 12 + length
    exif = [c for c in chunks if c[4:8] == b"eXIf"]
    rest = [c for c in chunks if c[4:8] != b"eXIf"]
    assert exif and rest[-1][4:8] == b"IEND"
    path.write_bytes(data[:8] + b"".join(rest[:-1]) + exif[0] + rest[-1])
    return path


def object_box(image: Image.Image) -> tuple[int, int, int, int]:
    """Where the blue object is in an image (pixels, right and bottom exclusive)."""
    pixels = np.asarray(image.convert("RGB")).astype(int)
    blue = np.argwhere((pixels[..., 2] > 150) & (pixels[..., 0] < 90))
    (y1, x1), (y2, x2) = blue.min(0), blue.max(0)
    return int(x1), int(y1), int(x2) + 1, int(y2) + 1


def assert_covers(box: tuple[float, ...], image: Image.Image, tolerance: float = 1) -> None:
    """The box (pixels of ``image``) lies on the object found in ``image``."""
    found = object_box(image)
    assert all(abs(a - b) <= tolerance for a, b in zip(box, found, strict=True)), (box, found)


def checksums(root: Path) -> dict[str, str]:
    """Content hash of every file under ``root`` (links are not followed)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def jsonl(path: Path, records: list[dict], prefix: bytes = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(prefix + "".join(json.dumps(r) + "\n" for r in records).encode())
    return path


def refused(argv: list[object], capsys, root: Path, *says: object) -> str:
    """Run a command line that must fail as a user error: exit 2, one line holding each of
    ``says``, and no file under ``root`` changed."""
    before = checksums(root)
    argv = [str(a) for a in argv]
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith(f"mirg {argv[0]}: error: ") and "\n" not in err, err
    assert "Traceback" not in err, err
    for fragment in says:
        assert str(fragment) in err, err
    assert checksums(root) == before, "an input changed"
    return err


class ModelLoaded(Exception):
    """Raised where a training run would load its model: the data checks came first."""


@pytest.fixture
def no_model_loads(monkeypatch):
    """Training's model loading, replaced by a tripwire."""
    import mirg.train.setup as common

    def tripwire(config):
        raise ModelLoaded(config.model_name_or_path)

    monkeypatch.setattr(common, "load_for_training", tripwire)


def train_argv(stage: str, model: Path, data: Path, out: Path, *extra: object) -> list[object]:
    return ["train", stage, "--model_name_or_path", model, "--dataset_path", data,
            "--output_dir", out, "--use_cpu", "true", "--report_to", "none", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def q25(tmp_path_factory) -> Path:
    """A tiny Qwen2.5-VL (absolute-pixel coordinates: frames matter) and its processor."""
    pytest.importorskip("torchvision")
    from mirg.models.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("q25") / "q25", "qwen2.5-vl")


# ---------------------------------------------------------------------------------------
# 1. One way to open an image: every orientation, seen as shown everywhere.

PHOTOS = [pytest.param(o, "JPEG", False, id=f"jpeg-orientation-{o}") for o in range(1, 9)] + [
    pytest.param(6, "PNG", False, id="png-orientation-6"),
    pytest.param(7, "PNG", True, id="png-orientation-7-exif-after-pixels"),
]


@pytest.mark.parametrize(("orientation", "fmt", "late_exif"), PHOTOS)
def test_export_training_evaluation_predict_and_report_see_the_photo_as_shown(
    orientation, fmt, late_exif, q25, tmp_path, monkeypatch, capsys
):
    from mirg.eval import predict as predict_module
    from mirg.eval import predict_cli
    from mirg.eval.benchmarks import load_eval_items
    from mirg.eval.generation import Generation, image_sizes, load_images
    from mirg.eval.report import thumbnail
    from mirg.models import load_processor
    from mirg.models.loading import frame_rule
    from mirg.train.data import check_record_images, grpo_records, sft_records, to_dataset

    data = tmp_path / "data"
    name = f"images/photo.{fmt.lower()}"
    photo = write_photo(data / name, orientation, fmt)
    if late_exif:
        exif_after_pixels(photo)
    box = [round(v, 4) for v in TARGET]
    objects = [[{"box": box, "category": "square", "attributes": {"colour": "blue"}}]]
    question = "Locate the blue square in Image-1."
    samples = jsonl(data / "samples.jsonl", [sample_line(
        images=[name], image_sizes=[list(SHOWN)], target_box=box, objects=objects,
        question=question)])  # fmt: skip
    before = checksums(data)

    # the size every reader measures is the size as shown
    assert image_size(photo, "photo") == SHOWN
    assert image_sizes([str(photo)]) == [SHOWN]

    # export: its frames (input_sizes) are those of the photo as shown, for the model's
    # processor, and the samples' image_sizes ([w, h] as shown) pass the decode check
    out = tmp_path / "out"
    for fmt_name in ("grpo", "sft"):
        code = main(["export", "--format", fmt_name, "--profile", "qwen2.5-vl", "--model", str(q25),
                     "--data", str(samples), "--out", str(out / f"{fmt_name}.jsonl")])  # fmt: skip
        assert code == 0, capsys.readouterr().err
    processor = load_processor(q25)
    frames = frame_rule(processor).frames([SHOWN])
    record = json.loads((out / "grpo.jsonl").read_text())
    assert record["input_sizes"] == frames
    assert record["target_box"] == box

    # training: its reader computes the same frames (and would refuse the exported ones if
    # they disagreed), and the pixels the trainers' dataset decodes are the photo as shown
    profile = get_profile("qwen2.5-vl")
    sizes = check_record_images(out / "grpo.jsonl", image_root=data)
    assert sizes == {str(photo.resolve()): SHOWN}
    rows = grpo_records(out / "grpo.jsonl", profile, processor, image_root=data)
    assert rows[0]["input_sizes"] == frames and rows[0]["target_box"] == box
    assert sft_records(out / "sft.jsonl", profile, processor, image_root=data)
    trained = to_dataset(rows)[0]["images"][0].convert("RGB")

    # evaluation: a run of the model records the same frames; its items open as shown
    code = main(["eval", "--model", str(q25), "--data", str(samples), "--out", str(out / "eval"),
                 "--max-new-tokens", "2", "--no-progress"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    prediction = json.loads((out / "eval" / "predictions.jsonl").read_text())
    assert prediction["input_sizes"] == frames
    items = load_eval_items(samples)
    (evaluated,) = load_images(items[0].images)
    assert trained.size == evaluated.size == SHOWN
    assert np.array_equal(np.asarray(trained), np.asarray(evaluated))
    assert np.array_equal(np.asarray(open_image(photo)), np.asarray(evaluated))
    for image in (trained, evaluated):
        x1, y1, x2, y2 = items[0].target_box
        assert_covers((x1 * SHOWN[0], y1 * SHOWN[1], x2 * SHOWN[0], y2 * SHOWN[1]), image)

    # predict: a model that answers the target box; the box is reported and drawn on the
    # photo as shown
    answer = get_profile("qwen2-vl").render_answer(1, box)

    fed = []

    class Answers:
        def __init__(self, *args, **kwargs):
            pass

        def generate(self, messages, images):
            fed.extend(images[0])
            return [Generation(f"<think>there</think><answer>{answer}</answer>")]

    loaded = SimpleNamespace(
        profile=get_profile("qwen2-vl"), model=None, processor=None,
        input_sizes=lambda images: [list(im.size) for im in images],
    )  # fmt: skip
    monkeypatch.setattr(predict_module, "HFGenerator", Answers)
    monkeypatch.setattr(predict_cli, "load_model_and_processor", lambda *a, **k: loaded)
    picture = tmp_path / "picture.png"
    code = main(
        ["predict", question, "--model", "any", "--image", str(photo), "--save", str(picture)]
    )
    said = capsys.readouterr()
    assert code == 0, said.err
    assert len(fed) == 1 and np.array_equal(np.asarray(fed[0]), np.asarray(evaluated))
    shown_box = [round(v * s) for v, s in zip(box, SHOWN * 2, strict=True)]
    assert f"answer: Image-1, box {shown_box}" in said.out
    assert_covers(tuple(shown_box), evaluated)
    with Image.open(picture) as drawn:
        assert drawn.size == (SHOWN[0], SHOWN[1] + 16)
        pixels = np.asarray(drawn.convert("RGB")).astype(int)
    x1, y1, x2, y2 = shown_box
    inside = pixels[16 + y1 + 3 : 16 + y2 - 3, x1 + 3 : x2 - 3]
    assert (inside[..., 2] > 150).all() and (inside[..., 0] < 90).all()  # the object
    edge = pixels[16 + y1, x1 : x2 + 1]
    assert (edge[..., 0] > 200).all() and (edge[..., 2] < 60).all()  # the red outline on it

    # report: the thumbnail is the photo as shown, and the gallery's box covers the object
    uri, size = thumbnail(str(photo))
    assert size == SHOWN
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as thumb:
        assert thumb.size == SHOWN
        assert_covers(tuple(v * s for v, s in zip(TARGET, SHOWN * 2, strict=True)), thumb, 2)

    assert checksums(data) == before


@pytest.mark.parametrize("orientation", [5, 6, 7, 8])
def test_a_verl_export_embeds_the_photo_as_shown(orientation, tmp_path, capsys):
    pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from reward_export_helpers import read_image_bytes

    data = tmp_path / "data"
    write_photo(data / "images" / "photo.jpeg", orientation)
    write_png(data / "images" / "plain.png", SHOWN)
    box = [round(v, 4) for v in TARGET]
    samples = jsonl(data / "s.jsonl", [sample_line(
        images=["images/photo.jpeg", "images/plain.png"], image_sizes=[list(SHOWN)] * 2,
        target_box=box, objects=[], question="Locate the blue square in Image-1.")])  # fmt: skip
    out = tmp_path / "v.parquet"
    code = main(["export", "--format", "verl", "--profile", "qwen2-vl", "--data", str(samples),
                 "--out", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    photo, plain = pq.read_table(out).to_pylist()[0]["images"]
    # the record holds the turned pixels: plain decoding shows the photo as shown
    with Image.open(io.BytesIO(photo["bytes"])) as embedded:
        assert embedded.size == SHOWN
        assert_covers(tuple(v * s for v, s in zip(TARGET, SHOWN * 2, strict=True)), embedded)
    assert read_image_bytes(photo).size == SHOWN
    # an image without the tag is embedded byte for byte, as before
    assert plain["bytes"] == (data / "images" / "plain.png").read_bytes()


def test_image_sizes_written_for_the_stored_pixels_are_refused_saying_why(tmp_path, capsys):
    data = tmp_path / "data"
    write_photo(data / "images" / "photo.jpeg", 6)
    stored = [SHOWN[1], SHOWN[0]]
    samples = jsonl(data / "s.jsonl", [sample_line(images=["images/photo.jpeg"],
                                                   image_sizes=[stored])])  # fmt: skip
    refused(
        ["trajectories", "--profile", "qwen2-vl", "--data", samples, "--out", tmp_path / "t.jsonl"],
        capsys, data, f"{samples}:1", "sample 's1'", "field 'image_sizes[0]'",
        f"says {stored}, the file is {list(SHOWN)}", "EXIF orientation",
    )  # fmt: skip
    assert not (tmp_path / "t.jsonl").exists()


# ---------------------------------------------------------------------------------------
# 2. One root for every image a sample names.


def _escapes(data: Path, outside: Path) -> dict[str, str]:
    """Image paths that lead out of ``data``'s parent, by each way there is."""
    link = data / "images" / "link.png"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside)
    up = Path("..") / ".." / outside.relative_to(data.parent.parent)
    return {"absolute": str(outside), "dotdot": str(up), "symlink": "images/link.png"}


@pytest.fixture
def escaping(tmp_path) -> SimpleNamespace:
    """A project whose data names a private photo outside it (absolute, ``..``, a link)."""
    ws = tmp_path / "ws"
    data = ws / "project" / "data"
    outside = write_png(ws / "elsewhere" / "private" / "photo.png")
    write_png(data / "images" / "a.png")
    paths = _escapes(data, outside)
    return SimpleNamespace(ws=ws, data=data, outside=outside, paths=paths)


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink"])
@pytest.mark.parametrize("stage", ["grpo", "sft"])
def test_training_reads_no_image_outside_its_root(
    stage, how, escaping, tiny_model_dir, no_model_loads, tmp_path, capsys
):
    image = escaping.paths[how]
    if stage == "grpo":
        record = sample_line(id="s1", images=[image])
    else:
        record = {"id": "s1", "prompt": "Where is the square in Image-1?", "images": [image],
                  "completion": '<answer>{"image": 1, "bbox_2d": [1, 2, 3, 4]}</answer>'}  # fmt: skip
    data = jsonl(escaping.data / f"{stage}.jsonl", [record])
    err = refused(
        train_argv(stage, tiny_model_dir, data, tmp_path / "o"), capsys, escaping.ws,
        f"{data}:1", "sample 's1'", "field 'images[0]'", "outside the image root", "image_root",
    )  # fmt: skip
    assert str(escaping.data.parent) in err  # the root: the folder above the JSONL's
    # an image_root elsewhere does not let a path out of it either
    root = escaping.data / "images"
    refused(train_argv(stage, tiny_model_dir, data, tmp_path / "o", "--image_root", root),
            capsys, escaping.ws, f"{data}:1", "field 'images[0]'")  # fmt: skip


def test_a_jsonl_in_a_home_folder_confines_to_that_folder(tmp_path, monkeypatch):
    from mirg.train.data import check_record_images, image_root_of

    home = tmp_path / "home" / "me"
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: home))
    write_png(tmp_path / "home" / "you" / "private.png")
    write_png(home / "images" / "a.png")
    # the folder above ~ holds every user's home: not a root that confines anything
    assert image_root_of(home / "train.jsonl", None) == home.resolve()
    ok = jsonl(home / "train.jsonl", [sample_line(id="mine", images=["images/a.png"])])
    assert list(check_record_images(ok)) == [str((home / "images" / "a.png").resolve())]
    bad = jsonl(home / "bad.jsonl", [sample_line(id="yours", images=["../you/private.png"])])
    with pytest.raises(DataError, match="outside the image root"):
        check_record_images(bad)


def test_training_keeps_reading_paths_under_its_root(
    escaping, tiny_model_dir, no_model_loads, tmp_path, capsys
):
    from mirg.train.data import check_record_images

    data = escaping.data
    inside = str(data / "images" / "a.png")
    # an export written one folder down: absolute paths under the data, and relative ones
    # that resolve from the JSONL's parent or (climbing) from its folder
    records = [sample_line(id="abs", images=[inside]),
               sample_line(id="parent", images=["images/a.png"]),
               sample_line(id="climb", images=["../images/a.png"])]  # fmt: skip
    exported = jsonl(data / "exports" / "grpo.jsonl", records)
    sizes = check_record_images(exported)
    assert sizes == {str(Path(inside).resolve()): (64, 64)}
    with pytest.raises(ModelLoaded):  # past every data check, to the model
        main([str(a) for a in train_argv("grpo", tiny_model_dir, exported, tmp_path / "o")])
    capsys.readouterr()
    # the demo's own files: trajectories beside the split, absolute paths under its folder
    from mirg.demo import write_trajectories

    world = tmp_path / "world"
    assert main(["synth", "--out", str(world), "--n", "4", "--preset", "starter"]) == 0
    trajectories = write_trajectories(world / "train.jsonl", world / "t.jsonl", "qwen3-vl", "full")
    assert json.loads(trajectories.read_text().splitlines()[0])["images"][0].startswith("/")
    assert check_record_images(trajectories)


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink"])
def test_export_and_evaluation_of_a_split_confine_the_same_way(how, escaping, tmp_path, capsys):
    samples = jsonl(escaping.data / "s.jsonl", [sample_line(images=[escaping.paths[how]],
                                                            image_sizes=None)])  # fmt: skip
    says = (f"{samples}:1", "sample 's1'", "field 'images[0]'")
    for fmt in ("sft", "grpo", "verl", "sharegpt"):
        for check in ("decode", "none"):
            refused(["export", "--format", fmt, "--profile", "qwen2-vl", "--data", samples,
                     "--out", tmp_path / f"x.{fmt}", "--check-images", check],
                    capsys, escaping.ws, *says)  # fmt: skip
            assert not (tmp_path / f"x.{fmt}").exists()
    refused(["eval", "--model", tmp_path / "no-model", "--data", samples, "--out",
             tmp_path / "e", "--no-progress"], capsys, escaping.ws, *says)  # fmt: skip


def test_the_report_confines_its_split_the_same_way(escaping, synth_dir, tmp_path, capsys):
    from mirg.eval.benchmarks import load_eval_items
    from mirg.eval.run import score_run

    split = escaping.data / "test.jsonl"
    shutil.copytree(synth_dir / "images", escaping.data / "images", dirs_exist_ok=True)
    lines = (synth_dir / "test.jsonl").read_text().splitlines()[:2]
    split.write_text("\n".join(lines) + "\n")
    out = tmp_path / "eval"
    out.mkdir()
    items = load_eval_items(split)
    config = {"model": "m", "data": str(split), "images": None, "tasks": None, "limit": None,
              "prompt": "reasoning"}  # fmt: skip
    (out / "run.json").write_text(json.dumps({"identity": {}, "config": config,
                                              "profile_used": "qwen3-vl"}))  # fmt: skip
    jsonl(out / "predictions.jsonl", [{"id": it.key, "response": "none"} for it in items])
    score_run(out, items, "strict", "qwen3-vl")
    assert main(["report", str(out)]) == 0
    first = json.loads(lines[0])
    first["images"][0] = escaping.paths["symlink"]
    split.write_text(json.dumps(first) + "\n" + lines[1] + "\n")
    refused(["report", out], capsys, escaping.ws, f"{split}:1", "field 'images[0]'",
            "outside the dataset root")  # fmt: skip


# ---------------------------------------------------------------------------------------
# 3. Images checked, and named, before a model loads.


@pytest.mark.parametrize("side", [20_000, 10_000])
def test_an_oversized_image_in_sft_data_is_named_before_the_model_loads(
    side, tiny_model_dir, no_model_loads, tmp_path, capsys
):
    says = "decompression bomb"
    data = tmp_path / "data"
    write_bomb_png(data / "images" / "big.png", side, side)
    write_png(data / "images" / "a.png")
    good = {"id": "t0", "prompt": "Where is it in Image-1?", "completion": "<answer>x</answer>",
            "images": ["images/a.png"]}  # fmt: skip
    traj = jsonl(data / "t.jsonl", [good, good | {"id": "t1", "images": ["images/big.png"]}])
    refused(train_argv("sft", tiny_model_dir, traj, tmp_path / "o"), capsys, data,
            f"{traj}:2", "sample 't1'", "field 'images[0]'", data / "images" / "big.png", says)  # fmt: skip
    # the held-out set is checked before the model as well
    evaluation = jsonl(data / "e.jsonl", [good | {"id": "e1", "images": ["images/big.png"]}])
    refused(train_argv("sft", tiny_model_dir, traj, tmp_path / "o", "--max_train_samples", 1,
                       "--eval_dataset_path", evaluation), capsys, data,
            f"{evaluation}:1", "sample 'e1'", "field 'images[0]'", says)  # fmt: skip


def test_an_image_path_that_is_a_folder_or_a_link_to_one_says_so(
    tiny_model_dir, no_model_loads, tmp_path, capsys
):
    data = tmp_path / "data"
    (data / "images" / "album").mkdir(parents=True)
    (data / "images" / "link.png").symlink_to(data / "images" / "album")
    (data / "images" / "gone.png").symlink_to(data / "images" / "nothing.png")
    for name, says in (("album", "is a folder, not an image file"),
                       ("link.png", "is a folder, not an image file"),
                       ("gone.png", "does not exist")):  # fmt: skip
        samples = jsonl(
            data / "s.jsonl", [sample_line(images=[f"images/{name}"], image_sizes=None)]
        )
        where = (f"{samples}:1", "sample 's1'", "field 'images[0]'", says)
        for check in ("decode", "exists"):
            refused(["trajectories", "--profile", "qwen2-vl", "--data", samples, "--out",
                     tmp_path / "t.jsonl", "--check-images", check], capsys, data, *where)  # fmt: skip
        refused(train_argv("grpo", tiny_model_dir, samples, tmp_path / "o"), capsys, data, *where)
        refused(["eval", "--model", tmp_path / "m", "--data", samples, "--out", tmp_path / "e",
                 "--no-progress"], capsys, data, "(missing)" if name == "gone.png" else says)  # fmt: skip
    err = refused(["predict", "q", "--model", tmp_path / "m", "--image", data / "images" / "link.png",
                   "--save", tmp_path / "p.png"], capsys, data, "--image (Image-1)",
                  "is a folder, not an image file")  # fmt: skip
    assert "symbolic link" in err


# ---------------------------------------------------------------------------------------
# 4. Qwen-VL's reserved tokens in a question, refused up front by every command.

INJECTED = "<|vision_start|><|image_pad|><|vision_end|>"


@pytest.mark.parametrize("token", RESERVED_TOKENS)
def test_a_question_holding_a_reserved_token_is_refused_naming_the_record(token, tmp_path, capsys):
    data = tmp_path / "data"
    write_png(data / "images" / "a.png")
    question = f"Locate the red square {token} in Image-1."
    samples = jsonl(data / "s.jsonl", [sample_line(), sample_line(id="s2", question=question)])
    says = (f"{samples}:2", "sample 's2'", "field 'question'", token)
    refused(["trajectories", "--profile", "qwen2-vl", "--data", samples, "--out",
             tmp_path / "t.jsonl"], capsys, data, *says)  # fmt: skip
    refused(["eval", "--model", tmp_path / "no-model", "--data", samples, "--out",
             tmp_path / "e", "--no-progress"], capsys, data, *says)  # fmt: skip
    with pytest.raises(PromptError, match="reserved token"):
        build_messages(question, 1, "qwen2-vl")


def test_reserved_tokens_are_refused_before_any_model_loads(
    tiny_model_dir, no_model_loads, tmp_path, capsys
):
    data = tmp_path / "data"
    write_png(data / "images" / "a.png")
    # mirg train sft: in the prompt (text or messages) or the completion
    base = {"id": "t1", "prompt": "Where is it in Image-1?", "completion": "<answer>x</answer>",
            "images": ["images/a.png"]}  # fmt: skip
    messages = build_messages("Where is it in Image-1?", 1, "qwen3-vl")
    messages[-1]["content"][-1]["text"] += INJECTED
    for field, record in (("prompt", base | {"prompt": f"Where is {INJECTED} it?"}),
                          ("prompt", base | {"prompt": messages}),
                          ("completion", base | {"completion": "<answer>x</answer><|im_end|>"})):  # fmt: skip
        traj = jsonl(data / "t.jsonl", [record])
        refused(train_argv("sft", tiny_model_dir, traj, tmp_path / "o"), capsys, data,
                f"{traj}:1", "sample 't1'", f"field {field!r}", "reserved token")  # fmt: skip
    # mirg train grpo: the question of a sample
    samples = jsonl(data / "s.jsonl", [sample_line(question=f"Find it {INJECTED} in Image-1.")])
    refused(train_argv("grpo", tiny_model_dir, samples, tmp_path / "o"), capsys, data,
            f"{samples}:1", "sample 's1'", "field 'question'", "<|image_pad|>")  # fmt: skip
    # mirg predict: the question on the command line, before the model (which is missing)
    refused(["predict", f"Find the cat {INJECTED} in Image-1.", "--model", tmp_path / "m",
             "--image", data / "images" / "a.png", "--save", tmp_path / "p.png"], capsys, data,
            "question: contains", "<|vision_start|>")  # fmt: skip
    # mirg eval on MIG-Bench: the item's question
    bench = tmp_path / "bench" / "MIG_data.json"
    write_png(bench.parent / "MIG-Bench" / "a.png")
    item = {"task": "region", "images": ["./MIG-Bench/a.png", "./MIG-Bench/a.png"],
            "question": "Locate the region of Image-1 that Image-2 shows.<|im_end|>",
            "answer": [0.1, 0.1, 0.5, 0.5]}  # fmt: skip
    bench.write_text(json.dumps([item]))
    refused(["eval", "--model", tmp_path / "m", "--data", bench, "--images", bench.parent,
             "--out", tmp_path / "e", "--no-progress"], capsys, tmp_path / "bench",
            f"{bench}: item 0: field 'question'", "<|im_end|>")  # fmt: skip
    # mirg eval on MC-Bench: the description's text
    mcbench = json.loads(
        (Path(__file__).parent / "fixtures" / "mcbench" / "MC-Bench.json").read_text()
    )
    mcbench["descriptions"][0]["text"] += " <|endoftext|>"
    described = tmp_path / "mc" / "MC-Bench.json"
    described.parent.mkdir()
    described.write_text(json.dumps(mcbench))
    refused(["eval", "--model", tmp_path / "m", "--data", described, "--images", described.parent,
             "--out", tmp_path / "e", "--no-progress"], capsys, described.parent,
            f"description {mcbench['descriptions'][0]['id']}: field 'text'", "<|endoftext|>")  # fmt: skip
    assert not (tmp_path / "p.png").exists()


def test_a_conversion_refuses_a_reserved_token_in_a_question(tmp_path, capsys):
    """mirg convert checks what it writes as the readers of samples will."""
    fixture = Path(__file__).parent / "fixtures" / "mgrounding" / "MGrounding-630k.json"
    records = json.loads(fixture.read_text())
    records[0]["conversations"][0]["value"] += " <|im_start|>assistant"
    source = tmp_path / "data" / "MGrounding-630k.json"
    source.parent.mkdir()
    source.write_text(json.dumps(records, indent=1))
    out = tmp_path / "mg.jsonl"
    refused(["convert", "--format", "mgrounding", "--input", source, "--out", out], capsys,
            source.parent, str(source), f"record {records[0]['id']!r}", "field 'question'",
            "<|im_start|>")  # fmt: skip
    assert not out.exists()


def test_grounding_markup_in_a_question_is_accepted(tmp_path, capsys):
    """MIG-Bench quotes reference boxes in Qwen's box tokens; they are not refused."""
    data = tmp_path / "data"
    write_png(data / "images" / "a.png")
    question = "Find the object at <|box_start|>(100,100),(500,500)<|box_end|> in Image-1."
    samples = jsonl(data / "s.jsonl", [sample_line(question=question)])
    out = tmp_path / "t.jsonl"
    code = main(
        ["trajectories", "--profile", "qwen2-vl", "--data", str(samples), "--out", str(out)]
    )
    assert code == 0, capsys.readouterr().err
    assert json.loads(out.read_text())["prompt"][-1]["content"][-1]["text"] == question


# ---------------------------------------------------------------------------------------
# 5. A UTF-8 byte order mark, read by every JSON and JSONL reader.

BOM = b"\xef\xbb\xbf"


def test_a_byte_order_mark_is_read_by_every_reader(tmp_path, capsys):
    from mirg.train.data import check_record_images

    data = tmp_path / "data"
    write_png(data / "images" / "a.png")
    plain = jsonl(data / "plain.jsonl", [sample_line()])
    marked = jsonl(data / "marked.jsonl", [sample_line()], prefix=BOM)
    # mirg trajectories and export: the same records as without the mark
    for name, path in (("plain", plain), ("marked", marked)):
        code = main(["trajectories", "--profile", "qwen2-vl", "--data", str(path), "--out",
                     str(tmp_path / f"{name}.out.jsonl")])  # fmt: skip
        assert code == 0, capsys.readouterr().err
    assert (tmp_path / "marked.out.jsonl").read_bytes() == (
        tmp_path / "plain.out.jsonl"
    ).read_bytes()
    # training reads it too
    assert check_record_images(marked) == {str((data / "images" / "a.png").resolve()): (64, 64)}
    # mirg score: a benchmark file with the mark scores as without it
    items = [{"task": "region", "images": ["./MIG-Bench/a.png", "./MIG-Bench/b.png"],
              "question": "Locate the region of Image-1 that Image-2 shows.",
              "answer": [0.1, 0.1, 0.5, 0.5]}]  # fmt: skip
    bench = tmp_path / "bench.json"
    bench.write_bytes(BOM + json.dumps(items).encode())
    preds = jsonl(
        tmp_path / "p.jsonl",
        [{"index": 0, "response": "Image-1: <|box_start|>(100,100),(500,500)<|box_end|>"}],
        prefix=BOM,
    )
    code = main(["score", "--bench", str(bench), "--predictions", str(preds), "--out",
                 str(tmp_path / "m.json")])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "m.json").read_text())["average"]["acc@0.5"] == 100.0
    # mirg coco: the annotation file (a JSON object) with the mark
    annotations, images = write_coco(tmp_path / "coco")
    annotations.write_bytes(BOM + annotations.read_bytes())
    code = main(["coco", "--images", str(images), "--annotations", str(annotations), "--n", "2",
                 "--out", str(tmp_path / "c.jsonl")])  # fmt: skip
    assert code == 0, capsys.readouterr().err


def test_a_byte_order_mark_anywhere_else_is_still_an_error(tmp_path, capsys):
    data = tmp_path / "data"
    write_png(data / "images" / "a.png")
    path = jsonl(data / "s.jsonl", [sample_line()])
    path.write_bytes(path.read_bytes() + BOM + json.dumps(sample_line(id="s2")).encode() + b"\n")
    refused(["trajectories", "--profile", "qwen2-vl", "--data", path, "--out",
             tmp_path / "t.jsonl"], capsys, data, f"{path}:2", "not valid JSON")  # fmt: skip
