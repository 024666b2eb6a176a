"""The sampling probe: does a model leave GRPO something to learn, and at which temperature?

GRPO learns only from groups whose rewards vary. Before spending compute, this probe draws
``--samples`` answers per fresh binding item at each ``--temperatures`` (and one greedy
answer) and reports, per item, the hit rate ``p`` of the right image and of Acc@0.5
(strict: the box counts on the right image only), then over the items:

- greedy image accuracy and Acc@0.5 (what evaluation reports);
- the mean sampled hit rate, and the share of items with ``0 < p < 1`` (groups with
  signal) — the useful within-group variance of a binary reward is ``p(1 - p)(g - 1)/g``;
- how many greedy-wrong items are sampled right at least once (what RL can sharpen);
- the share of sampled answers naming the wrong image with a box that still overlaps the
  target (IoU >= 0.5): what plain IoU pays for and the image-gated reward does not;
- the entropy where the image is decided: teacher-forcing the greedy answer, the position
  among its standalone image numbers (1..N, not part of a coordinate) where the model gives
  the other images the most probability; its entropy over the whole vocabulary and that
  probability (a model that already decides with certainty leaves sampling nothing to vary).

Everything is split into same-place items (the look-alike at the target's place) and
different-place items. Items come from a binding world of a seed no training uses
(``binding_items.py``).

    .venv/bin/python benchmarks/bench_sampling.py --model runs/demo/sft \\
        --temperatures 0.7 1.0 1.3 --items 120 --samples 8 --out runs/probe-sft.json

Figures: docs/benchmarks.md ("The sampling probe").
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

from binding_items import FRESH_SEED, binding_world, fresh_binding_items, same_place_ids


def _score(text: str, item: Any, profile: str, sizes: list[list[int]]) -> tuple[bool, bool, float]:
    """(right image, Acc@0.5 on the right image, plain IoU whichever image) of one answer."""
    from mirg.core.answers import parse_answer
    from mirg.core.boxes import iou
    from mirg.core.judge import judge

    verdict = judge(parse_answer(text), item.target_image, item.target_box, profile, sizes, 2)
    plain = iou(verdict.box, item.target_box) if verdict.box is not None else 0.0
    return verdict.image_ok, verdict.iou >= 0.5, plain


def _decision(step_logits: list[Any], tokens: list[int], image_ids: dict[int, int]) -> dict:
    """Where the greedy answer decides the image: among its standalone image numbers, the
    position giving the other images the most probability (entropy in nats)."""
    import torch

    digit_ids = set(image_ids.values())
    best: dict | None = None
    for t, token in enumerate(tokens):
        if token not in digit_ids:
            continue
        before = tokens[t - 1] if t else None
        after = tokens[t + 1] if t + 1 < len(tokens) else None
        if before in DIGITS or after in DIGITS:
            continue  # part of a coordinate
        probs = torch.softmax(step_logits[t].float(), dim=-1)
        other = float(sum(probs[i] for i in digit_ids if i != token))
        if best is None or other > best["p_other"]:
            entropy = float(-(probs * torch.log(probs.clamp_min(1e-30))).sum())
            best = {"p_other": other, "entropy": entropy}
    return best or {"p_other": float("nan"), "entropy": float("nan")}


DIGITS: set[int] = set()


def probe(args: argparse.Namespace) -> dict:
    import torch

    from mirg.eval.generation import HFGenerator, Sampling, eval_messages, load_images
    from mirg.models.loading import generation_inputs, load_model_and_processor

    torch.set_num_threads(args.threads)
    world = binding_world(args.same_place)
    folder = Path(args.world_dir or f"runs/probe-world-{args.seed}-{world.same_place_look_alike}")
    items = fresh_binding_items(folder, args.items, args.seed, world)
    same = same_place_ids(folder / "train.jsonl")
    loaded = load_model_and_processor(args.model, dtype=torch.float32)
    model, processor, profile = loaded.model, loaded.processor, loaded.profile
    tok = processor.tokenizer
    DIGITS.update(tok.convert_tokens_to_ids(str(d)) for d in range(10))
    image_ids = {k: tok.convert_tokens_to_ids(str(k)) for k in (1, 2)}
    model.eval()

    per_item: list[dict] = []
    t0 = time.perf_counter()
    for start in range(0, len(items), args.batch):
        batch = items[start : start + args.batch]
        messages = [eval_messages(it.question, 2, "reasoning", profile) for it in batch]
        images = [load_images(it.images) for it in batch]
        sizes = [loaded.input_sizes(imgs) for imgs in images]
        inputs = generation_inputs(processor, messages, images).to(model.device)
        with torch.inference_mode():
            out = model.generate(
                **inputs,
                max_new_tokens=args.max_new_tokens,
                do_sample=False,
                output_logits=True,
                return_dict_in_generate=True,
                pad_token_id=tok.pad_token_id,
            )
        new = out.sequences[:, inputs["input_ids"].shape[1] :]
        stops = set(tok.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"]))
        for row, it in enumerate(batch):
            tokens = new[row].tolist()
            end = next((t for t, x in enumerate(tokens) if x in stops), len(tokens))
            text = tok.decode(tokens[:end])
            ok_image, ok_box, _ = _score(text, it, profile.name, sizes[row])
            logits = [out.logits[t][row] for t in range(end)]
            record = {
                "id": it.key,
                "same_place": it.key in same,
                "target_image": it.target_image,
                "greedy_image": ok_image,
                "greedy_acc": ok_box,
                **_decision(logits, tokens[:end], image_ids),
                "temperatures": {},
            }
            per_item.append(record)
        for temperature in args.temperatures:
            sampler = HFGenerator(
                model,
                processor,
                args.max_new_tokens,
                Sampling(n=args.samples, temperature=temperature, seed=args.sample_seed + start),
            )
            drawn = sampler.sample(messages, images)
            for row, answers in enumerate(drawn):
                scores = [_score(a.text, batch[row], profile.name, sizes[row]) for a in answers]
                per_item[start + row]["temperatures"][str(temperature)] = {
                    "p_image": sum(s[0] for s in scores) / len(scores),
                    "p_acc": sum(s[1] for s in scores) / len(scores),
                    "wrong_image_box_on_target": sum(not s[0] and s[2] >= 0.5 for s in scores)
                    / len(scores),
                }
        print(f"{min(start + args.batch, len(items))}/{len(items)} items, "
              f"{time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip
    return {
        "model": args.model,
        "world_seed": args.seed,
        "same_place_look_alike": world.same_place_look_alike,
        "items": len(items),
        "samples": args.samples,
        "max_new_tokens": args.max_new_tokens,
        "seconds": round(time.perf_counter() - t0),
        "summary": summarise(per_item, args.temperatures, args.samples),
        "per_item": per_item,
    }


def _mean(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return round(100 * statistics.mean(values), 1) if values else float("nan")


def summarise(per_item: list[dict], temperatures: list[float], g: int) -> dict:
    """The probe's figures (percentages), for all items and same/different place apart."""
    parts = {
        "all": per_item,
        "same_place": [r for r in per_item if r["same_place"]],
        "different_place": [r for r in per_item if not r["same_place"]],
    }
    out: dict[str, Any] = {}
    for name, rows in parts.items():
        if not rows:
            continue
        entry: dict[str, Any] = {
            "items": len(rows),
            "greedy_image_acc": _mean([r["greedy_image"] for r in rows]),
            "greedy_acc@0.5": _mean([r["greedy_acc"] for r in rows]),
            # a policy leaning to one image shows here, not in the mean
            "greedy_image_acc_by_target": {
                k: _mean([r["greedy_image"] for r in rows if r["target_image"] == k])
                for k in (1, 2)
            },
            "decision_entropy": round(_mean([r["entropy"] for r in rows]) / 100, 3),
            "decision_p_other": _mean([r["p_other"] for r in rows]),
        }
        wrong = [r for r in rows if not r["greedy_image"]]
        for t in map(str, temperatures):
            ps = [r["temperatures"][t]["p_image"] for r in rows]
            accs = [r["temperatures"][t]["p_acc"] for r in rows]
            entry[f"T={t}"] = {
                "mean_p_image": _mean(ps),
                "mean_p_acc@0.5": _mean(accs),
                "signal_image": _mean([0 < p < 1 for p in ps]),
                "signal_acc@0.5": _mean([0 < p < 1 for p in accs]),
                "useful_variance_image": round(
                    statistics.mean(p * (1 - p) * (g - 1) / g for p in ps), 3
                ),
                "greedy_wrong_sampled_right": (
                    f"{sum(r['temperatures'][t]['p_image'] > 0 for r in wrong)}/{len(wrong)}"
                ),
                "wrong_image_box_on_target": _mean(
                    [r["temperatures"][t]["wrong_image_box_on_target"] for r in rows]
                ),
            }  # fmt: skip
        out[name] = entry
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--temperatures", type=float, nargs="+", default=[1.0])
    parser.add_argument("--items", type=int, default=120)
    parser.add_argument("--samples", type=int, default=8, help="answers per item and temperature")
    parser.add_argument("--max-new-tokens", type=int, default=104, help="the demo's answer limit")
    parser.add_argument("--seed", type=int, default=FRESH_SEED, help="world seed of the items")
    parser.add_argument("--same-place", type=float, help="share of same-place look-alikes")
    parser.add_argument("--world-dir", help="where the fresh world is written (reused)")
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=8, help="items per generate call")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="write the figures and per-item rates here (JSON)")
    args = parser.parse_args()
    result = probe(args)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result["summary"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
