"""Teacher trajectories by rejection sampling (``mirg trajectories --teacher MODEL``).

A teacher model is asked each sample's question, with the very prompt the student will
train on (``mirg.core.prompts.build_messages`` in the records' coordinate profile),
optionally followed by the sample's annotated facts (``--teacher-facts``: what is where,
captions, relations; where only the target is annotated this gives the answer away and the
teacher rationalises it). It draws ``samples`` answers per sample; an answer is accepted
when mirg's own rewards give it full marks: the image reward (it names the target image),
the format reward (one ``<think>`` block, then one canonical ``<answer>``) and an
image-gated IoU of at least ``iou`` (``mirg.core.rewards.score_completion``, the judge
GRPO trains with). Of the accepted answers the one with the highest IoU becomes the
record's completion, verbatim; a sample with none keeps the template trajectory.

The records are the SFT records ``mirg trajectories`` writes, plus
``trajectory_source`` (``"teacher"`` or ``"template"``), ``teacher_samples`` (answers
drawn), ``teacher_accepted`` (how many passed) and ``teacher_iou`` (the kept answer's).
The summary (acceptance per task) is printed and written beside the output as
``OUT.teacher.json``. With the SFT model as the teacher this is rejection-sampling
fine-tuning data.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Protocol

from mirg.core.profiles import CoordinateProfile, get_profile
from mirg.core.prompts import assistant_message, build_messages
from mirg.core.rewards import score_completion
from mirg.data.exports import Exporter, image_paths
from mirg.data.schema import Sample, write_jsonl
from mirg.data.trajectories import _a, _words
from mirg.errors import MirgError
from mirg.eval.generation import BACKENDS
from mirg.files import write_json

#: At most this many annotated objects per image are listed in the teacher's facts.
MAX_FACT_OBJECTS = 8


@dataclass(frozen=True)
class TeacherConfig:
    """How to draw teacher trajectories (the ``mirg trajectories --teacher`` options)."""

    model: str
    samples: int = 4
    iou: float = 0.5
    temperature: float = 1.0
    top_p: float = 1.0
    facts: bool = False
    backend: str = "hf"
    batch_size: int = 4
    max_new_tokens: int = 1024
    seed: int = 0
    min_pixels: int | None = None
    max_pixels: int | None = None
    device: str = "auto"
    dtype: str = "auto"
    attention: str = "auto"
    tensor_parallel_size: int = 1  # vllm
    gpu_memory_utilization: float = 0.9  # vllm

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise MirgError(f"unknown backend {self.backend!r}; known: {', '.join(BACKENDS)}")
        if self.samples < 1:
            raise MirgError(f"--samples must be at least 1, got {self.samples}")
        if not 0 < self.iou <= 1:
            raise MirgError(f"--iou must lie in (0, 1], got {self.iou}")
        if self.batch_size < 1:
            raise MirgError(f"--batch-size must be at least 1, got {self.batch_size}")


class Sampler(Protocol):
    """What draws the answers: ``HFGenerator``/``VLLMGenerator`` with a ``Sampling``."""

    def sample(
        self, messages: Sequence[list[dict]], images: Sequence[Sequence[Any]]
    ) -> list[list[Any]]: ...


def facts_text(
    sample: Sample, profile: str | CoordinateProfile, frames: Sequence[Sequence[int]] | None
) -> str:
    """The sample's annotations as sentences, boxes in the profile's coordinates (on each
    image's frame for absolute-pixel profiles); empty when nothing is annotated."""
    prof = get_profile(profile)
    lines = []
    for i, objects in enumerate(sample.objects, 1):
        frame = frames[i - 1] if frames is not None else None
        listed = [  # in the trajectories' words: 'a small blue triangle (marked …) at [box]'
            f"{_a(_words(o))}{' (marked with a red box)' if o.get('marked') else ''} at "
            f"{prof.render_box(o['box'], frame)}"
            for o in objects[:MAX_FACT_OBJECTS]
        ]
        if listed:
            lines.append(f"Image-{i} holds " + "; ".join(listed) + ".")
    for i, caption in enumerate(sample.captions, 1):
        if caption:
            lines.append(f"Image-{i}: {caption.rstrip('.')}.")
    for rel in sample.relations:
        images = ", ".join(f"Image-{k}" for k in rel.get("images", []))
        kind = rel.get("type")
        if kind == "crop_of":
            lines.append(f"Image-{rel['image']} is a region cut from Image-{rel['source']}.")
        elif kind == "same_object" and images:
            lines.append(f"The same object appears in {images}.")
        elif kind == "same_scene" and images:
            lines.append(f"{images} show the same scene.")
        elif kind == "difference" and rel.get("change"):
            lines.append(f"Between {images or 'the images'}, an object was {rel['change']}.")
    return " ".join(lines)


def teacher_messages(
    sample: Sample,
    profile: str | CoordinateProfile,
    frames: Sequence[Sequence[int]] | None = None,
    facts: bool = False,
) -> list[dict]:
    """The student's prompt; with ``facts``, the annotations follow the question, with the
    request to reason as if reading them from the images."""
    question = sample.question
    if facts:
        known = facts_text(sample, profile, frames)
        if known:
            question += (
                f"\n\nAnnotations of these images: {known} Use them to answer correctly, but "
                "write your reasoning as if you read everything from the images."
            )
    return build_messages(question, sample.n_images, profile)


@dataclass(frozen=True)
class Choice:
    """What one sample's answers came to: the kept ``text`` (None: the template), how many
    were drawn and accepted, and the kept answer's IoU."""

    text: str | None
    tried: int
    accepted: int
    iou: float | None = None


def select(
    answers: Sequence[Any],
    sample: Sample,
    profile: str,
    frames: Sequence[Sequence[int]] | None,
    threshold: float,
) -> Choice:
    """Keep the accepted answer (the rule: the module's docstring) with the highest IoU (the
    first, on a tie). ``answers`` are texts or ``Generation``s."""
    best: tuple[float, str] | None = None
    accepted = 0
    for answer in answers:
        text = answer if isinstance(answer, str) else answer.text
        reward = score_completion(
            text,
            sample.target_image,
            sample.target_box,
            profile=profile,
            input_sizes=frames,
            n_images=sample.n_images,
        )
        if not (reward.image == 1.0 and reward.format == 1.0 and reward.object >= threshold):
            continue
        accepted += 1
        if best is None or reward.object > best[0]:
            best = (reward.object, text)
    iou, kept = best or (None, None)
    return Choice(kept, len(answers), accepted, iou)


def record(sample: Sample, exporter: Exporter, choice: Choice) -> dict[str, Any]:
    """The SFT record, its completion the teacher's where one was accepted."""
    out = exporter.sft(sample)
    if choice.text is not None:
        out["completion"] = assistant_message(choice.text)
    return out | {
        "trajectory_source": "teacher" if choice.text is not None else "template",
        "teacher_samples": choice.tried,
        "teacher_accepted": choice.accepted,
        "teacher_iou": choice.iou,
    }


def summarize(samples: Sequence[Sample], choices: Sequence[Choice]) -> dict[str, Any]:
    """Acceptance per task and overall: ``acceptance`` is the share of records whose
    completion is the teacher's, ``answer_acceptance`` the share of drawn answers that
    passed."""
    counts = ("records", "from_teacher", "answers", "answers_accepted")
    tasks: dict[str, dict[str, float]] = {}
    for s, c in zip(samples, choices, strict=True):
        row = tasks.setdefault(s.task, dict.fromkeys(counts, 0))
        row["records"] += 1
        row["from_teacher"] += c.text is not None
        row["answers"] += c.tried
        row["answers_accepted"] += c.accepted

    def rates(row: dict[str, float]) -> dict[str, float]:
        return row | {
            "acceptance": row["from_teacher"] / max(row["records"], 1),
            "answer_acceptance": row["answers_accepted"] / max(row["answers"], 1),
        }

    total = {k: sum(r[k] for r in tasks.values()) for k in counts}
    return {"tasks": {t: rates(r) for t, r in sorted(tasks.items())}, "overall": rates(total)}


def format_summary(summary: dict[str, Any]) -> str:
    """The acceptance table as text."""
    head = f"{'task':<20}{'records':>8}{'teacher':>9}{'accept%':>9}{'answers%':>10}"
    lines = [head, "-" * len(head)]
    for name, r in [*summary["tasks"].items(), ("overall", summary["overall"])]:
        if name == "overall":
            lines.append("-" * len(head))
        lines.append(
            f"{name:<20}{r['records']:>8}{r['from_teacher']:>9}{100 * r['acceptance']:>9.1f}"
            f"{100 * r['answer_acceptance']:>10.1f}"
        )
    return "\n".join(lines)


def choose_all(
    samples: Sequence[Sample],
    exporter: Exporter,
    sampler: Sampler,
    cfg: TeacherConfig,
    *,
    load_images: Callable[[Sequence[str]], list[Any]],
    batches: Callable[[Sequence[int]], Any] | None = None,
    progress: Any = None,
) -> list[Choice]:
    """Draw and judge answers for every sample, batch by batch (``batches`` orders the
    sample positions into batches; default: ``cfg.batch_size`` in file order). The answers'
    boxes are judged on the frames the records carry (``exporter.frame_rule``)."""
    profile = exporter.profile
    order = range(len(samples))
    groups = (
        batches(order)
        if batches
        else (list(order[i : i + cfg.batch_size]) for i in range(0, len(order), cfg.batch_size))
    )
    choices: dict[int, Choice] = {}
    for group in groups:
        images = [load_images(image_paths(samples[i], exporter.root)) for i in group]
        frames = [exporter.frame_rule.frames(imgs) for imgs in images]
        messages = [
            teacher_messages(samples[i], profile, f, cfg.facts)
            for i, f in zip(group, frames, strict=True)
        ]
        answers = sampler.sample(messages, images)
        for i, f, drawn in zip(group, frames, answers, strict=True):
            choices[i] = select(drawn, samples[i], profile, f, cfg.iou)
        if progress is not None:
            progress.update(len(group))
    return [choices[i] for i in order]


def summary_path(out: str | Path) -> Path:
    """Where the acceptance summary of ``out`` is written: ``OUT.teacher.json``."""
    return Path(f"{out}.teacher.json")


def teacher_trajectories(
    samples: Sequence[Sample],
    exporter: Exporter,
    cfg: TeacherConfig,
    out: str | Path,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Load the teacher, draw and judge its answers, write the records to ``out`` and the
    summary beside it; returns the summary."""
    from tqdm.auto import tqdm

    from mirg.eval.generation import (
        HFGenerator,
        Sampling,
        VLLMGenerator,
        batches_by_shape,
        image_sizes,
        load_images,
        prompt_tokens,
        vllm_engine_args,
    )
    from mirg.models.loading import (
        detect_family,
        frame_rule,
        load_model_and_processor,
        load_processor,
    )

    if not samples:
        raise MirgError("no samples to draw teacher trajectories for")
    start = time.perf_counter()
    sampling = Sampling(cfg.samples, cfg.temperature, cfg.top_p, seed=cfg.seed)
    # the frames are checked on the processor alone, before any weights load
    processor = load_processor(cfg.model, min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels)
    teacher_rule = frame_rule(processor)
    if get_profile(exporter.profile).needs_frame and teacher_rule != exporter.frame_rule:
        raise MirgError(
            f"profile {exporter.profile!r} writes pixels of the frame the model sees, and the "
            f"teacher {cfg.model} sees other frames ({teacher_rule}) than the records carry "
            f"({exporter.frame_rule}); pass --model with the student's folder, or "
            "--min-pixels/--max-pixels, so that both see the same frames"
        )
    if cfg.backend == "hf":
        from mirg.models.placement import placement_kwargs

        loaded = load_model_and_processor(
            cfg.model,
            profile=exporter.profile,
            min_pixels=cfg.min_pixels,
            max_pixels=cfg.max_pixels,
            **placement_kwargs(cfg.device, cfg.dtype, cfg.attention),
        )
        processor = loaded.processor
        sampler: Sampler = HFGenerator(loaded.model, processor, cfg.max_new_tokens, sampling)
        batch_size = cfg.batch_size

    @functools.cache
    def length(i: int) -> int:
        """The teacher prompt's tokens (facts included), for batching and vLLM's context."""
        s = samples[i]
        sizes = image_sizes(image_paths(s, exporter.root))
        frames = exporter.frame_rule.frames(sizes)
        messages = teacher_messages(s, exporter.profile, frames, cfg.facts)
        return prompt_tokens(processor, messages, sizes)

    if cfg.backend == "vllm":
        lengths = [length(i) for i in range(len(samples))]
        engine = vllm_engine_args(
            cfg.model,
            processor,
            max_images=max(s.n_images for s in samples),
            longest_prompt=max(lengths),
            max_new_tokens=cfg.max_new_tokens,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            tensor_parallel_size=cfg.tensor_parallel_size,
        )
        sampler = VLLMGenerator(processor, cfg.max_new_tokens, engine, sampling)
        batch_size = len(samples)  # the engine schedules the whole set itself

    def batches(order: Sequence[int]) -> Any:
        # what batches_by_shape sorts: a sample's place in the file and its images
        positions = [SimpleNamespace(index=i, images=samples[i].images) for i in order]
        for batch in batches_by_shape(positions, batch_size, lambda p: length(p.index)):
            yield [p.index for p in batch]

    bar = tqdm(total=len(samples), disable=not progress, desc="teacher", unit="sample")
    choices = choose_all(
        samples, exporter, sampler, cfg, load_images=load_images, batches=batches, progress=bar
    )
    bar.close()
    write_jsonl(out, (record(s, exporter, c) for s, c in zip(samples, choices, strict=True)))
    summary = {
        "teacher": cfg.model,
        "teacher_family": detect_family(cfg.model),
        "profile": exporter.profile,
        "config": asdict(cfg),
        **summarize(samples, choices),
        "seconds": time.perf_counter() - start,
    }
    write_json(summary_path(out), summary)
    return summary
