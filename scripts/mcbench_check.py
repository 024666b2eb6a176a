"""MC-Bench's ``official`` protocol against the published script, on random files.

mirg's ``official`` protocol claims MC-Bench's ``eval_mc_bench.py`` to the last bit, its
regrouping defects included (docs/evaluation.md). The tests pin handmade files; this checks
random ones that stress the regrouping: several groups per sample, groups swapped per
sample, shuffled annotations, images not listed pair by pair, categories out of order,
crowds, score ties, 120 boxes on one image, stray groups. Per-style rows are checked against
the script run on each style's sub-file.

The script is not part of mirg: clone MC-Bench (github.com/XuYunqiu/MC-Bench) and give a
Python that has its dependencies (numpy, scipy, pycocotools)::

    python3 -m venv /tmp/mcref && /tmp/mcref/bin/pip install numpy scipy pycocotools
    .venv/bin/python scripts/mcbench_check.py --script MC-Bench/eval_mc_bench.py \\
        --python /tmp/mcref/bin/python [--n 300] [--samples 2-14]

It prints how many files matched, how many the script could not score (no "group 2"
target: it raises, and mirg notes that it did no regrouping) and which differ; exit 1 if
any differ.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

STYLES = ("Referring", "Comparison", "Reasoning")

# Run by --python beside the script: each folder's (AP50, accuracy), or the error's name.
DRIVER = """
import contextlib, io, json, sys
sys.path.insert(0, sys.argv[1])
from eval_mc_bench import mcbench_eval
out = {}
for d in sys.argv[2:]:
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            ap, acc = mcbench_eval(d + "/gt.json", d + "/dt.json", "all")
        out[d] = [float(ap), float(acc)]
    except Exception as e:
        out[d] = type(e).__name__
print(json.dumps(out))
"""


def random_file(seed: int, samples: tuple[int, int], out: Path) -> None:
    """One MC-Bench annotation file (gt.json) and one results file (dt.json)."""
    rng = random.Random(seed)
    n_samples = rng.randint(*samples)
    n_groups = rng.choice([2, 2, 3, 4])
    cats = list(range(1, n_groups + 1))
    if rng.random() < 0.3:
        rng.shuffle(cats)  # categories listed out of order
    ids = rng.sample(range(1, 20 * n_samples + 6000), 2 * n_samples)
    images, descriptions, anns = [], [], []
    for k in range(n_samples):
        a, b = ids[2 * k], ids[2 * k + 1]
        for i, pair in ((a, b), (b, a)):
            images.append({"id": i, "file_name": f"{i}.png", "width": 200, "height": 150,
                           "pair_image_id": pair})  # fmt: skip
        kind = rng.random()
        groups = range(1, n_groups + 1)
        used = (
            []
            if kind < 0.15
            else [1]
            if kind < 0.45
            else rng.sample(groups, rng.randint(2, n_groups))
        )
        for g in used:
            for _ in range(rng.randint(1, 3)):
                x, y, w, h = (
                    rng.uniform(0, 150),
                    rng.uniform(0, 110),
                    rng.uniform(5, 60),
                    rng.uniform(5, 50),
                )
                anns.append({"image_id": rng.choice([a, b]), "category_id": g, "bbox": [x, y, w, h],
                             "area": w * h, "iscrowd": int(rng.random() < 0.05)})  # fmt: skip
        descriptions.append({"id": k + 1, "images_id": [a, b], "text": f"t{k}",
                             "text_style": rng.choice(STYLES),
                             "positive_sample": bool(used)})  # fmt: skip
    if rng.random() < 0.5:
        rng.shuffle(anns)
    if rng.random() < 0.2:
        rng.shuffle(images)  # not listed pair by pair
    for n, ann in enumerate(anns, 1):
        ann["id"] = n
    categories = [{"id": c, "name": f"group {c}"} for c in cats]
    dets = []
    for ann in anns:  # near the targets, most of them
        if rng.random() < 0.8:
            x, y, w, h = (v + rng.uniform(-6, 6) for v in ann["bbox"])
            dets.append({"image_id": ann["image_id"], "category_id": ann["category_id"],
                         "bbox": [x, y, max(1, w), max(1, h)],
                         "score": rng.choice([1.0, 0.5, rng.random()])})  # fmt: skip
    for d in descriptions:  # groups swapped on half the samples
        if rng.random() < 0.5:
            perm = list(range(1, n_groups + 1))
            rng.shuffle(perm)
            for det in dets:
                if det["image_id"] in d["images_id"]:
                    det["category_id"] = perm[det["category_id"] - 1]
    for _ in range(rng.randint(0, 3 * n_samples)):  # noise, some in groups the file lacks
        box = [rng.uniform(0, 180), rng.uniform(0, 130), rng.uniform(0, 40), rng.uniform(0, 40)]
        dets.append({"image_id": rng.choice(ids), "category_id": rng.choice([1, 1, 2, 3, 5]),
                     "bbox": box, "score": rng.choice([1.0, rng.random()])})  # fmt: skip
    if rng.random() < 0.1:
        img = rng.choice(ids)
        dets += [{"image_id": img, "category_id": 1, "bbox": [rng.uniform(0, 150), 10, 20, 20],
                  "score": rng.random()} for _ in range(120)]  # fmt: skip
    rng.shuffle(dets)
    dets = dets or [{"image_id": ids[0], "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.3}]
    out.mkdir(parents=True)
    gt = {"images": images, "annotations": anns, "descriptions": descriptions,
          "categories": categories}  # fmt: skip
    (out / "gt.json").write_text(json.dumps(gt))
    (out / "dt.json").write_text(json.dumps(dets))


def style_file(folder: Path, style: str, out: Path) -> bool:
    """The style's descriptions, their images and annotations in file order (False: none)."""
    gt = json.loads((folder / "gt.json").read_text())
    dets = json.loads((folder / "dt.json").read_text())
    kept = [d for d in gt["descriptions"] if d["text_style"] == style]
    images = {i for d in kept for i in d["images_id"]}
    dets = [d for d in dets if d["image_id"] in images]
    if not kept or not dets:
        return False
    sub = gt | {
        "descriptions": kept,
        "images": [i for i in gt["images"] if i["id"] in images],
        "annotations": [a for a in gt["annotations"] if a["image_id"] in images],
    }
    out.mkdir(parents=True)
    (out / "gt.json").write_text(json.dumps(sub))
    (out / "dt.json").write_text(json.dumps(dets))
    return True


def _official(folder: Path) -> dict | None:
    """mirg's MC-Bench metrics of a folder's files; None where the script cannot score it."""
    from mirg.core import mcbench

    samples = mcbench.load_mcbench(folder / "gt.json")
    metrics = mcbench.metrics(samples, mcbench.read_results(folder / "dt.json", samples))
    return None if metrics["official_note"] else metrics


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--script", required=True, type=Path, help="MC-Bench's eval_mc_bench.py")
    parser.add_argument("--python", required=True, help="a Python with numpy, scipy, pycocotools")
    parser.add_argument("--n", type=int, default=300, help="random files")
    parser.add_argument("--samples", default="2-14", help="descriptions per file, MIN-MAX")
    args = parser.parse_args()
    low, _, high = args.samples.partition("-")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        mirg: dict[str, list[float] | None] = {}  # official AP50, accuracy in %; None: noted
        for seed in range(args.n):
            folder = root / str(seed)
            random_file(seed, (int(low), int(high or low)), folder)
            metrics = _official(folder)
            mirg[str(folder)] = metrics and [metrics["overall"][k] for k in ("ap50", "accuracy")]
            for style in STYLES:  # the script on a style's sub-file, as the rows claim
                sub = root / f"{seed}-{style}"
                if style_file(folder, style, sub):
                    alone = _official(sub)
                    mirg[str(sub)] = alone and [alone["overall"][k] for k in ("ap50", "accuracy")]
                    row = metrics and metrics["tasks"][style]
                    if alone and row and [row["ap50"], row["accuracy"]] != mirg[str(sub)]:
                        mirg[str(sub)] = [row["ap50"], row["accuracy"]]  # row and sub-file differ
        folders = list(mirg)
        done = subprocess.run(
            [args.python, "-c", DRIVER, str(args.script.resolve().parent), *folders],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        script = json.loads(done.stdout)
    tally = {kind: [0, 0] for kind in ("files", "sub-files")}  # equal, the script raised
    differ = []
    for folder in folders:
        theirs, ours = script[folder], mirg[folder]
        counts = tally["sub-files" if "-" in Path(folder).name else "files"]
        if isinstance(theirs, str) and ours is None:  # the script raised; mirg noted it
            counts[1] += 1
        elif not isinstance(theirs, str) and ours == [100 * v for v in theirs]:
            counts[0] += 1
        else:
            differ.append((folder, theirs, ours))
    for kind, (same, raised) in tally.items():
        print(f"{same + raised} random {kind} ({args.samples} descriptions per file): {same} "
              f"equal to the script to the last bit, {raised} the script cannot score (no "
              "'group 2' target: it raises; mirg notes that it did no regrouping)")  # fmt: skip
    print(f"{len(differ)} differ")
    for folder, theirs, ours in differ[:10]:
        print(f"  {Path(folder).name}: script {theirs}, mirg {ours}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
