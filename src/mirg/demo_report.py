"""The demo's report: every stage beside chance, training curves, the final gallery."""

from __future__ import annotations

import json
from pathlib import Path

from mirg.eval import report
from mirg.eval.report import esc, evaluation_sections, item_views, page, svg_bars, svg_lines

KEYS = ("acc@0.3", "acc@0.5", "acc@0.7", "miou", "image_acc")


def stage_table(summary: dict) -> str:
    head = "<tr><th>stage</th><th>Acc@0.3</th><th>Acc@0.5</th><th>Acc@0.7</th><th>mIoU</th><th>image accuracy</th></tr>"
    rows = []
    for stage in ("base", "sft", "grpo", "chance"):
        r = summary[stage]
        cells = "".join(f"<td>{r[k]:.{3 if k == 'miou' else 1}f}</td>" for k in KEYS)
        rows.append(
            f'<tr class="{"avg" if stage == "chance" else ""}"><td>{esc(stage)}</td>{cells}</tr>'
        )
    return f'<table class="metrics stages">{head}{"".join(rows)}</table>'


def verdict(summary: dict) -> str:
    """Plain sentences: how far above chance the final model is, and whether GRPO helped."""
    final, chance, sft = summary["grpo"], summary["chance"], summary["sft"]
    box_gap = final["acc@0.5"] - chance["acc@0.5"]
    image_gap = final["image_acc"] - chance["image_acc"]
    grpo_gain = final["acc@0.5"] - sft["acc@0.5"]
    lines = [
        f"Final strict Acc@0.5 {final['acc@0.5']:.1f}% against chance {chance['acc@0.5']:.1f}% "
        f"({box_gap:+.1f} points); image accuracy {final['image_acc']:.1f}% against chance "
        f"{chance['image_acc']:.1f}% ({image_gap:+.1f} points). GRPO over SFT: {grpo_gain:+.1f} points of Acc@0.5.",
    ]
    per_task = []
    for task, row in final["tasks"].items():
        c = chance["tasks"].get(task, {})
        text = f"{esc(task)}: Acc@0.5 {row['acc@0.5']:.1f}% (chance {c.get('acc@0.5', 0.0):.1f}%)"
        if "image_acc" in row and c.get("image_acc", 100.0) < 100.0:
            text += f", image {row['image_acc']:.1f}% (chance {c['image_acc']:.1f}%)"
        per_task.append(text)
    lines.append("Per task after GRPO: " + "; ".join(per_task) + ".")
    binding = final["tasks"].get("group_grounding", {})
    binding_chance = chance["tasks"].get("group_grounding", {}).get("image_acc")
    if "image_acc" in binding and binding_chance is not None:
        gap = binding["image_acc"] - binding_chance
        image_gap = min(image_gap, gap)
        lines.append(
            f"Only group_grounding asks the model to choose the image itself: there it named the "
            f"right image {binding['image_acc']:.1f}% of the time against {binding_chance:.1f}% "
            f"by chance ({gap:+.1f} points). In the other families the question names the image "
            "or there is one image, so their image accuracy measures reading the question."
        )
    if "group_grounding" not in summary.get("world", {}).get("families", ["group_grounding"]):
        lines.append(
            "No family in this world asks the model to choose the image itself (each question "
            "names the image to answer in, or there is one image), so image accuracy here "
            "measures reading the question, not a visual choice."
        )
    if image_gap < 20 or box_gap < 20:
        lines.append(
            "A tiny model trained for minutes on a CPU is not a pretrained VLM: where a figure "
            "sits near chance, the skill was not learned at this scale (docs/demo.md lists what "
            "was tried). Multi-image gains need a pretrained model (mirg demo --model PATH, on a "
            "GPU)."
        )
    return "".join(f"<p>{line}</p>" for line in lines)


def _binding_section(summary: dict) -> list[tuple[str, str]]:
    """Image accuracy on group_grounding alone: the one family where the model must choose
    the image (the average above also counts questions that name it)."""
    chance = summary["chance"]["tasks"].get("group_grounding", {}).get("image_acc")
    rows = {s: summary[s]["tasks"].get("group_grounding", {}) for s in ("base", "sft", "grpo")}
    if chance is None or not all("image_acc" in r for r in rows.values()):
        return []
    values = {s: r["image_acc"] for s, r in rows.items()}
    return [
        (
            "Image accuracy where the model must choose the image: group_grounding (dashed: chance)",
            svg_bars(values, reference=dict.fromkeys(values, chance)),
        )
    ]


def _unseen_section(summary: dict) -> list[tuple[str, str]]:
    """The stages on the test items whose layout (question and objects) never occurs in
    training: what is left when recall of seen layouts is taken out."""
    n = summary.get("test_items_unseen_layout", 0)
    if not n:
        return []
    head = "<tr><th>stage</th><th>items</th><th>Acc@0.5</th><th>image accuracy</th><th>image accuracy, group_grounding</th></tr>"
    rows = []
    for stage in ("base", "sft", "grpo"):
        r = summary[stage]["unseen_layouts"]
        binding = r.get("tasks", {}).get("group_grounding", {})
        cell = f"{binding['image_acc']:.1f} ({binding['n']} items)" if binding else "–"
        rows.append(
            f"<tr><td>{stage}</td><td>{r['n']}</td><td>{r['acc@0.5']:.1f}</td>"
            f"<td>{r['image_acc']:.1f}</td><td>{cell}</td></tr>"
        )
    note = (
        f"<p>{n} of {summary['test_items']} test items have a question and object layout that "
        "no training sample has; the rest repeat one.</p>"
    )
    return [
        (
            "Test items with layouts never seen in training",
            note + f'<table class="metrics">{head}{"".join(rows)}</table>',
        )
    ]


def write_demo_report(out: str | Path, summary: dict) -> Path:
    out = Path(out)
    run, items, metrics, predictions = report.read_run(out / "eval-grpo")
    views = item_views(items, predictions, "strict", run["profile_used"])
    chance = {"tasks": summary["chance"]["tasks"], "average": summary["chance"]}
    curves = summary["curves"]

    def per_stage(key: str) -> str:
        values = {s: summary[s][key] for s in ("base", "sft", "grpo")}
        return svg_bars(values, reference=dict.fromkeys(values, summary["chance"][key]))

    sections = [
        ("Summary", verdict(summary) + stage_table(summary)),
        ("Strict Acc@0.5 per stage (dashed: chance)", per_stage("acc@0.5")),
        ("Image accuracy per stage, all families (dashed: chance)", per_stage("image_acc")),
        *_binding_section(summary),
        *_unseen_section(summary),
        ("SFT training loss", svg_lines({k: v for k, v in curves["sft"].items() if k == "loss"})),
        (
            "GRPO rewards per component",
            svg_lines(
                {
                    k: v
                    for k, v in curves["grpo"].items()
                    if k.startswith("rewards/") or k == "reward"
                }
            ),
        ),
        *evaluation_sections(metrics, views, chance=chance),
        (
            "Run",
            f"<pre>{esc(json.dumps({k: summary[k] for k in ('model', 'profile', 'test_items', 'test_items_unseen_layout', 'plan', 'world', 'seconds')}, indent=2))}</pre>",
        ),
    ]
    path = out / "report.html"
    path.write_text(
        page("mirg demo: SFT then image-aware GRPO on the synthetic world", sections),
        encoding="utf-8",
    )
    return path
