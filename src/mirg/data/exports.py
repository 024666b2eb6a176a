"""Exports of samples for training engines, all built on the core's one prompt builder.

* ``sft`` (TRL ``SFTTrainer``): conversational ``prompt`` (system + user turn with
  "Image-k:" before each image) and ``completion`` (the assistant turn holding the
  trajectory), plus ``images``. The same record carries the reward columns, so one file
  also serves GRPO; SFTTrainer drops columns it does not use.
* ``grpo`` (TRL ``GRPOTrainer``): ``prompt`` and ``images`` plus exactly the columns the
  core rewards read: ``target_image`` (1-based or null), ``target_box`` (relative),
  ``profile``, ``input_sizes`` (one [w, h] frame per image, the smart-resized frame the
  model sees; required by qwen2.5-vl).
* ``verl`` (parquet): ``prompt`` with one ``<image>`` per image, ``images`` (embedded
  PNG bytes), ``reward_model.ground_truth`` (JSON of the reward targets, read by
  :func:`mirg.integrations.verl.compute_score`), ``extra_info``.
* ``sharegpt`` (LLaMA-Factory): a JSON list of ``messages`` / ``system`` / ``images``
  records, with the ``dataset_info.json`` entry that registers it.

Every record is checked: image placeholders and images agree in number. The frames in
``input_sizes`` follow a :class:`~mirg.models.loading.FrameRule`: the processor's own
(``mirg export --model``) or the profile family's default. ``sft``/``grpo`` files load
back for TRL through :mod:`mirg.train.data`, the trainers' own reader.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mirg.core.prompts import (
    assistant_message,
    build_messages,
    count_image_placeholders,
    image_label,
    system_prompt,
)
from mirg.data.schema import (
    DataError,
    Sample,
    check_placeholders,
    image_bytes_as_shown,
    read_json,
    resolve_image_path,
    write_jsonl,
)
from mirg.data.trajectories import build_trajectory
from mirg.errors import MirgError
from mirg.files import atomic_write, write_text
from mirg.models.loading import FrameRule, default_frame_rule
from mirg.outputs import GRPO, SFT, SHAREGPT, VERL

FORMATS = ("sft", "grpo", "verl", "sharegpt")


def image_paths(sample: Sample, root: str | Path) -> list[str]:
    """Absolute paths of the sample's images, each confined to ``root`` (a link inside the
    dataset cannot put another file of the machine into a training record)."""
    return [
        str(resolve_image_path(Path(root), p, f"sample {sample.id!r}: field 'images[{k}]'"))
        for k, p in enumerate(sample.images)
    ]


class Exporter:
    """Turns samples into records for one coordinate profile and frame rule.

    ``frame_rule`` must be the rule of the processor that will see the images (see
    :func:`mirg.models.loading.frame_rule`); it decides the frame each image is shown at,
    which qwen2.5-vl's absolute coordinates refer to. By default, the profile family's.
    """

    def __init__(
        self,
        profile: str,
        *,
        root: str | Path,
        seed: int = 0,
        detail: str = "full",
        frame_rule: FrameRule | None = None,
    ) -> None:
        self.profile = profile
        self.root = Path(root)
        self.seed = seed
        self.detail = detail
        self.frame_rule = frame_rule or default_frame_rule(profile)

    def frames(self, sample: Sample) -> list[list[int]] | None:
        """The frame each image is shown at, or None where the sample has no image sizes."""
        return None if sample.image_sizes is None else self.frame_rule.frames(sample.image_sizes)

    def completion(self, sample: Sample) -> str:
        return build_trajectory(
            sample, self.profile, seed=self.seed, detail=self.detail, frames=self.frames(sample)
        )

    def _targets(self, sample: Sample) -> dict[str, Any]:
        return {
            "target_image": sample.target_image,
            "target_box": list(sample.target_box),
            "profile": self.profile,
            "input_sizes": self.frames(sample),
        }

    def grpo(self, sample: Sample) -> dict[str, Any]:
        prompt = build_messages(sample.question, sample.n_images, self.profile)
        images = image_paths(sample, self.root)
        check_placeholders(count_image_placeholders(prompt), images, f"sample {sample.id!r}")
        return {"id": sample.id, "task": sample.task, "prompt": prompt, "images": images} | (
            self._targets(sample)
        )

    def sft(self, sample: Sample) -> dict[str, Any]:
        """The GRPO record with the ``completion`` after the prompt."""
        record = self.grpo(sample)
        head = {key: record.pop(key) for key in ("id", "task", "prompt")}
        return head | {"completion": assistant_message(self.completion(sample))} | record

    def user_text(self, sample: Sample) -> str:
        """The user turn as text with one ``<image>`` per image (verl, LLaMA-Factory)."""
        labels = "".join(f"{image_label(k)}: <image>\n" for k in range(1, sample.n_images + 1))
        text = labels + sample.question
        check_placeholders(text.count("<image>"), sample.images, f"sample {sample.id!r}")
        return text

    def verl(self, sample: Sample, index: int, split: str = "train") -> dict[str, Any]:
        text = self.user_text(sample)
        images = []  # the image as shown, whether or not verl's loader applies EXIF tags
        for k, path in enumerate(image_paths(sample, self.root)):
            where = f"sample {sample.id!r}: field 'images[{k}]'"
            images.append({"bytes": image_bytes_as_shown(path, where), "path": None})
        return {
            "data_source": "mirg",
            "prompt": [
                {"role": "system", "content": system_prompt(self.profile)},
                {"role": "user", "content": text},
            ],
            "images": images,
            "ability": "grounding",
            "reward_model": {"style": "rule", "ground_truth": json.dumps(self._targets(sample))},
            "extra_info": {
                "id": sample.id,
                "index": index,
                "split": split,
                "task": sample.task,
                "n_images": sample.n_images,
            },
        }

    def sharegpt(self, sample: Sample) -> dict[str, Any]:
        images = image_paths(sample, self.root)
        text = self.user_text(sample)
        return {
            "messages": [
                {"role": "user", "content": text},
                {"role": "assistant", "content": self.completion(sample)},
            ],
            "system": system_prompt(self.profile),
            "images": images,
        }


def export(
    samples: Iterable[Sample],
    fmt: str,
    out: str | Path,
    exporter: Exporter,
    *,
    split: str = "train",
) -> int:
    """Write ``samples`` in format ``fmt`` to ``out``; returns the number of records."""
    out = Path(out)
    if fmt in ("sft", "grpo"):
        return write_jsonl(out, map(getattr(exporter, fmt), samples))
    if fmt == "sharegpt":
        records = [exporter.sharegpt(s) for s in samples]
        write_text(out, json.dumps(records, ensure_ascii=False, indent=1) + "\n")
        if out.is_file():  # not a device or pipe: /dev/stdout has no folder to register in
            _register_llamafactory(out)
        return len(records)
    if fmt == "verl":
        import pyarrow as pa
        import pyarrow.parquet as pq

        records = [exporter.verl(s, i, split) for i, s in enumerate(samples)]
        with atomic_write(out, "wb") as handle:
            pq.write_table(pa.Table.from_pylist(records), handle)
        return len(records)
    raise MirgError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")


#: The kind of output each format writes, as :func:`mirg.outputs.check_output` names it.
KINDS = {"sft": SFT, "grpo": GRPO, "verl": VERL, "sharegpt": SHAREGPT}


def _register_llamafactory(out: Path) -> None:
    """Add (or update) the file's entry in ``dataset_info.json`` beside it."""
    info_path = out.parent / "dataset_info.json"
    info = read_json(info_path, "LLaMA-Factory dataset_info") if info_path.is_file() else {}
    if not isinstance(info, dict):
        raise DataError(f"{info_path}: expected a JSON object of datasets; fix or remove it")
    info[out.stem] = {
        "file_name": out.name,
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "system": "system", "images": "images"},
        "tags": {
            "role_tag": "role",
            "content_tag": "content",
            "user_tag": "user",
            "assistant_tag": "assistant",
        },
    }
    write_text(info_path, json.dumps(info, indent=2) + "\n")
