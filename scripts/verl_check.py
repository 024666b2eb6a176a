"""Check mirg's verl integration inside a verl environment (no GPU, no Ray cluster).

Run with verl's Python, on a parquet from ``mirg export --format verl`` and a small
Qwen2.5-VL model folder (``mirg tiny-model --family qwen2.5-vl``)::

    PYTHONPATH=src /path/to/verl-env/bin/python scripts/verl_check.py \
        --parquet data/verl/train.parquet --model runs/tiny-qwen2.5-vl

1. every key of the verl recipe exists in the installed verl's config (Hydra would
   otherwise add a misspelt key silently);
2. verl's own ``RLHFDataset`` loads the parquet with the model's processor; each prompt
   gets one image block per image, within the recipe's image limit, and the frame the
   processor produces for each image equals the ``input_sizes`` the reward converts
   absolute (qwen2.5-vl) coordinates with;
3. verl's reward path (``load_reward_manager`` with ``custom_reward_function`` pointing
   at ``src/mirg/integrations/verl.py``, the naive manager, responses decoded by verl
   without special tokens) returns the same total and components as calling
   ``compute_score`` directly: 2.5 for the exact answer (a little less on large frames,
   from integer pixel coordinates), 0.5 for a well-formed answer on the wrong image, 0
   for free text.

Prints a JSON summary (and writes it to ``--out``); exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
IMAGE_PAD = "<|image_pad|>"


def leaf_paths(node: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the leaves of a plain YAML mapping."""
    if not isinstance(node, dict):
        return [prefix]
    out = []
    for key, value in node.items():
        out += leaf_paths(value, f"{prefix}.{key}" if prefix else str(key))
    return out


def unknown_keys(recipe_file: Path) -> list[str]:
    """Recipe keys that the installed verl's ``ppo_trainer`` config does not define."""
    import dataclasses

    import yaml
    from hydra import compose, initialize_config_module
    from hydra.utils import get_class
    from omegaconf import OmegaConf

    recipe = yaml.safe_load(recipe_file.read_text())
    recipe.pop("hydra", None)
    recipe.pop("defaults", None)
    with initialize_config_module("verl.trainer.config", version_base=None):
        base = compose(config_name="ppo_trainer")
    missing = []
    for path in leaf_paths(recipe):
        parent, _, leaf = path.rpartition(".")
        node = OmegaConf.select(base, parent) if parent else base
        if node is not None and leaf in node:
            continue
        # keys of verl's config dataclasses that its YAML leaves out (e.g. limit_images)
        target = node.get("_target_") if node is not None else None
        fields = {f.name for f in dataclasses.fields(get_class(target))} if target else set()
        if leaf not in fields:
            missing.append(path)
    return missing


def compose_recipe(recipe_dir: Path, name: str, overrides: list[str]) -> Any:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(recipe_dir), version_base=None):
        return compose(config_name=name, overrides=overrides)


def check_dataset(cfg: Any, processor: Any) -> tuple[list[dict], list[str]]:
    """Load the parquet through verl's RLHFDataset; compare frames with the targets."""
    from omegaconf import open_dict
    from verl.utils.dataset.rl_dataset import RLHFDataset

    with open_dict(cfg.data):
        cfg.data.cache_dir = tempfile.mkdtemp(prefix="verl-cache-")
        cfg.data.filter_overlong_prompts_workers = 1
    dataset = RLHFDataset(cfg.data.train_files, processor.tokenizer, cfg.data, processor=processor)
    patch = processor.image_processor.patch_size
    merge = processor.image_processor.merge_size
    limit = cfg.actor_rollout_ref.rollout.limit_images
    rows, problems = [], []
    for i in range(len(dataset)):
        row = dataset[i]
        messages = row["raw_prompt"]
        images, _, _ = RLHFDataset._process_multi_modal_info(
            messages, dataset.image_patch_size, cfg
        )
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        inputs = processor(text=[text], images=images, return_tensors="pt")
        grid = inputs["image_grid_thw"].tolist()
        frames = [[w * patch, h * patch] for _, h, w in grid]
        targets = json.loads(row["reward_model"]["ground_truth"])
        n_images = row["extra_info"]["n_images"]
        pad_id = processor.tokenizer.convert_tokens_to_ids(IMAGE_PAD)
        pads = int((inputs["input_ids"][0] == pad_id).sum())
        expected_pads = sum(t * h * w for t, h, w in grid) // (merge * merge)
        where = f"row {i} ({row['extra_info']['id']})"
        if len(images) != n_images or text.count("<|vision_start|>") != n_images:
            problems.append(f"{where}: {len(images)} images for n_images={n_images}")
        if limit and n_images > limit:
            problems.append(f"{where}: {n_images} images above limit_images={limit}")
        if pads != expected_pads:
            problems.append(f"{where}: {pads} image tokens, the grid needs {expected_pads}")
        if targets.get("input_sizes") and frames != targets["input_sizes"]:
            problems.append(
                f"{where}: verl shows the model frames {frames}, the reward converts "
                f"coordinates with input_sizes {targets['input_sizes']}"
            )
        rows.append({"prompt_tokens": int(inputs["input_ids"].shape[1]), "frames": frames} | row)
    return rows, problems


def check_rewards(cfg: Any, tokenizer: Any, rows: list[dict]) -> tuple[list[dict], list[str]]:
    """Score three responses per row through verl's reward manager."""
    import numpy as np
    import torch
    from verl import DataProto
    from verl.trainer.ppo.reward import load_reward_manager

    from mirg.core.profiles import get_profile
    from mirg.core.rewards import DEFAULT_WEIGHTS as COMPONENTS  # the default reward's parts
    from mirg.integrations.verl import compute_score

    manager = load_reward_manager(cfg, tokenizer)
    results, problems = [], []
    for row in rows:
        targets = json.loads(row["reward_model"]["ground_truth"])
        profile = get_profile(targets["profile"])
        k = targets["target_image"] or 1
        sizes = targets.get("input_sizes")
        frame = sizes[k - 1] if sizes else None
        box = targets["target_box"]
        exact = profile.render_answer(k, box, frame)
        n = row["extra_info"]["n_images"]
        wrong = profile.render_answer(k % n + 1, box, frame) if targets["target_image"] else None
        # (response, lowest and highest score expected); an exact answer loses a little
        # IoU to integer pixel coordinates on large frames
        cases = {
            "exact": (f"<think>Image-{k} holds it.</think><answer>{exact}</answer>", 2.45, 2.5)
        }
        if wrong is not None and n > 1:
            cases["wrong_image"] = (f"<think>guess</think><answer>{wrong}</answer>", 0.5, 0.5)
        cases["free_text"] = ("the object is somewhere on the left", 0.0, 0.0)
        for case, (response, low, high) in cases.items():
            prompt_ids = torch.tensor(tokenizer("Image-1:")["input_ids"])
            # eos after the answer, as a rollout ends; verl decodes without special tokens
            response_ids = torch.tensor(
                tokenizer(response)["input_ids"] + [tokenizer.convert_tokens_to_ids("<|im_end|>")]
            )
            data = DataProto.from_dict(
                tensors={
                    "prompts": prompt_ids[None],
                    "responses": response_ids[None],
                    "attention_mask": torch.ones(
                        1, len(prompt_ids) + len(response_ids), dtype=torch.long
                    ),
                },
                non_tensors={
                    "data_source": np.array([row["data_source"]], dtype=object),
                    "reward_model": np.array([row["reward_model"]], dtype=object),
                    "extra_info": np.array([dict(row["extra_info"])], dtype=object),
                },
            )
            # the manager runs on its own event loop (verl's get_event_loop)
            out = manager.loop.run_until_complete(manager.run_single(data))
            extra = out["reward_extra_info"]
            info = {c: extra[c] for c in COMPONENTS if c in extra}
            name = row["extra_info"]["id"]
            results.append({"id": name, "case": case, "score": out["reward_score"]} | info)
            direct = compute_score(
                row["data_source"], response, row["reward_model"]["ground_truth"], row["extra_info"]
            )
            if not low - 1e-9 <= out["reward_score"] <= high + 1e-9:
                problems.append(f"{name} {case}: {out} (expected a score in [{low}, {high}])")
            if set(info) != set(COMPONENTS) or info != {c: direct[c] for c in COMPONENTS}:
                problems.append(f"{name} {case}: verl gave {info}, mirg directly {direct}")
    return results, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parquet", required=True, help="mirg export --format verl output")
    parser.add_argument("--model", required=True, help="Qwen2.5-VL model folder (processor)")
    parser.add_argument("--recipe", default="qwen2.5-vl-7b-grpo", help="recipe in recipes/verl")
    parser.add_argument("--max-rows", type=int, default=6, help="rows to score (0: all)")
    parser.add_argument("--out", default=None, help="also write the JSON summary here")
    args = parser.parse_args(argv)

    import verl
    from transformers import AutoProcessor

    recipe_dir = REPO / "recipes" / "verl"
    summary: dict[str, Any] = {"verl": verl.__version__, "problems": []}
    missing = unknown_keys(recipe_dir / f"{args.recipe}.yaml")
    summary["problems"] += [f"recipe key not in verl's config: {k}" for k in missing]
    cfg = compose_recipe(
        recipe_dir,
        args.recipe,
        [
            f"data.train_files={Path(args.parquet).resolve()}",
            f"actor_rollout_ref.model.path={Path(args.model).resolve()}",
            f"reward.custom_reward_function.path={REPO / 'src/mirg/integrations/verl.py'}",
        ],
    )
    processor = AutoProcessor.from_pretrained(args.model)
    rows, problems = check_dataset(cfg, processor)
    summary["rows"] = len(rows)
    summary["images_per_prompt"] = sorted({r["extra_info"]["n_images"] for r in rows})
    summary["prompt_tokens_max"] = max(r["prompt_tokens"] for r in rows)
    summary["problems"] += problems
    scored = rows[: args.max_rows] if args.max_rows else rows
    results, problems = check_rewards(cfg, processor.tokenizer, scored)
    summary["rewards"] = results
    summary["problems"] += problems
    text = json.dumps(summary, indent=1, default=str)
    print(text)  # verl prints its own progress lines on stdout too
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 1 if summary["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
