#!/usr/bin/env bash
# Image-aware GRPO on Qwen2.5-VL with verl (Ray + FSDP + vLLM) and mirg's reward.
# Runs in verl's own environment (requirements/verl.txt), never in mirg's .venv.
#
# Data: mirg export --format verl ... --out data/verl/train.parquet (and val.parquet).
# One node:    NNODES=1 GPUS_PER_NODE=8 scripts/verl_grpo.sh [key=value ...]
# Many nodes:  node 0:        ray start --head --port 6379
#              other nodes:   ray start --address <node-0-ip>:6379
#              node 0 only:   NNODES=2 GPUS_PER_NODE=8 scripts/verl_grpo.sh
# Anything after the script is a Hydra override (e.g. data.train_batch_size=128);
# `scripts/verl_grpo.sh --cfg job` prints the composed config and exits (no GPU needed).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
RECIPE="${RECIPE:-qwen2.5-vl-7b-grpo}"          # a file in recipes/verl/, without .yaml
MODEL="${MODEL:-runs/qwen2.5-vl-7b-sft}"        # HF folder or hub id (SFT checkpoint)
TRAIN="${TRAIN:-data/verl/train.parquet}"
VAL="${VAL:-data/verl/val.parquet}"
NNODES="${NNODES:-1}"
GPUS_PER_NODE="${GPUS_PER_NODE:-8}"
MAX_IMAGES="${MAX_IMAGES:-4}"                   # vLLM limit_mm_per_prompt (images)
# verl loads the reward by file path; mirg need not be installed in verl's environment.
REWARD="${REWARD:-$REPO/src/mirg/integrations/verl.py}"

# The reward module imports mirg.core (pure Python): make it importable without
# installing mirg's dependencies, which would replace verl's pinned transformers.
export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"

exec "$PYTHON" -m verl.trainer.main_ppo \
    --config-path="$REPO/recipes/verl" --config-name="$RECIPE" \
    algorithm.adv_estimator=grpo \
    data.train_files="$TRAIN" \
    data.val_files="$VAL" \
    data.image_key=images \
    actor_rollout_ref.model.path="$MODEL" \
    actor_rollout_ref.rollout.name=vllm \
    actor_rollout_ref.rollout.limit_images="$MAX_IMAGES" \
    reward.custom_reward_function.path="$REWARD" \
    reward.custom_reward_function.name=compute_score \
    trainer.nnodes="$NNODES" \
    trainer.n_gpus_per_node="$GPUS_PER_NODE" \
    "$@"
