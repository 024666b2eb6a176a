"""Batched, one-at-a-time and training-time forward passes must agree.

transformers 5 Qwen-VL models place image tokens by M-RoPE positions computed from the
processor's ``mm_token_type_ids``; with left padding and mixed image counts in one batch,
anything dropped or misaligned there changes the logits of the padded rows.
"""

import pytest
import torch

from mirg.eval.benchmarks import load_eval_items
from mirg.eval.generation import HFGenerator, eval_messages, load_images
from mirg.models.loading import load_model_and_processor


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    lm = load_model_and_processor(tiny_model_dir)
    torch.manual_seed(0)
    with torch.no_grad():  # a random model that says more than one token over and over
        for p in lm.model.parameters():
            p.normal_(0.0, 0.3)
    return lm


@pytest.fixture(scope="module")
def mixed_batch(synth_dir, loaded):
    items = load_eval_items(synth_dir / "test.jsonl")
    by_count = {}
    for it in items:
        by_count.setdefault(len(it.images), it)
    chosen = list(by_count.values())[:3]
    assert len({len(it.images) for it in chosen}) >= 2, "need items with different image counts"
    messages = [
        eval_messages(it.question, len(it.images), "reasoning", loaded.profile) for it in chosen
    ]
    return messages, [load_images(it.images) for it in chosen]


def test_batched_and_single_forward_give_the_same_last_logits(loaded, mixed_batch):
    messages, images = mixed_batch
    gen = HFGenerator(loaded.model, loaded.processor)
    batch = gen.inputs(messages, images)
    assert "mm_token_type_ids" in batch  # every processor field is passed on
    with torch.no_grad():
        batched = loaded.model(**batch).logits[:, -1]
        for i, (m, imgs) in enumerate(zip(messages, images, strict=True)):
            single = loaded.model(**gen.inputs([m], [imgs])).logits[:, -1]
            torch.testing.assert_close(batched[i : i + 1], single, atol=1e-4, rtol=1e-4)


def test_batched_and_single_greedy_generation_agree(loaded, mixed_batch):
    messages, images = mixed_batch
    gen = HFGenerator(loaded.model, loaded.processor, max_new_tokens=16)
    batched = gen.generate(messages, images)
    singles = [gen.generate([m], [imgs])[0] for m, imgs in zip(messages, images, strict=True)]
    assert batched == singles
    assert len(set(batched)) > 1 and all(len(t.text) > 0 for t in batched)


def test_training_time_forward_reproduces_greedy_tokens(loaded, mixed_batch):
    """Teacher forcing over prompt + generated tokens (as SFT/GRPO score them) predicts
    the same tokens greedy decoding produced."""
    messages, images = mixed_batch
    gen = HFGenerator(loaded.model, loaded.processor)
    m, imgs = messages[1], images[1]
    batch = gen.inputs([m], [imgs])
    with torch.no_grad():
        out = loaded.model.generate(**batch, max_new_tokens=10, do_sample=False)
        prompt_len = batch["input_ids"].shape[1]
        full = dict(batch)
        full["input_ids"] = out
        full["attention_mask"] = torch.ones_like(out)
        extra = out.shape[1] - prompt_len
        full["mm_token_type_ids"] = torch.cat(
            [
                batch["mm_token_type_ids"],
                torch.zeros(1, extra, dtype=batch["mm_token_type_ids"].dtype),
            ],
            1,
        )
        logits = loaded.model(**full).logits
    predicted = logits[0, prompt_len - 1 : -1].argmax(-1)
    assert torch.equal(predicted, out[0, prompt_len:])


def test_sampling_draws_n_answers_per_prompt_in_prompt_order(loaded, mixed_batch):
    """``num_return_sequences`` repeats each prompt with its own images: near zero
    temperature every draw is that prompt's greedy answer, in a batch of mixed image
    counts; at temperature 1 the draws differ and a rerun with the seed repeats them."""
    from mirg.eval.generation import Sampling

    messages, images = mixed_batch
    greedy = HFGenerator(loaded.model, loaded.processor, max_new_tokens=10)
    cold = HFGenerator(loaded.model, loaded.processor, 10, Sampling(n=3, temperature=1e-5))
    drawn = cold.sample(messages, images)
    assert [len(d) for d in drawn] == [3] * len(messages)
    assert [d[0] for d in drawn] == greedy.generate(messages, images)
    assert all(len(set(d)) == 1 for d in drawn)
    hot = Sampling(n=4, temperature=1.0, seed=7)
    first = HFGenerator(loaded.model, loaded.processor, 10, hot).sample(messages, images)
    again = HFGenerator(loaded.model, loaded.processor, 10, hot).sample(messages, images)
    assert first == again and any(len(set(d)) > 1 for d in first)
    with pytest.raises(ValueError, match="temperature"):
        Sampling(n=2, temperature=0.0)
