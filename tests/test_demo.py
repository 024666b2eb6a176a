"""mirg demo --quick: every stage runs, the contract files are written."""

import json

from mirg.cli import main


def test_demo_quick_writes_summary_and_report(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    names = {"acc@0.3", "acc@0.5", "acc@0.7", "miou", "image_acc"}
    for stage in ("base", "sft", "grpo", "chance"):
        assert names <= set(summary[stage]), stage
        assert all(0 <= summary[stage][k] <= 100 for k in names - {"miou"})
    # chance is exact for images: single-image items 1, two-image items 1/2
    assert 50.0 <= summary["chance"]["image_acc"] <= 100.0
    assert summary["curves"]["sft"] and any("reward" in k for k in summary["curves"]["grpo"])
    assert {"object", "image", "format"} <= {
        part
        for k in summary["curves"]["grpo"]
        for part in ("object", "image", "format")
        if part in k
    }
    html = (out / "report.html").read_text()
    assert "chance" in html and html.count('class="card ') == summary["test_items"]
    for stage in ("base", "sft", "grpo"):
        assert (out / f"eval-{stage}" / "metrics.json").is_file()
