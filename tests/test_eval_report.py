"""report.html: built from an eval folder, rendered by a real browser (headless Chromium)."""

import json
import re
import shutil
import subprocess

import pytest

from mirg.cli import main
from mirg.core.profiles import get_profile
from mirg.eval.benchmarks import load_eval_items
from mirg.eval.benchmarks.migbench import published_results
from mirg.eval.run import score_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture(scope="module")
def eval_dir(synth_dir, tmp_path_factory):
    """An eval folder whose predictions hit every other item (on the right image)."""
    out = tmp_path_factory.mktemp("report")
    data = synth_dir / "test.jsonl"
    items = load_eval_items(data)
    profile = get_profile("qwen3-vl")
    config = {"model": "tiny", "data": str(data), "images": None, "tasks": None, "limit": None,
              "prompt": "reasoning"}  # fmt: skip
    (out / "run.json").write_text(
        json.dumps({"identity": {}, "config": config, "profile_used": "qwen3-vl"})
    )
    with (out / "predictions.jsonl").open("w") as fh:
        for i, it in enumerate(items):
            k = it.target_image or 1
            if i % 2:  # a miss: the right box on another image
                k = k % len(it.images) + 1 if len(it.images) > 1 else k
                box = (0.0, 0.0, 0.05, 0.05) if len(it.images) == 1 else it.target_box
            else:
                box = it.target_box
            answer = profile.render_answer(k, box)
            response = f"<think>Image-{k} holds it.</think><answer>{answer}</answer>"
            fh.write(json.dumps({"id": it.key, "response": response}) + "\n")
    score_run(out, items, "strict", "qwen3-vl")
    assert main(["report", str(out)]) == 0
    return out, items


def test_published_table_is_the_projects_own_copy_with_sources():
    rows = published_results()
    assert {r["model"] for r in rows} >= {"Migician", "Qwen2-VL-7B", "UniVG-R1"}
    assert all(r["source"] for r in rows)
    migician = next(r for r in rows if r["model"] == "Migician")
    assert float(migician["avg"]) == pytest.approx(63.54)


def test_report_html_holds_table_charts_and_gallery(eval_dir):
    out, items = eval_dir
    html = (out / "report.html").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    assert html.count('class="card ') == len(items)
    assert html.count('class="box gt"') >= len(items)
    assert html.count("<svg") >= 2  # bar chart and IoU histogram
    assert "Beside published results" not in html  # synthetic data: no literature comparison
    for task in metrics["tasks"]:
        assert f"<td>{task}</td>" in html
    assert "data:image/jpeg;base64," in html and "http" not in html.split("<body>")[1]


def chromium(*args, timeout=90):
    return subprocess.run(
        [CHROMIUM, *FLAGS, *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (apt-get install chromium)"
)
def test_report_renders_in_headless_chromium(eval_dir, tmp_path):
    out, items = eval_dir
    page = (out / "report.html").as_uri()
    dom = chromium(
        f"--user-data-dir={tmp_path / 'p1'}", "--virtual-time-budget=3000", "--dump-dom", page
    ).stdout
    rows = re.findall(r'<table class="metrics">(.*?)</table>', dom, re.S)[0].count("<tr")
    assert rows == 1 + len({it.task for it in items}) + 1  # header, tasks, average
    assert len(re.findall(r'<div class="card (hit|miss)"', dom)) == len(items)
    assert f'id="f-count">{len(items)}<' in dom
    # the filter runs in the browser: only misses are displayed
    dom = chromium(
        f"--user-data-dir={tmp_path / 'p2'}",
        "--virtual-time-budget=3000",
        "--dump-dom",
        page + "#hit=miss",
    ).stdout
    hits = re.findall(r'<div class="card hit"[^>]*>', dom)
    misses = re.findall(r'<div class="card miss"[^>]*>', dom)
    assert hits and misses and len(hits) + len(misses) == len(items)
    assert all("display: none" in tag for tag in hits)
    assert not any("display: none" in tag for tag in misses)
    assert f'id="f-count">{len(misses)}<' in dom
    shot = out / "report.png"
    chromium(
        f"--user-data-dir={tmp_path / 'p3'}",
        "--window-size=1200,1600",
        f"--screenshot={shot}",
        page,
    )
    assert shot.is_file() and shot.stat().st_size > 10_000
