"""How the demo's shipped base model is made (``mirg demo --pretrain-base DIR``): the
recipe is :func:`pretrain_base`; ``mirg/assets/`` ships the result, docs/demo.md has its
figures and the attempts before it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from mirg.data.synth import PRESETS, WorldConfig, write_dataset
from mirg.demo import DEMO_MODEL, demo_config, write_trajectories

#: The shipped base's curriculum: what a pretrained VLM brings to the demo, at toy scale.
#: Localisation in one image and in 1-4 images with the image named (``referring``: the
#: other images may hold the same kind of object), grounded naming in multi-image prompts,
#: a described object among a look-alike of another colour, and 0-40 unrelated words
#: before the question, so the distance from an image to the question varies and the
#: object's place must be read from the image itself (docs/demo.md, position gaps).
#: Half the samples use the demo's fixed wording, half vary it.
BASE_WORLD = WorldConfig(
    families=("single_object", "referring", "name_object"),
    weights=(1.0, 2.0, 1.0),
    image_size=84,
    images=(1, 4),
    distractors=(0, 1),
    sizes=("small",),
    backgrounds=("flat",),
    look_alike_changes=("colour",),
    filler_words=(0, 40),
)


def write_base_curriculum(
    out: str | Path, n: int, seed: int, world: WorldConfig, profile: str = "qwen3-vl"
) -> Path:
    """The base's training trajectories from ``n`` samples of ``world``, half in the demo's
    fixed wording: ``minimal`` (the conclusion) for localisation, ``brief`` (the naming
    sentence, then the conclusion) for naming; returns the JSONL path."""
    from mirg.data.exports import Exporter
    from mirg.data.schema import read_samples
    from mirg.files import atomic_write

    out = Path(out)
    samples = []
    for part, fixed in (("fixed", True), ("varied", False)):
        write_dataset(
            out / part,
            n // 2,
            seed + int(fixed),
            replace(world, fixed_layout=fixed),
            fractions=(1, 0, 0),
        )
        samples += [
            replace(s, id=f"{part}-{s.id}", images=[f"{part}/{i}" for i in s.images])
            for s in read_samples(out / part / "train.jsonl", check_images="none")
        ]
    trajectories = out / "trajectories.jsonl"
    with atomic_write(trajectories) as handle:
        for sample in samples:
            detail = "brief" if sample.task == "name_object" else "minimal"
            exporter = Exporter(profile, root=out, seed=seed, detail=detail)
            handle.write(json.dumps(exporter.sft(sample), ensure_ascii=False) + "\n")
    return trajectories


def sinusoidal_positions(model_dir: str | Path, image: str | Path, scale: float = 3.0) -> None:
    """Give a tiny Qwen3-VL's vision tower a fixed-looking 2-D sinusoidal position table,
    ``scale`` times the spread of its patch embeddings on ``image``, and save the model.

    A real VLM's vision tower has learned where each patch is; a tiny random tower has
    not, and its small random table is washed out by the content, so the language model
    can only read an object's place from the rotary distance between its answer and the
    image, which changes with the prompt's layout (docs/demo.md, the base model). With
    this table the tower's output carries the place and training reads it from there.
    """
    import math

    import torch

    from mirg.data.schema import open_image
    from mirg.models.loading import load_model_and_processor

    loaded = load_model_and_processor(model_dir)
    tower = loaded.model.model.visual
    rows_cols, dim = tower.pos_embed.weight.shape
    side, quarter = math.isqrt(rows_cols), dim // 4
    freqs = torch.exp(-math.log(2.0 * side) * torch.arange(quarter) / quarter) * math.pi
    grid = torch.arange(side, dtype=torch.float32)
    row, col = grid.repeat_interleave(side), grid.repeat(side)

    def waves(p: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.sin(p[:, None] * freqs), torch.cos(p[:, None] * freqs)], 1)

    table = torch.cat([waves(row), waves(col)], 1)
    pixels = loaded.processor.image_processor(images=[open_image(image)], return_tensors="pt")
    with torch.no_grad():
        content = tower.patch_embed(pixels["pixel_values"].to(tower.pos_embed.weight.dtype))
        tower.pos_embed.weight.copy_(table / table.std() * content.std() * scale)
    loaded.model.save_pretrained(model_dir)


def pretrain_base(
    out: str | Path,
    seed: int = 0,
    *,
    steps: tuple[int, int, int] = (4000, 2000, 4000),
    samples: int = 16000,
    probe_items: int = 80,
    device: str = "cpu",
) -> Path:
    """Retrain the shipped base by its recipe (the skill repeats, the bytes need not).

    1. A tiny Qwen3-VL (``DEMO_MODEL``) from random weights learns single-image
       localisation: the ``single`` world (3,000 samples, ``minimal`` trajectories).
    2. Its vision tower gets a 2-D sinusoidal position table (:func:`sinusoidal_positions`)
       and it learns the same task with 0-40 unrelated words before the question (5,000
       samples), so it must read the place from the image, not from the layout.
    3. The multi-image curriculum (:data:`BASE_WORLD`, ``samples`` samples): localisation
       in 1-4 images with the image named, grounded naming, a look-alike in the image.
    Each stage: batch 8, cosine schedule, learning rate 3e-4 (2e-4 for stage 3);
    ``steps`` per stage. Writes ``out/model`` and ``out/probe.json`` (the position-gap probe,
    :mod:`mirg.eval.position_gap`).
    """
    from mirg.eval.position_gap import probe_model
    from mirg.models.tiny import TinySpec, save_tiny_model
    from mirg.train.sft import run_sft

    out = Path(out)
    single, gaps = out / "1-single", out / "2-gaps"
    worlds = {
        single: (PRESETS["single"], 3000, seed),
        gaps: (replace(PRESETS["single"], filler_words=(0, 40)), 5000, seed + 7),
    }
    for folder, (world, n, world_seed) in worlds.items():
        if not (folder / "data" / "trajectories.jsonl").is_file():
            write_dataset(folder / "data", n, world_seed, world, fractions=(1, 0, 0))
            write_trajectories(
                folder / "data" / "train.jsonl",
                folder / "data" / "trajectories.jsonl",
                "qwen3-vl",
                "minimal",
            )
    write_base_curriculum(out / "3-curriculum" / "data", samples, seed + 3, BASE_WORLD)
    save_tiny_model(out / "random-init", "qwen3-vl", TinySpec(**DEMO_MODEL))

    def stage(start: Path, folder: Path, n_steps: int, lr: float) -> Path:
        config = demo_config(
            "sft",
            model_name_or_path=str(start),
            dataset_path=str(folder / "data" / "trajectories.jsonl"),
            output_dir=str(folder / "model"),
            max_steps=n_steps,
            learning_rate=lr,
            seed=seed,
            logging_steps=100,
            use_cpu=device == "cpu",
        )
        run_sft(config)
        return folder / "model"

    model = stage(out / "random-init", single, steps[0], 3e-4)
    sinusoidal_positions(model, next((single / "data" / "images" / "train").glob("*.png")))
    model = stage(model, gaps, steps[1], 3e-4)
    model = stage(model, out / "3-curriculum", steps[2], 2e-4)
    probe = probe_model(model, out / "probe", items=probe_items, device=device)
    (out / "probe.json").write_text(json.dumps(probe, indent=2) + "\n", encoding="utf-8")
    print(f"base model: {model}; position-gap probe: {probe}")
    print(f"use it: mirg demo --model {model}")
    return model
