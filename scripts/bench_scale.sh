#!/usr/bin/env bash
# Tiny-model SFT throughput on CPU: one process vs two (DDP over gloo, and DeepSpeed
# ZeRO-2/3 when $DS_PYTHON has deepspeed). Numbers in docs/benchmarks.md (Scale-out).
#   scripts/bench_scale.sh [OUT] [STEPS]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-runs/bench_scale}"
STEPS="${2:-40}"
PY="${PYTHON:-$REPO/.venv/bin/python}"
DS_PY="${DS_PYTHON:-}"
mkdir -p "$OUT"
export CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
[ -d "$OUT/model" ] || "$PY" -c "from mirg.models.tiny import save_tiny_model; save_tiny_model('$OUT/model', 'qwen3-vl')"
[ -d "$OUT/toy" ] || PYTHONPATH="$REPO/tests" "$PY" -c "from toy_data import write_toy_dataset; write_toy_dataset('$OUT/toy', 32)"
ARGS=(train sft --config "$REPO/recipes/tiny/sft.yaml" --model_name_or_path "$OUT/model"
      --dataset_path "$OUT/toy/trajectories.jsonl" --max_steps "$STEPS" --save_steps 100000
      --per_device_train_batch_size 2 --report_to none --disable_tqdm true
      --resume_from_checkpoint none)
run() {  # name, python, launcher args...
    local name=$1 py=$2; shift 2
    rm -rf "$OUT/$name"
    local t0; t0=$(date +%s.%N)
    "$py" "$@" "${ARGS[@]}" --output_dir "$OUT/$name" > "$OUT/$name.log" 2>&1
    local t1; t1=$(date +%s.%N)
    local sps; sps=$(grep -o "'train_steps_per_second': '[0-9.]*'" "$OUT/$name.log" | grep -o "[0-9.]*'$" | tr -d "'")
    local loss; loss=$(grep -o "'train_loss': '[0-9.]*'" "$OUT/$name.log" | grep -o "[0-9.]*'$" | tr -d "'")
    printf '%-14s steps/s %-7s train_loss %-7s wall %.1f s\n' "$name" "$sps" "$loss" "$(echo "$t1 - $t0" | bc)"
}
LAUNCH=(-m accelerate.commands.launch --main_process_port 29533)
run one_process "$PY" -m mirg
run ddp_2 "$PY" "${LAUNCH[@]}" --config_file "$REPO/recipes/accelerate/cpu_ddp.yaml" -m mirg
if [ -n "$DS_PY" ]; then
    for z in 2 3; do
        "$DS_PY" - "$REPO/recipes/accelerate/deepspeed_zero$z.yaml" "$OUT/zero$z.yaml" <<'PYEOF'
import sys, yaml
c = yaml.safe_load(open(sys.argv[1])); c.update(num_processes=2, mixed_precision="no")
yaml.safe_dump(c, open(sys.argv[2], "w"))
PYEOF
        run "zero${z}_2" "$DS_PY" "${LAUNCH[@]}" --config_file "$OUT/zero$z.yaml" -m mirg
    done
fi
