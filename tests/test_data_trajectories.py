"""Trajectories: every completion earns full reward, in every profile, and reads its annotations."""

from __future__ import annotations

import pytest

from data_fixtures import frames
from mirg.core.answers import has_canonical_format, parse_answer
from mirg.core.profiles import PROFILES
from mirg.core.rewards import score_completion
from mirg.data.references import QuotedBox
from mirg.data.schema import DataError, Sample
from mirg.data.synth import DEFAULT_FAMILIES, PRESETS, generate_sample
from mirg.data.trajectories import build_trajectory


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    out = []
    for preset in ("default", "hard", "starter", "binding", "single"):
        config = PRESETS[preset]
        for family in DEFAULT_FAMILIES if preset in ("default", "hard") else config.families:
            out += [generate_sample(config, family, 3, "train", i)[0] for i in range(12)]
    return out


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("detail", ["full", "brief", "minimal", "lookup"])
def test_every_trajectory_earns_full_reward(samples, profile, detail):
    for s in samples:
        sizes = frames(s)
        text = build_trajectory(s, profile, detail=detail, frames=sizes)
        reward = score_completion(
            text,
            s.target_image,
            s.target_box,
            profile=profile,
            input_sizes=sizes,
            n_images=s.n_images,
        )
        assert reward.image == 1.0 and reward.format == 1.0, (s.id, text)
        # The profile's integer coordinates round the box; IoU stays close to 1.
        assert reward.object >= 0.97, (s.id, profile, reward)
        assert has_canonical_format(text)


def test_answer_names_the_target_image_and_the_profile_coordinates(samples):
    s = next(x for x in samples if x.task == "group_grounding" and x.target_image == 2)
    text = build_trajectory(s, "qwen2-vl")
    parsed = parse_answer(text)
    assert parsed.image == 2
    assert parsed.box == tuple(round(v * 1000) for v in s.target_box)
    pixels = parse_answer(build_trajectory(s, "qwen2.5-vl", frames=frames(s))).box
    assert pixels == tuple(round(v * 112) for v in s.target_box)


def test_reasoning_walks_the_candidates_and_rules_them_out(samples):
    s = next(x for x in samples if x.task == "group_grounding" and sum(map(len, x.objects)) >= 3)
    text = build_trajectory(s, "qwen3-vl")
    think = text.split("</think>")[0]
    assert s.reference.text in think
    for k, per in enumerate(s.objects, 1):
        for obj in per:
            box = PROFILES["qwen3-vl"].render_box(obj["box"])
            assert box in think, (obj, think)  # every candidate is named with its box
            assert f"Image-{k}" in think
    assert "ruled out" in think or "not" in think

    marked = next(x for x in samples if x.task == "reasoning")
    think = build_trajectory(marked, "normalized").split("</think>")[0]
    ref = marked.objects[0][marked.reference.object]
    assert ref["attributes"]["colour"] in think and ref["category"] in think


def test_naming_reasoning_says_what_the_image_shows(samples):
    named = [s for s in samples if s.task == "name_object"]
    assert named
    for s in named:
        target = s.target_object()
        words = (
            f"{target['attributes']['size']} {target['attributes']['colour']} {target['category']}"
        )
        assert words in build_trajectory(s, "qwen3-vl", detail="full").split("</think>")[0]
        assert words not in build_trajectory(s, "qwen3-vl", detail="minimal")


def test_deterministic_and_varied_phrasing(samples):
    s = samples[0]
    assert build_trajectory(s, "qwen3-vl", seed=1) == build_trajectory(s, "qwen3-vl", seed=1)
    texts = {build_trajectory(s, "qwen3-vl", seed=seed) for seed in range(12)}
    assert len(texts) > 1
    answers = {t.split("<answer>")[1] for t in texts}
    assert len(answers) == 1  # phrasing varies, the answer does not


def test_detail_levels_shorten_the_reasoning(samples):
    s = next(x for x in samples if x.task == "group_grounding")
    full, brief, minimal = (
        build_trajectory(s, "qwen3-vl", detail=d) for d in ("full", "brief", "minimal")
    )
    assert len(minimal) < len(brief) < len(full)
    assert minimal.split("<answer>")[1] == full.split("<answer>")[1]
    assert minimal.split("</think>")[0].count(".") == 1  # one sentence: the conclusion


def test_degrades_to_image_level_when_only_the_target_is_annotated():
    s = Sample(
        id="m1",
        task="multi_view",
        images=["a.jpg", "b.jpg", "c.jpg"],
        question="Locate the marked object in the 3th image.",
        target_image=3,
        target_box=(0.2, 0.3, 0.4, 0.6),
        objects=[[], [], [{"box": [0.2, 0.3, 0.4, 0.6], "category": None, "attributes": {}}]],
        reference=QuotedBox(image=1, box=(0.1, 0.1, 0.3, 0.3)),
        target={"image": 3, "object": 0},
        meta={"annotations": "target_only"},
    )
    text = build_trajectory(s, "qwen2-vl")
    assert "[100, 100, 300, 300]" in text  # the reference box, in the profile's numbers
    assert "no candidates" not in text and "Image-1 has" not in text  # claims nothing unknown
    assert score_completion(text, 3, s.target_box, profile="qwen2-vl", n_images=3).object == 1.0
    with pytest.raises(DataError, match=r"'image_sizes'.*qwen2\.5-vl"):
        build_trajectory(s, "qwen2.5-vl")


def test_aligned_pairs_answer_where_the_change_shows(samples):
    for s in (x for x in samples if x.task == "diff"):
        text = build_trajectory(s, "qwen3-vl")
        change = s.reference.change
        assert parse_answer(text).image == (1 if change == "removed" else 2)
        think = text.split("</think>")[0]
        words = {"added": ("new", "only in", "adds"), "removed": ("missing", "lacks", "disappears")}
        words["changed"] = ("became", "changed from", " is ")
        assert any(w in think for w in words[change]), think
        assert PROFILES["qwen3-vl"].render_box(s.target_box) in think


def test_lookup_detail_tables_what_tells_the_images_apart(samples):
    """Where the model must choose the image, ``lookup`` writes each candidate's deciding
    value right before its image number and then the question's value with the target's
    number: the value after "Asked:" occurs in the table exactly once, beside that number.
    Questions that name the image, or show one, get the conclusion only (as ``minimal``)."""
    import re

    choosing = [s for s in samples if s.task == "group_grounding" and "Image-" not in s.question]
    assert len(choosing) >= 12
    for s in choosing:
        text = build_trajectory(s, "qwen3-vl", detail="lookup")
        think = text.split("</think>")[0]
        table = re.findall(r"Image-(\d): ([^.]*)\.", think)
        assert [int(i) for i, _ in table] == list(range(1, s.n_images + 1)), text
        asked = re.search(r"Asked: (.+) (\d)\. So Image-(\d) at \[", think)
        assert asked, text
        value, number, chosen = asked.group(1), int(asked.group(2)), int(asked.group(3))
        assert number == chosen == s.target_image, text
        entries = [e.strip() for _, row in table for e in row.split(",")]
        assert entries.count(f"{value} {number}") == 1, text
        assert not [e for e in entries if e.rsplit(" ", 1)[0] == value and e != f"{value} {number}"]
    for s in samples:
        if s.n_images == 1 or "Image-" in s.question:
            assert build_trajectory(s, "qwen3-vl", detail="lookup") == build_trajectory(
                s, "qwen3-vl", detail="minimal"
            )
