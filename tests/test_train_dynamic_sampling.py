"""Dynamic sampling's batch surgery: rows selected and batches merged exactly as TRL built
them (prompts padded on the left, completions on the right, per-image pixels per row)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from mirg.train.dynamic_sampling import concat_batches, select_rows, varying_groups  # noqa: E402

PAD = 0


def _batch(prompts: list[list[int]], completions: list[list[int]], images: list[int], seed: int):
    """A generation batch in TRL's split form: left-padded prompts, right-padded
    completions, mm_token_type_ids over both, one pixel block (rows of 4) per image."""
    width_p = max(map(len, prompts))
    width_c = max(map(len, completions))
    gen = torch.Generator().manual_seed(seed)
    batch: dict = {
        "prompt_ids": torch.tensor([[PAD] * (width_p - len(p)) + p for p in prompts]),
        "prompt_mask": torch.tensor([[0] * (width_p - len(p)) + [1] * len(p) for p in prompts]),
        "completion_ids": torch.tensor([c + [PAD] * (width_c - len(c)) for c in completions]),
        "completion_mask": torch.tensor(
            [[1] * len(c) + [0] * (width_c - len(c)) for c in completions]
        ),
        "old_per_token_logps": torch.rand(len(prompts), width_c, generator=gen),
        "advantages": torch.rand(len(prompts), generator=gen),
        "num_items_in_batch": torch.tensor(sum(map(len, completions))),
        "num_images": images,
        "pixel_values": [torch.rand(4 * n, 3, generator=gen) for n in images],
        "image_grid_thw": [torch.tensor([[1, 2, 2]] * n) for n in images],
    }
    mm = [[0] * (width_p - len(p)) + [1 if t == 7 else 0 for t in p] for p in prompts]
    batch["mm_token_type_ids"] = torch.tensor([m + [0] * width_c for m in mm])
    return batch


def _row(batch: dict, i: int) -> dict:
    """One row with its padding removed: what the row means, whatever batch it sits in."""
    p, c = batch["prompt_mask"][i].bool(), batch["completion_mask"][i].bool()
    width_p = batch["prompt_ids"].shape[1]
    return {
        "prompt": batch["prompt_ids"][i][p].tolist(),
        "completion": batch["completion_ids"][i][c].tolist(),
        "old": batch["old_per_token_logps"][i][c].tolist(),
        "advantage": float(batch["advantages"][i]),
        "mm": batch["mm_token_type_ids"][i][:width_p][p].tolist(),
        "mm_completion": batch["mm_token_type_ids"][i][width_p:].tolist(),
        "images": batch["num_images"][i],
        "pixels": batch["pixel_values"][i].tolist(),
        "grid": batch["image_grid_thw"][i].tolist(),
    }


def test_rows_keep_their_meaning_when_selected_and_merged_across_padding_widths():
    a = _batch([[5, 7, 7, 9], [5, 9]], [[1, 2, 3], [4]], [2, 1], seed=1)
    b = _batch([[5, 7, 9, 9, 9, 9]], [[6, 6, 6, 6, 6]], [3], seed=2)
    merged = concat_batches([select_rows(a, [1, 0]), select_rows(b, [0])], PAD)
    assert merged["prompt_ids"].shape == (3, 6) and merged["completion_ids"].shape == (3, 5)
    assert merged["mm_token_type_ids"].shape == (3, 11)
    expected = [_row(a, 1), _row(a, 0), _row(b, 0)]
    for i, row in enumerate(expected):
        got = _row(merged, i)
        assert got["mm_completion"] == [0] * 5
        row["mm_completion"] = got["mm_completion"]
        assert got == row
    # prompts stay left-aligned to the completion, completions start at the same column
    assert merged["prompt_mask"][:, -1].tolist() == [1, 1, 1]
    assert merged["completion_mask"][:, 0].tolist() == [1, 1, 1]
    assert merged["num_images"] == [1, 2, 3]


def test_a_key_it_cannot_pad_is_refused_naming_it():
    a = _batch([[5, 7]], [[1]], [1], seed=1)
    b = _batch([[5, 7]], [[1]], [1], seed=2)
    a["unknown"], b["unknown"] = torch.zeros(1, 2), torch.zeros(1, 3)
    with pytest.raises(Exception, match="unknown"):
        concat_batches([a, b], PAD)


def test_groups_vary_by_their_weighted_total_and_unscored_completions_are_left_out():
    nan = float("nan")
    rewards = torch.tensor(
        [
            [1.0, 0.0], [1.0, 0.0],  # the same total: no signal
            [1.0, 0.0], [0.0, 2.0],  # totals 1 and 1 under weights (1, 0.5): no signal
            [1.0, 0.0], [0.0, 0.0],  # varies
            [nan, nan], [1.0, 0.0],  # one scored completion: no signal
        ]
    )  # fmt: skip
    varies = varying_groups(rewards, torch.tensor([1.0, 0.5]), num_generations=2)
    assert varies.tolist() == [False, False, True, False]
