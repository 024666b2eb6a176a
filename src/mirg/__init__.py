"""mirg: multi-image reasoning and grounding with reinforcement learning."""

__version__ = "0.1.0"
