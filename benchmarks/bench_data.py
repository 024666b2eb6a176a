"""Data benchmarks: synthetic samples written to disk per second, trajectories per second,
and the readers of published data (records converted per second, no image decoded).

Goals: >= 100 synthetic samples/s written to disk and >= 5,000 trajectories/s from
in-memory annotations (issue 3); every reader >= 5,000 source records/s without image
decoding (issue 14), so converting is never the bottleneck. All on one core: the process
pins itself to one CPU where the OS allows it.

    .venv/bin/python benchmarks/bench_data.py [--n 1000] [--trajectories 5000]
        [--records 20000] [--only readers]

Reader inputs are generated in the published layouts (as the fixtures in ``tests/fixtures``
are) with no image files: images are neither opened nor checked (``--check-images none``),
sizes come from the source where it has them. Each figure counts everything ``mirg convert``
does: reading and parsing the source, building and validating every sample, and writing the
samples JSONL.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from mirg.data.exports import Exporter
from mirg.data.readers.captions import caption_samples, read_captions
from mirg.data.readers.conversations import read_conversations
from mirg.data.readers.mgrounding import read_mgrounding
from mirg.data.readers.records import ImageFiles, Tally
from mirg.data.readers.refcoco import RefCoco, read_refs, refcoco_samples
from mirg.data.schema import write_jsonl, write_samples
from mirg.data.synth import DEFAULT_FAMILIES, PRESETS, generate_sample, write_dataset
from mirg.data.trajectories import build_trajectory


def bench_synth(n: int, preset: str) -> float:
    """Samples per second of ``write_dataset`` (rendering, PNG encoding, JSONL, manifest)."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        write_dataset(out, n, 0, PRESETS[preset], preset=preset)
        return n / (time.perf_counter() - start)


def bench_trajectories(n: int, profile: str) -> tuple[float, float]:
    """Trajectories per second from samples already in memory, and SFT records per second
    (trajectory plus prompt messages and reward columns, no file writing)."""
    config, families = PRESETS["default"], DEFAULT_FAMILIES
    samples = [
        generate_sample(config, families[i % len(families)], 0, "train", i)[0] for i in range(n)
    ]
    exporter = Exporter(profile, root=".")
    sizes = [exporter.frames(s) for s in samples]
    start = time.perf_counter()
    for s, f in zip(samples, sizes, strict=True):
        build_trajectory(s, profile, frames=f)
    trajectories = n / (time.perf_counter() - start)
    start = time.perf_counter()
    for s in samples:
        exporter.sft(s)
    records = n / (time.perf_counter() - start)
    return trajectories, records


def _human(n: int, text: str) -> dict:
    return {"from": "human", "value": "<image>\n" * n + text}


def _gpt(text: str) -> dict:
    return {"from": "gpt", "value": text}


def mgrounding_records(n: int) -> list[dict]:
    """MGrounding-630k records in its layout, the subsets in turn (two turns for group
    grounding, as in the README's example)."""
    out = []
    for i in range(n):
        k = 2 + i % 3
        x = 100 + i % 500
        images = [f"./MGrounding-630k/Group_Grounding/SA-1B/sa_{i * 7 + j}.jpg" for j in range(k)]
        box = f"<|box_start|>({x},58),({x + 300},999)<|box_end|>"
        if i % 3 == 0:
            convs = [
                _human(k, "Give the bounding box of the region this sentence refers to: "
                       "<|object_ref_start|>a statue of a man<|object_ref_end|>."),
                _gpt(f"It's in the second image. {box}"),
                {"from": "human", "value": "Recognize the target region that this sentence "
                 "refers to: <|object_ref_start|>a woman in orange<|object_ref_end|>."},
                _gpt(f"It's in the first image. {box}"),
            ]  # fmt: skip
            kind = "gg_train"
        elif i % 3 == 1:
            convs = [
                _human(k, "These images share one object in common. Recognize and locate "
                       "this object in the 2th image."),
                _gpt(box),
            ]  # fmt: skip
            kind = "common_train"
        else:
            convs = [
                _human(k, "You are given a source image followed by its several regions. "
                       "Please locate the 1th region picture in the source image."),
                _gpt(box),
            ]  # fmt: skip
            kind = "region_train"
        out.append({"id": f"{i}_{i + 1}", "images": images, "conversations": convs, "type": kind})
    return out


def llava_records(n: int) -> list[dict]:
    """VLM-R1 GRPO records: one image, the box in pixels of the image, its size given (as
    VLM-R1's REC json gives width and height)."""
    question = "Please provide the bounding box coordinate of the region this sentence describes: "
    return [
        {
            "id": i,
            "image": f"train2014/COCO_train2014_{i:012d}.jpg",
            "width": 640,
            "height": 480,
            "conversations": [
                _human(1, question + "the lady with the blue shirt."),
                _gpt(f"[{10 + i % 300}.5, 42.25, {400 + i % 200}.75, 470.0]"),
            ],
        }
        for i in range(n)
    ]


def refcoco_files(folder: Path, n_refs: int) -> tuple[Path, Path]:
    """A RefCOCO-like instances file (about 6 refs per image, 8 objects per image, people
    in half the images, 80 categories in 12 supercategories) and ``n_refs`` refs of two
    sentences each: one names its category, one does not."""
    n_images = max(10, n_refs // 6)
    cats = [{"id": c + 1, "name": f"thing{c}", "supercategory": f"g{c % 12}"} for c in range(80)]
    cats[0]["name"], cats[0]["supercategory"] = "person", "person"
    images, anns, refs = [], [], []
    for i in range(n_images):
        images.append({"id": i + 1, "file_name": f"COCO_train2014_{i + 1:012d}.jpg",
                       "width": 640, "height": 480})  # fmt: skip
        for j in range(8):
            cat = 1 if j < 3 and i % 2 else 2 + (i * 7 + j * 13) % 79
            x, y = 20 + 70 * j, 30 + (i + j) % 200
            anns.append({"id": i * 8 + j + 1, "image_id": i + 1, "category_id": cat,
                         "bbox": [x, y, 60.0, 120.0], "area": 7200.0, "iscrowd": 0})  # fmt: skip
    for r in range(n_refs):
        i, j = r % n_images, r % 8
        cat = 1 if j < 3 and i % 2 else 2 + (i * 7 + j * 13) % 79
        name = "man" if cat == 1 else f"thing{cat - 1}"
        sentences = [{"sent": f"{name} on the left"}, {"sent": "the one in front"}]
        refs.append({"ref_id": r, "ann_id": i * 8 + j + 1, "image_id": i + 1,
                     "category_id": cat, "split": "train", "sentences": sentences})  # fmt: skip
    instances, refs_path = folder / "instances.json", folder / "refs.json"
    instances.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    refs_path.write_text(json.dumps(refs))
    return instances, refs_path


def bench_readers(n: int, repeats: int = 3) -> dict[str, list[float]]:
    """Source records per second of each reader, end to end (read, build, check, write the
    samples JSONL), ``repeats`` times: by wall clock and by the process's CPU time (the
    second is what the work costs when other jobs share the core)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        out = folder / "out.jsonl"
        mgrounding = folder / "MGrounding-630k.json"
        mgrounding.write_text(json.dumps(mgrounding_records(n), indent=4))
        llava = folder / "rec.jsonl"
        llava.write_text("".join(json.dumps(r) + "\n" for r in llava_records(n)))
        instances, refs_path = refcoco_files(folder, n // 2)
        captions = folder / "captions.json"
        images = [{"id": i + 1, "file_name": f"COCO_train2014_{i + 1:012d}.jpg"} for i in range(n)]
        anns = [{"id": i, "image_id": i // 5 + 1, "caption": f"A man riding horse {i}."}
                for i in range(5 * n)]  # fmt: skip
        captions.write_text(json.dumps({"images": images, "annotations": anns}))

        def run_mgrounding() -> int:
            tally = Tally(unit="turns")
            write_samples(out, read_mgrounding(mgrounding, images=ImageFiles(folder), tally=tally))
            return tally.records

        def run_llava() -> int:
            tally = Tally(unit="turns")
            files = ImageFiles(folder)
            write_samples(
                out, read_conversations(llava, profile="pixels", images=files, tally=tally)
            )
            return tally.records

        def run_refcoco() -> int:
            tally = Tally(unit="expressions")
            dataset = RefCoco(instances, folder)  # loading the instances counts
            refs = read_refs(refs_path, tally)
            write_samples(out, refcoco_samples(dataset, refs, tally))
            return tally.items

        def run_captions() -> int:
            tally = Tally(unit="samples")
            joined = caption_samples(out, read_captions(captions), tally)
            write_jsonl(folder / "captioned.jsonl", joined, compact=True)
            return tally.records

        results: dict[str, list[float]] = {}
        for name, run in (
            ("mgrounding_records", run_mgrounding),
            ("llava_records", run_llava),
            ("refcoco_expressions", run_refcoco),
            ("coco_captions_samples", run_captions),
        ):
            for _ in range(repeats):
                wall, cpu = time.perf_counter(), time.process_time()
                count = run()
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                results.setdefault(f"{name}_per_s", []).append(count / wall)
                results.setdefault(f"{name}_per_cpu_s", []).append(count / cpu)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="synthetic samples per preset")
    parser.add_argument("--trajectories", type=int, default=5000)
    parser.add_argument("--records", type=int, default=20000, help="source records per reader")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each reader")
    parser.add_argument("--only", choices=["readers"], help="run only the reader benchmarks")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"}
    for key, values in bench_readers(args.records, args.repeats).items():
        values = sorted(values)  # min / median / max
        results[key] = [round(values[0]), round(values[len(values) // 2]), round(values[-1])]
    if args.only == "readers":
        for key, value in results.items():
            print(f"{key:40s} {value}")
        print(json.dumps(results))
        return
    for preset in ("default", "starter", "hard"):
        results[f"synth_{preset}_samples_per_s"] = round(bench_synth(args.n, preset), 1)
    for profile in ("qwen2.5-vl", "qwen3-vl"):
        traj, rec = bench_trajectories(args.trajectories, profile)
        results[f"trajectories_{profile}_per_s"] = round(traj)
        results[f"sft_records_{profile}_per_s"] = round(rec)
    for key, value in results.items():
        print(f"{key:40s} {value}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
