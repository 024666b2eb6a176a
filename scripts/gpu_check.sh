#!/usr/bin/env bash
# The prepared GPU check: the GPU path a researcher takes, end to end, in one command.
#
#   bash scripts/gpu_check.sh [--dry-run] [--out DIR]
#
# On one GPU, in at most about 8 minutes, with no internet, on random-init stand-ins at real
# dimensions (benchmarks/stand-ins/): bf16 mixed-precision SFT steps of a Qwen2.5-VL-3B and
# a Qwen3-VL-4B stand-in (step time, peak memory, share of trainable weights that changed),
# GRPO steps with transformers generation and, where vLLM imports, with vLLM colocate (step
# time split into generation and the rest), LoRA GRPO merged and reloaded, batched
# `mirg eval` on the GPU (items/s, batched vs one-at-a-time agreement), and `--device`
# placement. Each stage runs in its own process under its own time limit; its result is
# appended to DIR/results.jsonl (a stage that fails or runs out of time says so); the
# table comes last. --dry-run runs every stage on the CPU with tiny models (the test suite
# runs it).
#
# Packages the GPU machine lacks travel with the check as wheels: `bash scripts/gpu_wheels.sh`
# puts them in ./wheels; they are installed (no index, into a folder of their own on the
# PYTHONPATH) before the stages run.
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=""
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY="--dry-run" ;;
    --out) OUT="$2"; shift ;;
    *) echo "usage: bash scripts/gpu_check.sh [--dry-run] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
OUT=${OUT:-runs/gpu-check}
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
mkdir -p "$OUT"
rm -f "$OUT/results.jsonl"

SITE=""
if [ -d wheels ] && [ -z "$DRY" ]; then
  SITE=/tmp/gpu-check-site
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" wheels/*.whl \
    || echo "gpu_check: installing ./wheels failed; the stages that need them will say so" >&2
fi
export PYTHONPATH="$PWD/src${SITE:+:$SITE}${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false

# stage and its time limit (seconds); the GPU budget is about 8 minutes in all
STAGES="env:60 placement:90 sft-qwen2.5-vl-3b:150 sft-qwen3-vl-4b:150 grpo-hf:120 grpo-vllm:150 lora-grpo:120 eval:90"
[ -n "$DRY" ] && STAGES=$(echo "$STAGES" | sed 's/:[0-9]*/:600/g')

failed=0
for entry in $STAGES; do
  stage=${entry%%:*}
  limit=${entry##*:}
  echo "== $stage (limit ${limit} s)" >&2
  timeout --kill-after=10 "$limit" "$PY" scripts/gpu_check.py "$stage" --out "$OUT" $DRY \
    > "$OUT/$stage.log" 2>&1
  code=$?
  if [ $code -eq 124 ] || [ $code -eq 137 ]; then
    "$PY" scripts/gpu_check.py record --out "$OUT" --for-stage "$stage" \
      --reason "ran out of its ${limit} s limit (log: $OUT/$stage.log)"
    failed=1
  elif [ $code -ne 0 ]; then
    grep -q "\"stage\": \"$stage\"" "$OUT/results.jsonl" 2>/dev/null \
      || "$PY" scripts/gpu_check.py record --out "$OUT" --for-stage "$stage" \
        --reason "exit $code before writing a result (log: $OUT/$stage.log)"
    failed=1
  fi
done

"$PY" scripts/gpu_check.py table --out "$OUT"
echo "results: $OUT/results.jsonl; logs: $OUT/<stage>.log" >&2
exit $failed
