"""The one prompt builder: SFT, GRPO, evaluation and inference all call ``build_messages``.

Messages use the conversational format that TRL and the Qwen-VL chat templates read:
each image is a ``{"type": "image"}`` part preceded by its label ("Image-1:" …), so the
question's words "Image-2" refer to something the model can see labelled.
"""

from __future__ import annotations

from mirg.core.profiles import CoordinateProfile, get_profile
from mirg.errors import MirgError

#: How each coordinate scale reads in a prompt (MIG-Bench's and MC-Bench's system prompts).
COORDINATE_WORDS = {
    1000: "integers from 0 to 1000, relative to the width and height of that image",
    1: "decimals from 0 to 1, relative to the width and height of that image",
    None: "absolute pixel coordinates of that image as you see it",
}


#: How every mirg system prompt starts (MIG-Bench's and MC-Bench's); the answer's shape follows.
THINK_THEN_ANSWER = (
    "You are given several images, labelled Image-1, Image-2, and so on. First reason about "
    "the images inside <think> </think>, then give the answer inside <answer> </answer> as "
)


#: Qwen-VL's control tokens that a question may not hold. The processor expands
#: ``<|image_pad|>`` and ``<|video_pad|>`` into an image's or a video's tokens and fails when
#: their count is not the images' (``<|vision_start|><|image_pad|><|vision_end|>`` in a
#: question stops predict, eval and SFT inside the processor); ``<|vision_start|>``,
#: ``<|vision_end|>`` and ``<|vision_pad|>`` frame an image that is not there; ``<|im_start|>``
#: and ``<|im_end|>`` end the user's turn and forge another, and ``<|endoftext|>`` is the pad
#: and end token that generation and the trainers stop or pad at. The grounding markup
#: (``<|box_start|>``, ``<|object_ref_start|>``, ``<|quad_start|>`` and their ends) is
#: allowed: Qwen reads it in prompts, MIG-Bench quotes reference boxes with it and its
#: official format instruction is written in it.
RESERVED_TOKENS = (
    "<|image_pad|>",
    "<|video_pad|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
)


class PromptError(MirgError):
    """Text that cannot go into a prompt as it is."""


def reserved_tokens_problem(text: str) -> str | None:
    """Why ``text`` cannot go into a prompt (it holds :data:`RESERVED_TOKENS`), or None. The
    readers put it after the file, record and field; the prompt builder raises it alone."""
    found = [token for token in RESERVED_TOKENS if token in text]
    if not found:
        return None
    return (
        f"contains Qwen-VL's reserved token{'s' if len(found) > 1 else ''} {', '.join(found)} "
        "(they mark images and turns: the processor and chat template would take them for "
        "structure); remove them"
    )


def check_prompt_text(question: str) -> None:
    """PromptError unless ``question`` may go into a prompt (see :data:`RESERVED_TOKENS`)."""
    if (problem := reserved_tokens_problem(question)) is not None:
        raise PromptError(f"question: {problem}")


def system_prompt(profile: str | CoordinateProfile) -> str:
    """Ask for mirg's canonical think/answer format in the profile's coordinates."""
    p = get_profile(profile)
    return (
        THINK_THEN_ANSWER + 'JSON: {"image": K, "bbox_2d": [x1, y1, x2, y2]}, where K is the '
        "number of the image that holds the target and the box is in "
        f"{COORDINATE_WORDS[p.scale]}."
    )


def image_label(k: int) -> str:
    """Label of the k-th image, 1-based: ``Image-1``."""
    return f"Image-{k}"


def user_content(question: str, n_images: int) -> list[dict]:
    """User turn: each image after its label, then the question."""
    labelled = ({"type": "text", "text": f"{image_label(k)}:"} for k in range(1, n_images + 1))
    images = [part for label in labelled for part in (label, {"type": "image"})]
    return [*images, {"type": "text", "text": question}]


def build_messages(question: str, n_images: int, profile: str | CoordinateProfile) -> list[dict]:
    """The prompt messages for one sample (no assistant turn). A question holding Qwen-VL's
    reserved tokens is refused here too, the last place before the processor; the readers
    refuse it first, naming the file, record and field."""
    check_prompt_text(question)
    return [
        {"role": "system", "content": [{"type": "text", "text": system_prompt(profile)}]},
        {"role": "user", "content": user_content(question, n_images)},
    ]


def assistant_message(text: str) -> list[dict]:
    """A completion in conversational form (TRL prompt/completion records)."""
    return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]


def count_image_placeholders(messages: list[dict]) -> int:
    """How many images the messages ask for; exports check it equals len(images)."""
    n = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            n += sum(
                1 for part in content if isinstance(part, dict) and part.get("type") == "image"
            )
        elif isinstance(content, str):
            n += content.count("<image>")
    return n
