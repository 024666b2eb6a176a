"""The pure core: boxes, coordinate profiles, prompts, answer parsing, rewards, MIG-Bench
reading and scoring. Nothing here imports torch or model code."""
