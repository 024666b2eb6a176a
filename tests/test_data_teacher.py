"""Teacher trajectories by rejection sampling: the selection (with a stand-in for
generation), and ``mirg trajectories --teacher`` end to end with real tiny models."""

import json
from pathlib import Path

import pytest

from mirg.cli import main
from mirg.core.profiles import get_profile
from mirg.core.rewards import format_reward, image_reward, object_reward
from mirg.data.exports import Exporter
from mirg.data.schema import read_samples
from mirg.data.teacher import (
    Choice,
    TeacherConfig,
    choose_all,
    facts_text,
    record,
    select,
    summarize,
    teacher_messages,
)
from mirg.errors import MirgError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

BASE = Path(__file__).resolve().parents[1] / "src" / "mirg" / "assets" / "demo-base-qwen3-vl"
PROFILE = "qwen3-vl"


@pytest.fixture(scope="module")
def samples(synth_dir):
    return read_samples(synth_dir / "train.jsonl", check_images="exists")


@pytest.fixture(scope="module")
def exporter(synth_dir):
    return Exporter(PROFILE, root=synth_dir)


def answer(sample, image=None, box=None, think="I look at each image."):
    k = image or sample.answer_image()
    body = get_profile(PROFILE).render_answer(k, box or sample.target_box)
    return f"<think>{think}</think><answer>{body}</answer>"


def shifted(box, dx):
    x1, y1, x2, y2 = box
    return (x1 + dx, y1, x2 + dx, y2)


def two_image(samples):
    return next(s for s in samples if s.target_image is not None and s.n_images > 1)


def test_selection_keeps_the_best_full_reward_answer(samples):
    s = two_image(samples)
    w = s.target_box[2] - s.target_box[0]
    wrong_image = s.target_image % s.n_images + 1
    answers = [
        answer(s, image=wrong_image),  # right box, wrong image: no image reward
        answer(s, box=shifted(s.target_box, 0.6 * w)),  # IoU 0.25
        answer(s).replace("<think>I look at each image.</think>", ""),  # no think: format 0
        answer(s, box=shifted(s.target_box, 0.2 * w), think="close"),  # IoU 0.67: accepted
        answer(s, think="exact"),  # IoU 1 (up to rounding): accepted, kept
        answer(s, think="exact again"),  # the same IoU later: the first is kept
    ]
    choice = select(answers, s, PROFILE, None, 0.5)
    assert choice.tried == 6 and choice.accepted == 3
    assert "<think>exact</think>" in choice.text and choice.iou > 0.95
    # a threshold above what the close answer reaches keeps only the exact ones
    assert select(answers[:4], s, PROFILE, None, 0.7) == Choice(None, 4, 0)


def test_selection_reads_generations_and_aligned_pairs(samples):
    from mirg.eval.generation import Generation

    diff = next(s for s in samples if s.target_image is None and s.n_images == 2)
    got = select([Generation(answer(diff, image=2))], diff, PROFILE, None, 0.5)
    assert got.accepted == 1  # either image is right where the task sets none


class Double:
    """Stands in for HFGenerator.sample: answers by the prompt's own question, and
    records what it was asked."""

    def __init__(self, by_question):
        self.by_question = by_question
        self.asked = []

    def sample(self, messages, images):
        self.asked.append((messages, images))
        out = []
        for m, imgs in zip(messages, images, strict=True):
            assert sum(p.get("type") == "image" for p in m[-1]["content"]) == len(imgs)
            text = m[-1]["content"][-1]["text"]
            out.append(next(v for q, v in self.by_question.items() if text.startswith(q)))
        return out


def test_records_fall_back_to_the_template_and_say_where_they_came_from(samples, exporter):
    chosen = samples[:6]
    good = {s.question: [answer(s, box=(0.0, 0.0, 0.01, 0.01)), answer(s)] for s in chosen[:3]}
    bad = {s.question: ["no idea", answer(s, box=(0.0, 0.0, 0.01, 0.01))] for s in chosen[3:]}
    double = Double(good | bad)
    cfg = TeacherConfig(model="double", samples=2, batch_size=4)
    from mirg.eval.generation import load_images

    choices = choose_all(chosen, exporter, double, cfg, load_images=load_images)
    assert [len(m) for m, _ in double.asked] == [4, 2]  # batches of cfg.batch_size
    records = [record(s, exporter, c) for s, c in zip(chosen, choices, strict=True)]
    template = [exporter.sft(s) for s in chosen]
    for r, t, s in zip(records, template, chosen, strict=True):
        assert r["prompt"] == t["prompt"] and r["images"] == t["images"]
        assert r["teacher_samples"] == 2
        if s.question in good:
            assert r["trajectory_source"] == "teacher" and r["teacher_accepted"] == 1
            assert r["completion"][0]["content"][0]["text"] == answer(s)
        else:
            assert r["trajectory_source"] == "template" and r["teacher_iou"] is None
            assert r["completion"] == t["completion"]
    summary = summarize(chosen, choices)
    assert summary["overall"]["records"] == 6 and summary["overall"]["from_teacher"] == 3
    assert summary["overall"]["acceptance"] == 0.5
    assert summary["overall"]["answer_acceptance"] == 0.25
    assert sum(r["records"] for r in summary["tasks"].values()) == 6


def test_facts_list_what_is_where(samples, exporter):
    s = next(s for s in samples if s.task == "visual_reference")
    text = facts_text(s, PROFILE, exporter.frames(s))
    assert "Image-1 holds a" in text and "(marked with a red box)" in text
    box = get_profile(PROFILE).render_box(s.objects[0][0]["box"])
    assert box in text
    plain = teacher_messages(s, PROFILE)
    told = teacher_messages(s, PROFILE, exporter.frames(s), facts=True)
    assert plain[0] == told[0]  # the same system prompt
    question = told[-1]["content"][-1]["text"]
    assert question.startswith(s.question) and "Annotations of these images" in question
    assert plain[-1]["content"][-1]["text"] == s.question
    double = Double({s.question: ["no"]})
    cfg = TeacherConfig(model="double", samples=1, facts=True)
    from mirg.eval.generation import load_images

    choose_all([s], exporter, double, cfg, load_images=load_images)
    assert "Annotations" in double.asked[0][0][0][-1]["content"][-1]["text"]


def test_config_checks_its_values():
    with pytest.raises(MirgError, match="--iou"):
        TeacherConfig(model="m", iou=1.5)
    with pytest.raises(MirgError, match="--samples"):
        TeacherConfig(model="m", samples=0)
    with pytest.raises(MirgError, match="backend"):
        TeacherConfig(model="m", backend="tgi")


def lines(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_random_teacher_is_rejected_and_the_template_kept(tiny_model_dir, synth_dir, tmp_path):
    out = tmp_path / "teacher.jsonl"
    plain = tmp_path / "plain.jsonl"
    data = str(synth_dir / "train.jsonl")
    assert main(["trajectories", "--data", data, "--profile", PROFILE, "--out", str(plain)]) == 0
    code = main(["trajectories", "--data", data, "--profile", PROFILE, "--out", str(out),
                 "--teacher", str(tiny_model_dir), "--samples", "2", "--max-new-tokens", "12",
                 "--batch-size", "8", "--device", "cpu", "--no-progress"])  # fmt: skip
    assert code == 0
    records, templates = lines(out), lines(plain)
    assert len(records) == len(templates)
    for r, t in zip(records, templates, strict=True):
        assert r["trajectory_source"] == "template" and r["teacher_samples"] == 2
        assert {k: v for k, v in r.items() if not k.startswith(("teacher", "trajectory"))} == t
    summary = json.loads(Path(f"{out}.teacher.json").read_text())
    assert summary["overall"]["acceptance"] == 0.0
    assert summary["overall"]["answers"] == 2 * len(records)
    assert summary["config"]["samples"] == 2 and summary["teacher_family"] == "qwen3-vl"


def test_shipped_base_as_teacher_is_accepted_where_it_localises(tmp_path, capsys):
    """The demo base reads single objects' positions (about 60 % greedy Acc@0.5 on the
    ``single`` preset): sampling four answers finds a full-reward one for many samples,
    and what is kept earns full rewards from the GRPO reward functions themselves."""
    from mirg.data.synth import PRESETS, write_dataset

    write_dataset(tmp_path / "data", 40, seed=123, config=PRESETS["single"])
    out = tmp_path / "rft.jsonl"
    code = main(["trajectories", "--data", str(tmp_path / "data" / "train.jsonl"),
                 "--profile", PROFILE, "--out", str(out), "--teacher", str(BASE),
                 "--samples", "4", "--temperature", "0.7", "--max-new-tokens", "80",
                 "--batch-size", "8", "--device", "cpu", "--no-progress"])  # fmt: skip
    assert code == 0
    assert "overall" in capsys.readouterr().out
    records = lines(out)
    taught = [r for r in records if r["trajectory_source"] == "teacher"]
    summary = json.loads(Path(f"{out}.teacher.json").read_text())
    assert summary["overall"]["from_teacher"] == len(taught) >= len(records) // 4
    assert summary["tasks"]["single_object"]["records"] == len(records)
    columns = {k: [r[k] for r in taught] for k in ("target_image", "target_box", "images")}
    columns |= {
        "profile": [PROFILE] * len(taught),
        "input_sizes": [r["input_sizes"] for r in taught],
    }
    completions = [r["completion"] for r in taught]
    assert image_reward(completions, **columns) == [1.0] * len(taught)
    assert format_reward(completions, **columns) == [1.0] * len(taught)
    assert all(v >= 0.5 for v in object_reward(completions, **columns))
    assert all(r["teacher_iou"] >= 0.5 and r["teacher_accepted"] >= 1 for r in taught)


def test_absolute_profile_needs_the_teachers_frames(tiny_model_dir, synth_dir, tmp_path, capsys):
    """qwen2.5-vl boxes are pixels of the frame the model saw: a teacher whose processor
    makes other frames than the records carry is refused before its weights load."""
    code = main(["trajectories", "--data", str(synth_dir / "train.jsonl"), "--profile",
                 "qwen2.5-vl", "--out", str(tmp_path / "t.jsonl"), "--teacher",
                 str(tiny_model_dir), "--device", "cpu", "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "sees other frames" in err and "--model" in err
    assert "Loading weights" not in err and not (tmp_path / "t.jsonl").exists()
