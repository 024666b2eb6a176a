"""Prompts for evaluation and the generation backends (Hugging Face and vLLM).

Generation itself is the libraries' (``model.generate``, ``vllm.LLM.generate``); mirg
builds the prompts, batches items sensibly and decodes the new tokens; ``sample`` (with a
:class:`Sampling`) serves teacher trajectories by rejection sampling.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from mirg.core.profiles import CoordinateProfile
from mirg.core.prompts import build_messages, check_prompt_text
from mirg.errors import MirgError

#: The generation backends: transformers' generate, or vLLM on a GPU.
BACKENDS = ("hf", "vllm")

#: The published MIG-Bench evaluation instruction, verbatim (its repeated ``box_start``
#: and its misspelling included), appended right after the question.
OFFICIAL_FORMAT = (
    "Format:<|box_start|>(x1,y1),(x2,y2)<|box_start|>. Don't generate addtional words."
)
PROMPTS = ("official", "reasoning")
#: At most this many new tokens under the official prompt, as the published setup.
OFFICIAL_MAX_NEW_TOKENS = 128
#: Under mirg's reasoning prompt: room for the longest trajectories (about 350 tokens on
#: MIG-Bench-like data) and the GRPO recipes' completion budget.
REASONING_MAX_NEW_TOKENS = 1024


def eval_messages(
    question: str, n_images: int, prompt: str, profile: CoordinateProfile, need_format: bool = True
) -> list[dict]:
    """Messages for one item: ``official`` (the published setup: all images, then the
    question immediately followed by the format instruction where the item asks for it) or
    ``reasoning`` (mirg's labelled images and think/answer system prompt)."""
    if prompt == "official":
        text = question + OFFICIAL_FORMAT if need_format else question
        content = [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": text}]
        check_prompt_text(question)
        return [{"role": "user", "content": content}]
    return build_messages(question, n_images, profile)  # EvalConfig refuses other prompts


def load_images(paths: Sequence[str]) -> list[Any]:
    """The images as the model is shown them: decoded, RGB, turned as their EXIF orientation
    says (:func:`mirg.data.schema.open_image`, the pixels training decodes too)."""
    from mirg.data.schema import open_image

    return [open_image(path) for path in paths]


def answer_batch(
    generator: Any, processor: Any, items: Sequence[Any], messages: Sequence[list[dict]]
) -> list[dict]:
    """Greedy answers for a batch of items (``messages``: one prompt each) as the lines of
    ``predictions.jsonl``, for ``mirg eval`` and the training callback alike."""
    from mirg.models.loading import input_sizes

    images = [load_images(it.images) for it in items]
    records = []
    for it, imgs, answer in zip(items, images, generator.generate(messages, images), strict=True):
        record = {
            it.key_field: it.key,
            "task": it.task,
            "response": answer.text,
            "input_sizes": input_sizes(processor, imgs),
        }
        if answer.truncated:
            record["truncated"] = True
        records.append(record)
    return records


def batches_by_shape(
    items: Sequence[Any], batch_size: int, length: Callable[[Any], int]
) -> Iterator[list[Any]]:
    """Batches of items with the same image count and similar prompt length (``length``:
    the prompt's tokens), so left padding stays short; longest first so a memory problem
    shows at once."""
    order = sorted(items, key=lambda it: (len(it.images), length(it)), reverse=True)
    batch: list[Any] = []
    for item in order:
        if batch and (len(batch) == batch_size or len(item.images) != len(batch[0].images)):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def prompt_tokens(
    processor: Any, messages: list[dict], image_sizes: Sequence[Sequence[int]]
) -> int:
    """Tokens of one prompt as the model sees it: the chat template's text with each image
    placeholder expanded to the image's tokens at the processor's frame."""
    from mirg.models.loading import image_tokens

    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    n_text = len(processor.tokenizer(text, add_special_tokens=False)["input_ids"])
    return n_text - len(image_sizes) + sum(image_tokens(processor, w, h) for w, h in image_sizes)


def image_sizes(paths: Sequence[str]) -> list[tuple[int, int]]:
    """(width, height) of each image as shown (EXIF orientation applied), from its header,
    without decoding the pixels (:func:`mirg.data.schema.image_size`)."""
    from mirg.data.schema import image_size

    return [image_size(path, str(path)) for path in paths]


@dataclass(frozen=True)
class Generation:
    """One answer: the decoded text, and whether it stopped at the token limit."""

    text: str
    truncated: bool = False


@dataclass(frozen=True)
class Sampling:
    """Draw ``n`` answers per prompt at ``temperature`` (nucleus ``top_p``, ``top_k`` 0 for
    none), reproducibly from ``seed``. The values are always passed explicitly: a
    checkpoint's own generation config (Qwen2.5-VL-Instruct ships ``top_k: 1``) would
    otherwise make the ``n`` answers one answer ``n`` times."""

    n: int = 4
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n < 1:
            raise MirgError(f"samples per prompt must be at least 1, got {self.n}")
        if not self.temperature > 0:
            raise MirgError(f"sampling needs a temperature above 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise MirgError(f"top_p must lie in (0, 1], got {self.top_p}")


def _clean(text: str, tokenizer: Any) -> str:
    """Cut the decoded text at the end-of-turn token and drop padding tokens."""
    for stop in (tokenizer.eos_token, "<|im_end|>", "<|endoftext|>"):
        if stop and stop in text:
            text = text.split(stop, 1)[0]
    if tokenizer.pad_token:
        text = text.replace(tokenizer.pad_token, "")
    return text


class HFGenerator:
    """Batched generation with ``model.generate`` and left padding: greedy (``generate``)
    or ``sampling.n`` draws per prompt (``sample``, ``num_return_sequences``).

    Every field the processor returns is passed on: with transformers 5, Qwen-VL models
    given no ``mm_token_type_ids`` put image tokens at wrong M-RoPE positions silently.
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        max_new_tokens: int = REASONING_MAX_NEW_TOKENS,
        sampling: Sampling | None = None,
    ) -> None:
        self.model = model
        self.processor = processor
        self.max_new_tokens = max_new_tokens
        self.sampling = sampling
        self.calls = 0
        self.model.eval()

    def inputs(self, messages: Sequence[list[dict]], images: Sequence[Sequence[Any]]) -> Any:
        from mirg.models.loading import generation_inputs

        return generation_inputs(self.processor, messages, images).to(self.model.device)

    def generate(
        self, messages: Sequence[list[dict]], images: Sequence[Sequence[Any]]
    ) -> list[Generation]:
        """One greedy answer per prompt."""
        return self._run(messages, images, do_sample=False)

    def sample(
        self, messages: Sequence[list[dict]], images: Sequence[Sequence[Any]]
    ) -> list[list[Generation]]:
        """``sampling.n`` sampled answers per prompt. Each call seeds torch from the seed
        and the call's number, so a rerun draws the same answers."""
        import torch

        s = self.sampling
        if s is None:
            raise MirgError("HFGenerator.sample needs a Sampling (samples, temperature)")
        torch.manual_seed(s.seed + self.calls)
        self.calls += 1
        flat = self._run(
            messages,
            images,
            do_sample=True,
            num_return_sequences=s.n,
            temperature=s.temperature,
            top_p=s.top_p,
            top_k=s.top_k,
        )
        return [flat[i : i + s.n] for i in range(0, len(flat), s.n)]  # s.n per prompt, in order

    def _run(
        self, messages: Sequence[list[dict]], images: Sequence[Sequence[Any]], **decoding: Any
    ) -> list[Generation]:
        import torch

        batch = self.inputs(messages, images)
        with torch.inference_mode():
            out = self.model.generate(
                **batch,
                max_new_tokens=self.max_new_tokens,
                pad_token_id=self.processor.tokenizer.pad_token_id,
                **decoding,
            )
        new_tokens = out[:, batch["input_ids"].shape[1] :]
        stops = self.model.generation_config.eos_token_id
        stops = torch.tensor([stops] if isinstance(stops, int) else list(stops or []))
        ended = torch.isin(new_tokens.cpu(), stops).any(dim=1).tolist()
        decoded = self.processor.batch_decode(new_tokens, skip_special_tokens=False)
        return [
            Generation(_clean(text, self.processor.tokenizer), truncated=not stop)
            for text, stop in zip(decoded, ended, strict=True)
        ]


def vllm_engine_args(
    model: str,
    processor: Any,
    *,
    max_images: int,
    max_model_len: int | None = None,
    longest_prompt: int | None = None,
    max_new_tokens: int | None = None,
    gpu_memory_utilization: float = 0.9,
    tensor_parallel_size: int = 1,
) -> dict[str, Any]:
    """vLLM ``LLM(...)`` arguments for evaluation and GRPO rollouts alike: the processor's
    pixel caps (so image-token counts and Qwen2.5-VL's absolute frames match training and
    the predictions' ``input_sizes``), room for the largest image count and no video, and a
    context of the longest prompt plus the answer, not the model's full context (128k
    tokens would leave no memory for the cache). ``max_model_len`` given wins, but must
    hold the longest prompt and answer where given, or they would fail inside vLLM mid-run.
    """
    from mirg.models.loading import pixel_caps

    if longest_prompt is not None and max_new_tokens is not None:
        needed = longest_prompt + max_new_tokens
        if max_model_len is None:
            max_model_len = needed
        elif max_model_len < needed:
            raise MirgError(
                f"vLLM max_model_len {max_model_len} is shorter than the longest prompt "
                f"({longest_prompt} tokens) plus the answer ({max_new_tokens} tokens); raise "
                f"it to at least {needed} or leave it unset"
            )
    if max_model_len is None:
        raise MirgError(
            "vLLM's max_model_len: give it, or the longest prompt and the answer length"
        )
    lo, hi = pixel_caps(processor)
    return {
        "model": model,
        "limit_mm_per_prompt": {"image": max(1, max_images), "video": 0},
        "mm_processor_kwargs": {"size": {"shortest_edge": lo, "longest_edge": hi}},
        "max_model_len": max_model_len,
        "gpu_memory_utilization": gpu_memory_utilization,
        "tensor_parallel_size": tensor_parallel_size,
    }


class VLLMGenerator:
    """Generation with vLLM's offline engine (GPU; ``pip install 'mirg[vllm]'``): the whole
    set goes to the engine at once, which schedules it. Greedy (``generate``), or
    ``sampling.n`` draws per prompt (``sample``, ``SamplingParams(n=…)``).

    Not exercised on the CPU machines this project is developed on: see docs/evaluation.md.
    """

    def __init__(
        self,
        processor: Any,
        max_new_tokens: int,
        engine_args: dict[str, Any],
        sampling: Sampling | None = None,
    ) -> None:
        try:
            from vllm import LLM, SamplingParams
        except ImportError as exc:
            raise ImportError(
                "the vllm backend needs vLLM on a GPU machine: pip install 'mirg[vllm]'"
            ) from exc
        self.processor = processor
        self.llm = LLM(**engine_args)
        self.params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
        self.sampling = sampling
        if sampling is not None:
            extra = {"top_k": sampling.top_k} if sampling.top_k > 0 else {}
            self.sampling_params = SamplingParams(
                n=sampling.n,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                seed=sampling.seed,
                max_tokens=max_new_tokens,
                **extra,
            )

    def _run(
        self, messages: Sequence[list[dict]], images: Sequence[Sequence[Any]], params: Any
    ) -> list[list[Generation]]:
        requests = []
        for m, imgs in zip(messages, images, strict=True):
            text = self.processor.apply_chat_template(m, add_generation_prompt=True, tokenize=False)
            request: dict[str, Any] = {"prompt": text}
            if imgs:
                request["multi_modal_data"] = {"image": list(imgs)}
            requests.append(request)
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        return [
            [Generation(c.text, truncated=c.finish_reason == "length") for c in o.outputs]
            for o in outputs
        ]

    def generate(
        self, messages: Sequence[list[dict]], images: Sequence[Sequence[Any]]
    ) -> list[Generation]:
        """One greedy answer per prompt."""
        return [answers[0] for answers in self._run(messages, images, self.params)]

    def sample(
        self, messages: Sequence[list[dict]], images: Sequence[Sequence[Any]]
    ) -> list[list[Generation]]:
        """``sampling.n`` sampled answers per prompt."""
        if self.sampling is None:
            raise MirgError("VLLMGenerator.sample needs a Sampling (samples, temperature)")
        return self._run(messages, images, self.sampling_params)
