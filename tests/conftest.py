"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MIGBENCH_FILE = REPO.parent / "shared" / "migbench" / "MIG_data.json"
PUBLISHED_RESULTS = REPO.parent / "shared" / "migbench" / "published_results.csv"


@pytest.fixture(scope="session")
def migbench_path() -> Path:
    """The real MIG-Bench annotation file beside the repo (../shared), or a skip saying why."""
    if not MIGBENCH_FILE.is_file():
        pytest.skip(f"MIG-Bench annotations not found at {MIGBENCH_FILE} (../shared is absent)")
    return MIGBENCH_FILE


@pytest.fixture(scope="session")
def migbench_items(migbench_path):
    from mirg.core.migbench import load_migbench

    return load_migbench(migbench_path)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random-init Qwen3-VL model and processor, built offline once per session."""
    from mirg.models.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "qwen3-vl", "qwen3-vl")


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """A small synthetic world (default preset: several families, 1-4 images per sample)."""
    from mirg.data.synth import PRESETS, write_dataset

    out = tmp_path_factory.mktemp("synth")
    write_dataset(out, 60, seed=3, config=PRESETS["default"])
    return out


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tiny models gain nothing from a second thread, and two threads on a shared 2-core
    machine slow some steps down many times over (measured): tests use one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
