"""The prepared GPU check runs every stage in its dry run (CPU, tiny models), so the check
that will meet a GPU once has run end to end before."""

import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_gpu_check_dry_run_runs_every_stage(tmp_path):
    out = tmp_path / "check"
    done = subprocess.run(
        ["bash", "scripts/gpu_check.sh", "--dry-run", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = {
        r["stage"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())
    }
    assert list(results) == ["env", "placement", "sft-qwen2.5-vl-3b", "sft-qwen3-vl-4b",
                             "grpo-hf", "grpo-vllm", "lora-grpo", "eval"]  # fmt: skip
    assert all(r["status"] == "ok" for s, r in results.items() if s != "grpo-vllm")
    assert results["grpo-vllm"]["status"] == "skipped" and results["grpo-vllm"]["skipped"]
    for stage in ("sft-qwen2.5-vl-3b", "sft-qwen3-vl-4b"):
        # bf16 autocast over fp32 master weights: every trainable weight moves
        assert results[stage]["share_of_trainable_weights_changed"] > 0.95
        assert results[stage]["trainable_dtype"] == "float32" and results[stage]["bf16"]
    grpo = results["grpo-hf"]
    # two optimizer steps per rollout: every other step generates, none generates twice
    assert grpo["num_iterations"] == 2
    assert 0 < grpo["generation_seconds_per_step"] < grpo["step_seconds_mean"]
    assert len(set(grpo["reward_mean_per_step"])) > 1  # the varying reward reached TRL
    assert (
        results["lora-grpo"]["adapter_saved"]
        and not results["lora-grpo"]["merged_has_lora_weights"]
    )
    a, n = results["eval"]["batched_vs_single_agree"].split("/")
    assert int(a) == int(n) == 8 and results["eval"]["device_recorded"] == "cpu"
    assert results["placement"]["device_auto"] == ["cpu"]
    # the table comes last, one line per stage
    assert all(stage in done.stdout for stage in results)
