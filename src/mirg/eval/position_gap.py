"""Does a model read *where* an object is from the image, or from the prompt's layout?

Qwen-VL models give every token an M-RoPE position; the tokens after an image continue
from it. A model can learn to read an object's place from the rotary distance between its
answer and the image tokens, a shortcut that holds for one prompt layout only: put a few
more words between image and question and the distance changes. This probe shifts the
positions of every token after the last image by ``k`` (the token sequence is unchanged)
and measures strict Acc@0.5 at each shift. A model that reads positions from the image
scores the same at every ``k``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from mirg.core.scoring import read_predictions, score_items
from mirg.data.synth import PRESETS, SMALL_WORLD, write_dataset
from mirg.eval.benchmarks import load_eval_items
from mirg.eval.chance import chance_metrics
from mirg.eval.run import EvalConfig, evaluate
from mirg.models.loading import load_model_and_processor
from mirg.models.placement import placement_kwargs


@contextmanager
def shifted_text_positions(model: Any, k: int) -> Iterator[None]:
    """While active, the M-RoPE positions of every token after a prompt's last image token
    are ``k`` larger (prefill and the tokens generated after it). Wraps this one model's
    ``get_rope_index``; nothing else changes."""
    import torch

    inner = model.model
    original = inner.get_rope_index
    image_token = model.config.image_token_id

    def shifted(input_ids: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        positions, deltas = original(input_ids, *args, **kwargs)
        if k:
            is_image = input_ids == image_token
            index = torch.arange(input_ids.shape[1], device=input_ids.device)
            last = torch.where(is_image, index, torch.full_like(index, -1)).max(dim=1).values
            after = (index[None, :] > last[:, None]) & (last[:, None] >= 0)
            positions = positions + k * after[None].to(positions.dtype)
            deltas = deltas + k * (last >= 0).to(deltas.dtype)[:, None]
        return positions, deltas

    inner.get_rope_index = shifted
    try:
        yield
    finally:
        del inner.get_rope_index  # the class method again
        inner.rope_deltas = None


def _evaluate(loaded: Any, data: str | Path, out: Path) -> dict:
    """``mirg eval`` of ``data`` into ``out`` with the model already in memory."""
    cfg = EvalConfig(model=str(loaded.path), data=str(data), out=str(out), max_new_tokens=160)
    return evaluate(cfg, loaded=loaded, progress=False)


def probe_model(
    model: str | Path,
    out: str | Path,
    items: int = 80,
    seed: int = 1234,
    shifts: Sequence[int] = (0, 8, 32),
    device: str = "cpu",
) -> dict[str, Any]:
    """The position-gap probe on fresh items (worlds drawn with ``seed``): single-image
    strict Acc@0.5 at each shift, two-image named localisation per target image, and the
    chance level of each set, in one dict."""
    out = Path(out)
    loaded = load_model_and_processor(str(model), **placement_kwargs(device))
    result: dict[str, Any] = {"items": items, "seed": seed}
    # Two images, one object each, the question names the image ("Locate the small red
    # circle in Image-2."): localisation wherever the image sits in the prompt.
    two_image = replace(SMALL_WORLD, families=("referring",), images=(2, 2))
    for name, world in (("single", PRESETS["single"]), ("two_image", two_image)):
        data = out / f"data-{name}"
        if not (data / "test.jsonl").is_file():
            write_dataset(data, items * 2, seed, world, fractions=(1, 0, 1))
        test = load_eval_items(data / "test.jsonl")
        prior = [it.target_box for it in load_eval_items(data / "train.jsonl")]
        chance = chance_metrics(test, prior, seed=seed)["average"]["acc@0.5"]
        if name == "single":
            result["single"] = {}
            for k in shifts:
                with shifted_text_positions(loaded.model, k):
                    metrics = _evaluate(loaded, data / "test.jsonl", out / name / f"shift-{k}")
                result["single"][k] = metrics["average"]["acc@0.5"]
        else:
            folder = out / name
            _evaluate(loaded, data / "test.jsonl", folder)
            predictions = read_predictions(folder / "predictions.jsonl")
            scores = score_items(test, predictions, "strict", loaded.profile.name)
            by_image: dict[int, list[bool]] = {}
            for item, score in zip(test, scores, strict=True):
                by_image.setdefault(item.target_image, []).append(score.iou >= 0.5)
            result["two_image"] = {
                k: 100.0 * sum(hits) / len(hits) for k, hits in sorted(by_image.items())
            }
        result[f"{name}_chance"] = chance
    return result
