"""Training on TRL: SFT on reasoning trajectories, then image-aware GRPO.

mirg owns the data, prompts, rewards and configuration; TRL's ``SFTTrainer`` and
``GRPOTrainer`` own the training loop, the GRPO loss and generation. Heavy modules import
lazily: ``from mirg.train.sft import run_sft`` / ``from mirg.train.grpo import run_grpo``.
"""
