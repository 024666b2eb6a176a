"""The corpus of bad inputs and faults (issue 15), one case per row, across every command.

Each case runs the command line as a user would and asserts the exit code (2 for a user
error), that the message is one line naming the file, record or field, and that nothing
the command read was lost or changed (every input's checksum before and after). The fault
tests further down kill an evaluation with SIGKILL mid-batch, run two evaluations on one
folder at once, write to a full disk (/dev/full, and ENOSPC in the middle of a write) and to
a read-only folder (``chattr +i``, since CI runs as root), and rerun each to completion.
docs/reliability.md holds the same table in words.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from data_fixtures import make_world, sample_line, write_bomb_png, write_coco, write_png
from mirg.cli import main, user_error
from mirg.data.synth import PRESETS
from mirg.errors import MirgError
from mirg.outputs import kind_of

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

REGION = "Locate the region of Image-1 that Image-2 shows."


# ---------------------------------------------------------------------------------------
# The inputs every case reads: built once, checksummed around each case.


def _jsonl(path: Path, records: list[object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _two_image_sample(**overrides: object) -> dict:
    return (
        sample_line(
            images=["images/a.png", "images/b.png"],
            objects=[[{"box": [0.25, 0.25, 0.5, 0.5], "category": "square"}], []],
            image_sizes=[[64, 64], [64, 64]],
            question="Find the square of Image-1 in Image-2.",
        )
        | overrides
    )


def _build(root: Path) -> dict[str, Path]:
    """Every input of the corpus under ``root``; returns the placeholders of the cases."""
    p: dict[str, Path] = {"ws": root}
    p["world"] = make_world(root / "world", n=10, seed=1, config=PRESETS["starter"])
    p["train"] = p["world"] / "train.jsonl"

    # samples, each bad in one way, with their images beside them
    s = root / "samples"
    for name in ("a", "b"):
        write_png(s / "images" / f"{name}.png")
    write_bomb_png(s / "images" / "bomb.png")
    trunc = s / "images" / "trunc.png"
    write_png(trunc)
    trunc.write_bytes(trunc.read_bytes()[:60])
    (s / "images" / "etc").symlink_to("/etc")
    write_png(root / "outside.png")
    no_box = sample_line()
    del no_box["target_box"]
    bad_samples: dict[str, list[object]] = {
        "good": [sample_line()],
        "image5": [_two_image_sample(question="Find the square of Image-1 in Image-5.")],
        "no_box": [no_box],
        "bad_box": [sample_line(target_box=[0.5, 0.5, 0.2, 0.2])],
        "missing_image": [sample_line(images=["images/nope.png"])],
        "bomb": [sample_line(images=["images/bomb.png"], image_sizes=None)],
        "truncated": [sample_line(images=["images/trunc.png"])],
        "absolute": [sample_line(images=["/etc/hostname"], image_sizes=None)],
        "dotdot": [sample_line(images=["../outside.png"], image_sizes=None)],
        "symlink": [sample_line(images=["images/etc/passwd"], image_sizes=None, objects=[])],
        "duplicate": [sample_line(), sample_line(question="Locate the square in Image-1.")],
        "bad_target": [sample_line(target_image=3)],
    }
    for name, records in bad_samples.items():
        p[f"s_{name}"] = _jsonl(s / f"{name}.jsonl", records)
    p["s_not_json"] = s / "not_json.jsonl"
    p["s_not_json"].write_text(json.dumps(sample_line()) + '\n{"id": "s2", \n')
    p["s_latin1"] = s / "latin1.jsonl"
    latin = json.dumps(
        sample_line(id="s2", question="Locate the caf\u00e9 in Image-1."), ensure_ascii=False
    )
    p["s_latin1"].write_bytes(
        (json.dumps(sample_line()) + "\n").encode() + latin.encode("latin-1") + b"\n"
    )

    # a two-item MIG-Bench file, its images, and predictions files
    b = root / "bench"
    items = [
        {"task": "region", "images": ["./MIG-Bench/a.png", "./MIG-Bench/b.png"],
         "question": REGION, "answer": [0.1, 0.1, 0.5, 0.5]},
        {"task": "correspondence", "images": ["./MIG-Bench/a.png", "./MIG-Bench/b.png"],
         "question": "Find the point of Image-1 in Image-2.", "answer": [0.2, 0.2, 0.6, 0.6]},
    ]  # fmt: skip
    b.mkdir()
    p["bench"] = b / "MIG_data.json"
    p["bench"].write_text(json.dumps(items))
    for name in ("a", "b"):
        write_png(b / "MIG-Bench" / f"{name}.png")
    p["bench_bad"] = b / "bad.json"
    p["bench_bad"].write_text(json.dumps([{k: v for k, v in items[0].items() if k != "answer"}]))
    p["bench_escape"] = b / "escape.json"
    p["bench_escape"].write_text(json.dumps([items[0] | {"images": ["../../../etc/hostname"]}]))
    hit = "Image-2: <|box_start|>(200,200),(600,600)<|box_end|>"
    good = [
        {"index": 0, "response": hit.replace("Image-2", "Image-1")},
        {"index": 1, "response": hit},
    ]
    pr = root / "preds"
    p["preds"] = _jsonl(pr / "good.jsonl", good)
    p["p_inf"] = pr / "inf.jsonl"
    p["p_inf"].write_text('{"index": 1, "response": "x", "input_sizes": [[1e999, 10], [5, 5]]}\n')
    p["p_short_sizes"] = _jsonl(pr / "short.jsonl", [good[1] | {"input_sizes": [[640, 480]]}])
    p["p_unknown"] = _jsonl(pr / "unknown.jsonl", [*good, {"index": 7, "response": "x"}])
    p["p_list"] = _jsonl(pr / "list.jsonl", [{"index": 0, "response": list(range(200_000))}])
    p["p_latin1"] = pr / "latin1.jsonl"
    p["p_latin1"].write_bytes(
        (json.dumps(good[0]) + "\n").encode() + b'{"index": 1, "response": "caf\xe9"}\n'
    )
    p["p_not_json"] = pr / "not_json.jsonl"
    p["p_not_json"].write_text(json.dumps(good[0]) + "\n{index: 1}\n")
    p["p_duplicate"] = _jsonl(pr / "dup.jsonl", [good[0], good[0]])
    p["p_no_response"] = _jsonl(pr / "noresp.jsonl", [{"index": 0}])

    # COCO-style annotations
    c = root / "coco"
    p["coco"], p["coco_images"] = write_coco(c)
    data = json.loads(p["coco"].read_text())
    (p["coco_images"] / "etc").symlink_to("/etc")

    def coco_variant(name: str, change) -> None:
        variant = json.loads(json.dumps(data))
        change(variant)
        p[f"c_{name}"] = c / f"{name}.json"
        p[f"c_{name}"].write_text(json.dumps(variant))

    coco_variant(
        "dup_image", lambda d: d["images"].append(dict(d["images"][0], file_name="img1.png"))
    )
    coco_variant("dup_category", lambda d: d["categories"].append({"id": 1, "name": "wolf"}))
    coco_variant("outside", lambda d: d["annotations"][0].update(bbox=[90, 70, 40, 40]))
    coco_variant("unknown_cat", lambda d: d["annotations"][0].update(category_id=99))
    coco_variant("symlink", lambda d: d["images"][0].update(file_name="etc/passwd"))
    p["c_not_json"] = c / "not_json.json"
    p["c_not_json"].write_text('{"images": [\n  {"id": 1,\n')
    p["c_latin1"] = c / "latin1.json"
    p["c_latin1"].write_bytes(b'{"images": [],\n "categories": [{"id": 1, "name": "caf\xe9"}]}')

    # images for mirg predict
    im = root / "predict"
    p["img"] = write_png(im / "photo.png")
    p["bomb100"] = write_bomb_png(im / "100mpx.png", 10_000, 10_000)
    p["bomb"] = write_bomb_png(im / "bomb.png")
    jpeg = im / "cut.jpg"
    Image.effect_noise((64, 64), 60).convert("RGB").save(jpeg, quality=95)
    jpeg.write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])  # header whole, scan cut
    p["jpeg"] = jpeg

    # folders that must not be replaced
    p["trained"] = root / "trained"
    p["trained"].mkdir()
    for name, body in (
        ("config.json", "{}"),
        ("training_args.bin", "x"),
        ("model.safetensors", "w"),
    ):
        (p["trained"] / name).write_text(body)
    p["others"] = root / "others"
    p["others"].mkdir()
    (p["others"] / "notes.txt").write_text("mine\n")
    p["a_file"] = root / "notes.txt"
    p["a_file"].write_text("mine\n")

    # evaluation folders that are broken
    e = root / "evals"
    run = {"identity": {}, "config": {"data": str(p["bench"]), "model": "m", "prompt": "reasoning",
           "images": str(b)}, "profile_used": "qwen2-vl"}  # fmt: skip
    for name, metrics in (("corrupt", '{"protocol": "strict", "tas'), ("fieldless", "{}")):
        (e / name).mkdir(parents=True)
        (e / name / "run.json").write_text(json.dumps(run))
        (e / name / "predictions.jsonl").write_text(p["preds"].read_text())
        (e / name / "metrics.json").write_text(metrics)
    (e / "norun").mkdir()
    (e / "norun" / "run.json").write_text("{}")
    (e / "norun" / "predictions.jsonl").write_text("")
    (e / "norun" / "metrics.json").write_text("{}")
    p["no_model"] = root / "no-model"

    # training recipes and an output folder of another run
    t = root / "train"
    t.mkdir()
    recipe = f"model_name_or_path: {p['no_model']}\ndataset_path: {p['train']}\nuse_cpu: true\n"
    for name, text in (
        ("malformed", "a: [1,\n"),
        ("steps_list", recipe + "max_steps: [1, 2]\n"),
        ("lr_text", recipe + "learning_rate: abc\n"),
    ):
        p[f"y_{name}"] = t / f"{name}.yaml"
        p[f"y_{name}"].write_text(text)
    p["other_run"] = t / "other-run"
    (p["other_run"] / "checkpoint-5").mkdir(parents=True)
    (p["other_run"] / "checkpoint-5" / "trainer_state.json").write_text("{}")
    return p


def checksums(root: Path) -> dict[str, str]:
    """Content hash of every file under ``root`` (links are not followed)."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    return _build(tmp_path_factory.mktemp("corpus"))


# ---------------------------------------------------------------------------------------
# The table: (id, command line, fragments the message must hold). ``{name}`` is a corpus
# path, ``{tmp}`` the case's own empty folder; ``absent`` must not exist afterwards.


@dataclass(frozen=True)
class Case:
    id: str
    argv: str
    says: tuple[str, ...]
    absent: str | None = None


TRAJ = "trajectories --profile qwen2-vl --out {tmp}/t.jsonl --data"
SCORE = "score --bench {bench} --protocol strict --profile qwen2-vl --predictions"
COCO = "coco --images {coco_images} --n 4 --out {tmp}/c.jsonl --annotations"
PREDICT = "predict q --model {no_model} --save {tmp}/pic.png --image"
EVAL = "eval --model {no_model} --out {tmp}/e --no-progress"

CASES = [
    # 1. errors that printed tracebacks
    Case("score-predictions-is-folder", "score --bench {bench} --predictions {ws}/preds",
         ("preds is a folder",)),
    Case("trajectories-data-is-folder", TRAJ + " {world}", ("world: is a folder",), "{tmp}/t.jsonl"),
    Case("eval-data-is-folder", EVAL + " --data {world}", ("--data is a folder", "test.jsonl")),
    Case("score-out-full-disk", SCORE + " {preds} --out /dev/full",
         ("/dev/full: No space left on device",)),
    Case("trajectories-out-full-disk", "trajectories --profile qwen2-vl --data {train} --out /dev/full",
         ("/dev/full: No space left on device",)),
    Case("export-verl-out-full-disk",
         "export --format verl --profile qwen2-vl --data {train} --out /dev/full",
         ("/dev/full: No space left on device",)),
    Case("export-sharegpt-out-full-disk",
         "export --format sharegpt --profile qwen2-vl --data {train} --out /dev/full",
         ("/dev/full: No space left on device",)),
    Case("coco-out-full-disk", "coco --images {coco_images} --n 2 --annotations {coco} --out /dev/full",
         ("/dev/full: No space left on device",)),
    Case("score-input-sizes-overflow", SCORE + " {p_inf}", ("inf.jsonl:1", "'input_sizes'")),
    Case("predict-decompression-bomb", PREDICT + " {bomb}", ("bomb.png", "decompression bomb")),
    Case("predict-100-megapixels", PREDICT + " {bomb100}", ("100mpx.png", "decompression bomb")),
    Case("predict-truncated-jpeg", PREDICT + " {jpeg}", ("cut.jpg", "cannot be read")),
    Case("predict-missing-image", PREDICT + " {ws}/gone.png", ("gone.png", "does not exist")),
    # 2. results that were silently wrong
    Case("score-input-sizes-fewer-than-images",
         "score --bench {bench} --protocol strict --profile qwen2.5-vl --predictions {p_short_sizes}",
         ("short.jsonl:1", "'input_sizes'", "1 frame(s) for 2 images")),
    Case("question-names-missing-image", TRAJ + " {s_image5}",
         ("image5.jsonl:1", "'question'", "Image-5", "2 image(s)"), "{tmp}/t.jsonl"),
    Case("coco-duplicate-image-id", COCO + " {c_dup_image}",
         ("dup_image.json", "images[4]", "duplicate image id 1")),
    Case("coco-duplicate-category-id", COCO + " {c_dup_category}",
         ("dup_category.json", "categories[4]", "duplicate category id 1")),
    # 3. data that was lost
    Case("trajectories-out-is-data",
         "trajectories --profile qwen2-vl --data {train} --out {train}", ("is the input --data",)),
    Case("export-grpo-out-is-data",
         "export --format grpo --profile qwen2-vl --data {train} --out {train}",
         ("is the input --data",)),
    Case("trajectories-out-holds-samples",
         "trajectories --profile qwen2-vl --data {train} --out {world}/val.jsonl",
         ("val.jsonl holds samples, not sft records", "--overwrite")),
    Case("coco-out-is-annotations", "coco --images {coco_images} --n 2 --annotations {coco} --out {coco}",
         ("is the input --annotations",)),
    Case("convert-out-is-input", "convert --format mgrounding --input {train} --out {train}",
         ("is the input --input",)),
    Case("convert-out-holds-predictions",
         "convert --format coco-captions --data {train} --captions {coco} --out {preds}",
         ("holds predictions, not samples", "--overwrite")),
    Case("convert-missing-options", "convert --format refcoco --out {tmp}/r.jsonl",
         ("--format refcoco needs --refs and --instances",), absent="{tmp}/r.jsonl"),
    Case("convert-not-mgrounding", "convert --format mgrounding --input {train} --out {tmp}/m.jsonl",
         ("train.jsonl:1", "field 'conversations'"), absent="{tmp}/m.jsonl"),
    Case("score-out-is-predictions", SCORE + " {preds} --out {preds}", ("is the input --predictions",)),
    Case("score-out-holds-samples", SCORE + " {preds} --out {train}",
         ("holds samples, not metrics",)),
    Case("predict-save-is-image", "predict q --model {no_model} --image {img} --save {img}",
         ("photo.png: --save is the input --image",)),
    Case("predict-save-over-a-photo", "predict q --model {no_model} --image {img} --save {ws}/outside.png",
         ("outside.png holds a file mirg did not write",)),
    Case("tiny-model-out-trained", "tiny-model --out {trained}",
         ("trained holds a trained model or training run, not a tiny model", "--overwrite")),
    Case("tiny-model-out-is-file", "tiny-model --out {a_file}", ("notes.txt: --out is a file",)),
    Case("synth-out-another-dataset", "synth --out {world} --n 5 --preset starter --seed 1",
         ("holds another dataset (differs in n, splits)", "--overwrite")),
    Case("synth-out-other-files", "synth --out {others} --n 5", ("not a mirg synth dataset",)),
    Case("synth-out-is-file", "synth --out {a_file} --n 5", ("--out is a file",)),
    # 5. paths that escaped their root
    Case("trajectories-symlink-to-etc", TRAJ + " {s_symlink} --check-images none",
         ("symlink.jsonl:1", "images[0]", "outside the dataset root"), "{tmp}/t.jsonl"),
    Case("export-verl-symlink-to-etc",
         "export --format verl --profile qwen2-vl --check-images none --data {s_symlink} "
         "--out {tmp}/v.parquet", ("outside the dataset root",), "{tmp}/v.parquet"),
    Case("coco-symlink-to-etc", COCO + " {c_symlink} --check-images none",
         ("symlink.json", "images[0]", "outside the dataset root")),
    Case("trajectories-absolute-path", TRAJ + " {s_absolute}", ("absolute.jsonl:1", "is absolute")),
    Case("trajectories-dotdot-path", TRAJ + " {s_dotdot}", ("dotdot.jsonl:1", "escapes the dataset root")),
    Case("eval-migbench-path-escapes", EVAL + " --data {bench_escape} --images {ws}/bench",
         ("escape.json: item 0: images[0]", "outside the images root")),
    # 6. messages that named too little
    Case("score-unknown-index", SCORE + " {p_unknown}", ("unknown.jsonl:3", "unknown items: [7]")),
    Case("score-response-not-text", SCORE + " {p_list}", ("list.jsonl:1", "'response'", "…")),
    Case("score-latin1-byte", SCORE + " {p_latin1}", ("latin1.jsonl:2", "not UTF-8", "0xe9")),
    Case("trajectories-latin1-byte", TRAJ + " {s_latin1}", ("latin1.jsonl:2", "not UTF-8", "0xe9")),
    Case("coco-latin1-byte", COCO + " {c_latin1}", ("latin1.json:2", "not UTF-8", "0xe9")),
    Case("coco-n-zero", "coco --images {coco_images} --n 0 --annotations {coco} --out {tmp}/c.jsonl",
         ("--n must be at least 1",), "{tmp}/c.jsonl"),
    Case("coco-n-negative", "coco --images {coco_images} --n -3 --annotations {coco} --out {tmp}/c.jsonl",
         ("--n must be at least 1, got -3",), "{tmp}/c.jsonl"),
    Case("report-corrupt-metrics", "report {ws}/evals/corrupt",
         ("corrupt/metrics.json:1", "not valid JSON")),
    Case("report-metrics-without-fields", "report {ws}/evals/fieldless",
         ("fieldless/metrics.json", "field 'protocol'")),
    Case("report-run-without-config", "report {ws}/evals/norun", ("norun/run.json", "field 'config'")),
    Case("report-not-a-folder", "report {a_file}", ("notes.txt: not a folder",)),
    Case("report-not-an-eval-folder", "report {others}", ("no run.json",)),
    # already clean before issue 15: kept so they stay clean
    Case("score-not-json", SCORE + " {p_not_json}", ("not_json.jsonl:2", "not valid JSON")),
    Case("score-duplicate", SCORE + " {p_duplicate}", ("dup.jsonl:2", "duplicate prediction")),
    Case("score-no-response", SCORE + " {p_no_response}", ("noresp.jsonl:1", "'response'")),
    Case("score-strict-needs-profile", "score --bench {bench} --protocol strict --predictions {preds}",
         ("--profile",)),
    Case("score-bench-missing", "score --bench {ws}/gone.json --predictions {preds}",
         ("gone.json", "not found")),
    Case("score-bench-item-without-answer", "score --bench {bench_bad} --predictions {preds}",
         ("bad.json: item 0: field 'answer'",)),
    Case("score-predictions-missing", SCORE + " {ws}/gone.jsonl",
         ("gone.jsonl: No such file or directory",)),
    Case("trajectories-data-missing", TRAJ + " {ws}/gone.jsonl", ("gone.jsonl: file not found",)),
    Case("trajectories-no-target-box", TRAJ + " {s_no_box}", ("no_box.jsonl:1", "'target_box'")),
    Case("trajectories-bad-box", TRAJ + " {s_bad_box}", ("bad_box.jsonl:1", "'target_box'")),
    Case("trajectories-bad-target-image", TRAJ + " {s_bad_target}",
         ("bad_target.jsonl:1", "'target_image'")),
    Case("trajectories-missing-image", TRAJ + " {s_missing_image}",
         ("missing_image.jsonl:1", "images[0]", "does not exist")),
    Case("trajectories-bomb-image", TRAJ + " {s_bomb}", ("bomb.jsonl:1", "decompression bomb")),
    Case("trajectories-truncated-image", TRAJ + " {s_truncated}",
         ("truncated.jsonl:1", "cannot be read")),
    Case("trajectories-duplicate-id", TRAJ + " {s_duplicate}", ("duplicate.jsonl:2", "duplicate id")),
    Case("trajectories-not-json", TRAJ + " {s_not_json}", ("not_json.jsonl:2", "not valid JSON")),
    Case("coco-annotations-missing", COCO + " {ws}/gone.json", ("gone.json", "not found")),
    Case("coco-not-json", COCO + " {c_not_json}", ("not_json.json:3", "not valid JSON")),
    Case("coco-bbox-outside", COCO + " {c_outside}", ("outside.json", "annotations[0]", "'bbox'")),
    Case("coco-unknown-category", COCO + " {c_unknown_cat}",
         ("unknown_cat.json", "annotations[0]", "'category_id'")),
    Case("synth-n-zero", "synth --out {tmp}/w --n 0", ("--n must be at least 1",), "{tmp}/w"),
    Case("synth-unknown-family", "synth --out {tmp}/w --n 3 --families nope", ("'nope'",), "{tmp}/w"),
    Case("synth-bad-split", "synth --out {tmp}/w --n 3 --split a,b", ("--split",), "{tmp}/w"),
    Case("eval-migbench-needs-images", EVAL + " --data {bench}", ("--images ROOT",)),
    # mirg train (src/mirg/train): recipe values checked before any model loads
    Case("train-malformed-yaml", "train sft --config {y_malformed}",
         ("malformed.yaml", "malformed YAML", "line 2")),
    Case("train-wrong-type-in-yaml", "train sft --config {y_steps_list} --output_dir {tmp}/o",
         ("steps_list.yaml", "'max_steps'", "expected an integer")),
    Case("train-learning-rate-text", "train sft --config {y_lr_text} --output_dir {tmp}/o",
         ("lr_text.yaml", "'learning_rate'", "expected a number")),
    Case("train-out-holds-another-run",
         "train sft --model_name_or_path {no_model} --dataset_path {train} --use_cpu true "
         "--output_dir {other_run}", ("other-run holds checkpoints no mirg run recorded",)),
]  # fmt: skip


def _argv(template: str, paths: dict[str, Path], tmp: Path) -> list[str]:
    names = {k: str(v) for k, v in paths.items()} | {"tmp": str(tmp)}
    return [part.format(**names) for part in template.split()]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_corpus_case_fails_cleanly_and_changes_nothing(case, corpus, tmp_path, capsys):
    before = checksums(corpus["ws"])
    full_disk = Path("/dev/full").stat().st_mode
    argv = _argv(case.argv, corpus, tmp_path)
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith(f"mirg {argv[0]}: error: ") and "\n" not in err, err
    assert "Traceback" not in err and len(err) < 600, err
    for fragment in case.says:
        assert fragment.format(**{k: str(v) for k, v in corpus.items()}) in err, err
    assert checksums(corpus["ws"]) == before, "an input changed"
    assert Path("/dev/full").stat().st_mode == full_disk and stat.S_ISCHR(full_disk)
    if case.absent:
        assert not Path(case.absent.format(tmp=tmp_path)).exists()
    assert not list(tmp_path.rglob(".*.tmp")), "a temporary file was left behind"


def test_the_corpus_covers_every_command():
    from mirg.cli import COMMANDS

    covered = {c.argv.split()[0] for c in CASES} | {"demo"}  # demo: its inputs are built in
    assert covered == set(COMMANDS)


# ---------------------------------------------------------------------------------------
# The error boundary itself.


def test_boundary_turns_user_errors_into_one_line_and_keeps_bugs():
    assert user_error(MirgError("a.jsonl:3: field 'x': bad")) == "a.jsonl:3: field 'x': bad"
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/dev/full")
    assert user_error(full).startswith("/dev/full: No space left on device; free some space")
    denied = PermissionError(errno.EPERM, "Operation not permitted", "/ro/x.jsonl")
    assert user_error(denied).startswith("/ro/x.jsonl: Operation not permitted")
    assert "not a folder" in user_error(IsADirectoryError(21, "Is a directory", "d"))
    import yaml

    with pytest.raises(yaml.YAMLError) as bad_yaml:
        yaml.safe_load("a: [1,")
    assert user_error(bad_yaml.value).startswith("malformed YAML")
    with pytest.raises(Image.UnidentifiedImageError) as bad_image:
        Image.open(__file__)
    assert user_error(bad_image.value).startswith("image cannot be used")
    for bug in (TypeError("x"), KeyError("k"), ZeroDivisionError(), OSError("socket")):
        assert user_error(bug) is None


def test_a_bug_keeps_its_traceback(monkeypatch, capsys):
    import mirg.data.synth_cli as synth_cli

    def broken(args):
        return {}["missing"]

    monkeypatch.setattr(synth_cli, "run", broken)
    with pytest.raises(KeyError):
        main(["synth", "--out", "x", "--n", "1"])


def test_python_dash_m_prints_one_line_for_a_user_error(corpus, tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mirg",
            *_argv(SCORE + " {preds} --out /dev/full", corpus, tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        "mirg score: error: /dev/full: No space left on device; free some space or write "
        "elsewhere; the previous file, if any, is intact"
    ]


# ---------------------------------------------------------------------------------------
# Outputs: the one rule for what may be replaced, and atomic writes.


def test_rerunning_writes_the_same_kind_again_and_overwrite_replaces_another(corpus, tmp_path):
    out = tmp_path / "t.jsonl"
    args = ["trajectories", "--profile", "qwen2-vl", "--data", str(corpus["train"])]
    assert main([*args, "--out", str(out)]) == 0
    assert kind_of(out) == "sft records"
    assert main([*args, "--out", str(out)]) == 0  # a rerun needs no flag
    samples = tmp_path / "samples.jsonl"
    shutil.copy(corpus["train"], samples)
    assert main([*args, "--out", str(samples)]) == 2
    assert main([*args, "--out", str(samples), "--overwrite"]) == 0
    assert kind_of(samples) == "sft records"
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_full_disk_mid_write_keeps_the_previous_output_whole(corpus, tmp_path, monkeypatch, capsys):
    """ENOSPC while the new file is flushed: the old file stays, no temporary file stays,
    and the rerun completes."""
    out = tmp_path / "t.jsonl"
    args = [
        "trajectories",
        "--profile",
        "qwen2-vl",
        "--data",
        str(corpus["train"]),
        "--out",
        str(out),
    ]
    assert main(args) == 0
    before = out.read_bytes()
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    assert main([*args, "--seed", "7"]) == 2
    err = capsys.readouterr().err
    assert f"{out}: No space left on device" in err
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl"]
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert main([*args, "--seed", "7"]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == len(corpus["train"].read_text().splitlines())
    assert len({json.loads(line)["id"] for line in lines}) == len(lines)


@pytest.fixture
def read_only():
    """Make a folder unwritable even for root (``chattr +i``), undone after the test."""
    frozen: list[Path] = []

    def freeze(folder: Path) -> None:
        if os.geteuid() != 0:
            folder.chmod(0o555)
        elif (
            shutil.which("chattr") is None
            or subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode
        ):
            pytest.skip("chattr +i is not supported here (root ignores permissions)")
        frozen.append(folder)

    def thaw(folder: Path) -> None:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        else:
            folder.chmod(0o755)
        frozen.remove(folder)

    freeze.thaw = thaw  # type: ignore[attr-defined]
    yield freeze
    for folder in list(frozen):
        thaw(folder)


def test_read_only_folder_fails_cleanly_then_rerun_completes(corpus, tmp_path, read_only, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    read_only(folder)
    out = folder / "t.jsonl"
    args = [
        "trajectories",
        "--profile",
        "qwen2-vl",
        "--data",
        str(corpus["train"]),
        "--out",
        str(out),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert f"{out}: " in err and ("not permitted" in err or "denied" in err) and "\n" not in err
    assert not out.exists()
    read_only.thaw(folder)
    assert main(args) == 0
    assert len(out.read_text().splitlines()) == len(corpus["train"].read_text().splitlines())


def test_synth_overwrite_replaces_another_dataset_without_stale_images(tmp_path, capsys):
    out = tmp_path / "w"
    assert main(["synth", "--out", str(out), "--n", "10", "--preset", "single"]) == 0
    assert main(["synth", "--out", str(out), "--n", "10", "--preset", "single"]) == 0  # rerun
    before = checksums(out)
    assert main(["synth", "--out", str(out), "--n", "4", "--preset", "single"]) == 2
    assert checksums(out) == before
    assert "--overwrite" in capsys.readouterr().err
    assert main(["synth", "--out", str(out), "--n", "4", "--preset", "single", "--overwrite"]) == 0
    images = sorted(p.name for p in (out / "images").rglob("*.png"))
    listed = sorted(
        Path(rel).name
        for split in ("train", "val", "test")
        for line in (out / f"{split}.jsonl").read_text().splitlines()
        for rel in json.loads(line)["images"]
    )
    assert images == listed and len(images) == 4
    assert json.loads((out / "manifest.json").read_text())["n"] == 4
    assert not (out / ".mirg-synth.json").exists()


def test_an_interrupted_synth_reruns_in_place(tmp_path, monkeypatch):
    from mirg.data.synth import world

    out = tmp_path / "w"
    calls = {"n": 0}
    original = world.generate_sample

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(world, "generate_sample", dying)
    with pytest.raises(KeyboardInterrupt):
        main(["synth", "--out", str(out), "--n", "10", "--preset", "single"])
    assert (out / ".mirg-synth.json").exists() and not (out / "manifest.json").exists()
    monkeypatch.setattr(world, "generate_sample", original)
    assert main(["synth", "--out", str(out), "--n", "10", "--preset", "single"]) == 0
    fresh = tmp_path / "fresh"
    assert main(["synth", "--out", str(fresh), "--n", "10", "--preset", "single"]) == 0
    assert checksums(out) == checksums(fresh)


def test_kinds_of_outputs(corpus, tmp_path):
    assert kind_of(corpus["train"]) == "samples"
    assert kind_of(corpus["world"]) == "a mirg synth dataset"
    assert kind_of(corpus["trained"]) == "a trained model or training run"
    assert kind_of(corpus["preds"]) == "predictions"
    assert kind_of(corpus["img"]) == "a file mirg did not write"
    assert kind_of(tmp_path / "nothing") is None and kind_of(tmp_path) is None
    assert kind_of("/dev/null") is None  # a device is written in place, never replaced


# ---------------------------------------------------------------------------------------
# Evaluation under faults: a stale identity, a read-only folder, two runs at once, kill -9.


@pytest.fixture(scope="module")
def eval_data(tmp_path_factory) -> Path:
    """A test split of 24 two-image items in its own folder."""
    out = tmp_path_factory.mktemp("eval-data")
    make_world(out, n=24, seed=2, config=PRESETS["starter"])
    (out / "all.jsonl").write_text(
        "".join((out / f"{s}.jsonl").read_text() for s in ("train", "val", "test"))
    )
    return out / "all.jsonl"


def _eval_args(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["eval", "--model", str(model), "--data", str(data), "--out", str(out),
            "--no-progress", "--max-new-tokens", "8", *extra]  # fmt: skip


def _predictions(out: Path) -> list[str]:
    return [json.loads(line)["id"] for line in (out / "predictions.jsonl").read_text().splitlines()]


def test_eval_read_only_folder_then_stale_data_is_refused(
    tiny_model_dir, eval_data, tmp_path, read_only, capsys
):
    data = tmp_path / "data" / "items.jsonl"
    data.parent.mkdir()
    shutil.copytree(eval_data.parent / "images", data.parent / "images")
    lines = eval_data.read_text().splitlines(keepends=True)
    data.write_text("".join(lines[:4]))
    out = tmp_path / "run"
    out.mkdir()
    args = _eval_args(tiny_model_dir, data, out)
    read_only(out)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert f"{out}/.mirg.lock: " in err and "\n" not in err
    read_only.thaw(out)
    assert main(args) == 0
    assert sorted(_predictions(out)) == sorted(json.loads(x)["id"] for x in lines[:4])
    kept = {k: v for k, v in checksums(out).items() if k != ".mirg.lock"}
    # the data file at the same path is regenerated: its old predictions must not be scored
    data.write_text("".join(lines[4:8]))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "another run" in err and "data_fingerprint" in err
    assert {k: v for k, v in checksums(out).items() if k != ".mirg.lock"} == kept


def test_eval_two_at_once_then_kill_9_mid_batch_then_rerun(
    tiny_model_dir, eval_data, tmp_path, capsys
):
    out = tmp_path / "run"
    args = _eval_args(tiny_model_dir, eval_data, out, "--batch-size", "1", "--max-new-tokens", "24")
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(
        [sys.executable, "-m", "mirg", *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=os.environ | {"OMP_NUM_THREADS": "1"},
    )
    try:
        lock = out / ".mirg.lock"
        deadline = time.monotonic() + 240
        while not (lock.is_file() and lock.read_text().strip()):
            assert first.poll() is None, (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline, "the first run never took the lock"
            time.sleep(0.05)
        # a second run on the same folder is refused and told who holds it
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert f"in use by mirg eval of {tiny_model_dir} (pid {first.pid}" in err
        predictions = out / "predictions.jsonl"
        while not (predictions.is_file() and predictions.read_text().count("\n") >= 2):
            assert first.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no predictions"
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)  # mid-run: between or inside a batch
        assert first.wait(60) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        log.close()
    done = len(_predictions(out)) if predictions.read_bytes().endswith(b"\n") else None
    assert main(args) == 0
    ids = _predictions(out)
    expected = [json.loads(line)["id"] for line in eval_data.read_text().splitlines()]
    assert sorted(ids) == sorted(expected) and len(ids) == len(set(ids))
    run = json.loads((out / "run.json").read_text())
    assert run["last_run"]["predicted"] + run["last_run"]["resumed_from"] == len(expected)
    if done is not None:  # the kill fell between two lines
        assert run["last_run"]["resumed_from"] == done
