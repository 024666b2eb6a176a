"""Tiny random-init Qwen-VL models built fully offline (no hub), for tests and the demo.

A tiny model is its family's real architecture with small towers, a locally trained BPE
tokenizer, the family's chat template and a real processor, saved with ``save_pretrained``
so that SFT, GRPO and evaluation run the same code path on it as on Qwen2.5-VL-7B.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mirg.core.profiles import PROFILES
from mirg.core.prompts import system_prompt
from mirg.errors import MirgError, did_you_mean
from mirg.files import write_json
from mirg.models.families import CONFIG_KEY, ModelFamily, get_family
from mirg.models.families import FAMILIES as BUILT_IN_FAMILIES

#: The built-in families a tiny model can be built in (others: by dotted path).
FAMILIES = tuple(BUILT_IN_FAMILIES)

# Qwen's special tokens, in Qwen's order (ids follow the BPE vocabulary).
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# Qwen2-VL / Qwen2.5-VL chat template (as shipped with the instruct checkpoints).
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen3-VL instruct template without tool calling: no default system prompt.
QWEN3_VL_CHAT_TEMPLATE = (
    "{%- set image_count = namespace(value=0) %}{%- set video_count = namespace(value=0) %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string %}{{- message['content'] }}"
    "{%- else %}{%- for content in message['content'] %}"
    "{%- if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{%- set image_count.value = image_count.value + 1 %}"
    "{%- if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif content['type'] == 'video' or 'video' in content %}"
    "{%- set video_count.value = video_count.value + 1 %}"
    "{%- if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{%- elif 'text' in content %}{{- content['text'] }}{%- endif %}"
    "{%- endfor %}{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


@dataclass(frozen=True)
class TinySpec:
    """Dimensions of a tiny model; the defaults build in seconds. The optional fields serve
    real-dimension stand-ins (:func:`load_spec`); None means the family's tiny default."""

    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 128
    vision_hidden_size: int = 32
    vision_depth: int = 2
    vision_heads: int = 2
    vision_intermediate_size: int = 64
    vocab_size: int = 1024  # BPE merges target; special tokens come on top
    max_position_embeddings: int = 4096
    min_pixels: int | None = None  # None: the family's default for tiny models
    max_pixels: int | None = None
    seed: int = 0
    # rows of the embedding matrix when larger than the tokenizer (real-size stand-ins)
    model_vocab_size: int | None = None
    tie_word_embeddings: bool = True
    head_dim: int | None = None  # None: hidden_size // num_heads (Qwen3-VL sets its own)
    mrope_section: tuple[int, ...] | None = None  # None: Qwen's 1:1.5:1.5 split of head_dim/2
    rope_theta: float | None = None  # None: the family's
    vision_num_position_embeddings: int | None = None  # Qwen3-VL; None: a 16x16 grid
    deepstack_visual_indexes: tuple[int, ...] | None = None  # Qwen3-VL; None: the last block

    @property
    def attention_head_dim(self) -> int:
        """The width of one attention head of the language model."""
        return self.head_dim or self.hidden_size // self.num_heads


def load_spec(path: str | Path) -> tuple[str, TinySpec]:
    """(family, spec) from a stand-in JSON file: ``{"family": ..., "spec": {field: value}}``
    (real-dimension stand-ins are measurement data: ``benchmarks/stand-ins/``)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise MirgError(f"stand-in spec {p}: cannot be read as JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("spec"), dict):
        raise MirgError(f'stand-in spec {p}: expected {{"family": ..., "spec": {{...}}}}')
    family = data.get("family")
    if family not in FAMILIES:
        raise MirgError(f"stand-in spec {p}: field 'family': {family!r} is not one of {FAMILIES}")
    fields = {f.name: f for f in dataclasses.fields(TinySpec)}
    values: dict[str, Any] = {}
    for key, value in data["spec"].items():
        if key not in fields:
            hint = did_you_mean(key, fields)
            raise MirgError(f"stand-in spec {p}: field 'spec.{key}' is not a TinySpec field{hint}")
        plain = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (value is None or plain or isinstance(value, (bool, list))):
            raise MirgError(
                f"stand-in spec {p}: field 'spec.{key}': expected a number, true/false, a list "
                f"or null, got {value!r}"
            )
        values[key] = tuple(value) if isinstance(value, list) else value
    try:
        return family, TinySpec(**values)
    except TypeError as exc:
        raise MirgError(f"stand-in spec {p}: {exc}") from None


# --------------------------------------------------------------------------- tokenizer


def _corpus(seed: int) -> list[str]:
    """Text the tiny tokenizer is trained on: mirg's prompts, questions and answers."""
    rng = random.Random(seed)
    colours = "red green blue yellow orange purple pink brown black white gray cyan".split()
    shapes = "circle square triangle star cross diamond rectangle ring hexagon".split()
    sizes = ["small", "large", "big", "tiny", "medium"]
    words = (
        "the a an of in on at to with and or is are which where find locate object image "
        "images same different changed added removed moved marked box crop region source "
        "appears every each other than another colour color shape size left right top "
        "bottom center first second third that this it holds contains show answer reason "
        "look compare candidate target reference described rule out so therefore not only"
    ).split()
    lines = [system_prompt(p) for p in PROFILES]
    lines += [f"Image-{k}:" for k in range(1, 9)]
    for _ in range(1500):
        c, s, z = rng.choice(colours), rng.choice(shapes), rng.choice(sizes)
        k, j = rng.randint(1, 6), rng.randint(1, 6)
        box = [rng.randint(0, 1000) for _ in range(4)]
        lines.append(f"Where is the {z} {c} {s} in Image-{k}?")
        lines.append(f"Find the {c} {s} marked in Image-1 in Image-{j}.")
        lines.append(" ".join(rng.choice(words) for _ in range(rng.randint(5, 15))) + ".")
        lines.append(
            f"<think>Image-{k} has a {c} {s} at {box}. It is the target.</think>"
            f'<answer>{{"image": {k}, "bbox_2d": {box}}}</answer>'
        )
        lines.append(f"<|box_start|>({box[0]},{box[1]}),({box[2]},{box[3]})<|box_end|>")
        lines.append(json.dumps({"bbox_2d": [round(v / 1000, 3) for v in box]}))
    return lines


def corpus_from_files(paths: Sequence[str | Path]) -> list[str]:
    """Tokenizer training text from JSONL (every string value) or plain text files: trained
    on the data it will read, the tokenizer makes shorter sequences and faster CPU steps."""
    texts: list[str] = []

    def strings(value: object) -> None:
        if isinstance(value, str):
            if value and not value.endswith((".png", ".jpg", ".jpeg")):
                texts.append(value)
        elif isinstance(value, (dict, list)):
            for v in value.values() if isinstance(value, dict) else value:
                strings(v)

    for path in paths:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"tokenizer corpus file {p} does not exist")
        for line in p.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            if p.suffix == ".jsonl":
                strings(json.loads(line))
            else:
                texts.append(line)
    return texts


def build_tokenizer(
    vocab_size: int = 1024, seed: int = 0, corpus: Sequence[str] | None = None
) -> Any:
    """A Qwen2 byte-level BPE tokenizer trained locally under Qwen's own pre-tokenizer
    (digits split one by one, as Qwen tokenizes), with Qwen's special tokens; ``corpus``
    adds training text (the data the model will read) to mirg's built-in one."""
    from tokenizers import AddedToken, Regex, Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
        special_tokens=[],
    )
    bpe.train_from_iterator([*_corpus(seed), *(corpus or [])], trainer=trainer)
    state = json.loads(bpe.to_str())["model"]
    vocab: dict[str, int] = state["vocab"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        errors="replace",
        model_max_length=32768,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tokenizer.add_special_tokens(
        {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
        replace_extra_special_tokens=False,
    )
    return tokenizer


# --------------------------------------------------------------------------- configs


def _token_ids(tokenizer: Any) -> dict[str, int]:
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    return {
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }


def _mrope_section(head_dim: int) -> list[int]:
    """Split head_dim/2 rotary frequencies over (time, height, width) like Qwen (16:24:24)."""
    half = head_dim // 2
    t = max(1, half // 4)
    h = (half - t) // 2
    return [t, h, half - t - h]


def _qwen(
    family: ModelFamily,
    tokenizer: Any,
    spec: TinySpec,
    classes: str,
    vision: dict[str, Any],
    *,
    text: dict[str, Any] | None = None,
    rope: dict[str, Any] | None = None,
    image: dict[str, Any] | None = None,
    video: str = "Qwen2VLVideoProcessor",
    template: str = QWEN2_VL_CHAT_TEMPLATE,
) -> tuple[Any, Any]:
    """(config, processor) of a tiny Qwen-VL model: what the families share, then what one
    adds (``classes``: the prefix of its transformers ``…Config`` and ``…Processor``)."""
    import transformers

    ids = _token_ids(tokenizer)
    head_dim = spec.attention_head_dim
    if "head_dim" not in (text or {}) and head_dim * spec.num_heads != spec.hidden_size:
        raise MirgError(f"{family.name} needs head_dim = hidden_size / num_heads")
    mrope = list(spec.mrope_section or _mrope_section(head_dim))
    if sum(mrope) != head_dim // 2:
        raise MirgError(f"mrope_section {mrope} must add up to head_dim / 2 = {head_dim // 2}")
    theta = {} if spec.rope_theta is None else {"rope_theta": float(spec.rope_theta)}
    text_config = {
        "vocab_size": max(len(tokenizer), spec.model_vocab_size or 0),
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.intermediate_size,
        "num_hidden_layers": spec.num_layers,
        "num_attention_heads": spec.num_heads,
        "num_key_value_heads": spec.num_kv_heads,
        "max_position_embeddings": spec.max_position_embeddings,
        "bos_token_id": ids["bos_token_id"],
        "eos_token_id": ids["eos_token_id"],
        "pad_token_id": ids["pad_token_id"],
        "rope_parameters": {"rope_type": "default", "mrope_section": mrope} | (rope or {}) | theta,
    } | (text or {})
    factor = family.frame_factor
    tower = {
        "depth": spec.vision_depth,
        "num_heads": spec.vision_heads,
        "patch_size": factor // 2,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }
    tokens = ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")
    config = getattr(transformers, classes + "Config")(
        text_config=text_config, vision_config=tower | vision, **{k: ids[k] for k in tokens}
    )
    config.tie_word_embeddings = spec.tie_word_embeddings
    config.get_text_config().tie_word_embeddings = spec.tie_word_embeddings
    # Tiny frames so a CPU step takes milliseconds: 2x2 to 8x8 merged patches (the same
    # token budget for every family, whatever its merged patch's side).
    min_pixels = spec.min_pixels or factor * factor * 4
    max_pixels = spec.max_pixels or factor * factor * 64
    patches = {"patch_size": factor // 2, "merge_size": 2, "temporal_patch_size": 2}
    processor = getattr(transformers, classes + "Processor")(
        image_processor=transformers.Qwen2VLImageProcessor(
            size={"shortest_edge": min_pixels, "longest_edge": max_pixels},
            **patches,
            **(image or {}),
        ),
        tokenizer=tokenizer,
        video_processor=getattr(transformers, video)(
            size={"shortest_edge": min_pixels, "longest_edge": max_pixels * 2}, **patches
        ),
        chat_template=template,
    )
    return config, processor


def _vision_tower(spec: TinySpec) -> dict[str, Any]:
    """The vision tower's widths as Qwen2.5-VL and Qwen3-VL name them."""
    return {
        "hidden_size": spec.vision_hidden_size,
        "intermediate_size": spec.vision_intermediate_size,
        "out_hidden_size": spec.hidden_size,
    }


def qwen2_vl(family: ModelFamily, tokenizer: Any, spec: TinySpec) -> tuple[Any, Any]:
    """A tiny Qwen2-VL: the tower's merger writes the text width."""
    vision = {
        "embed_dim": spec.vision_hidden_size,
        "hidden_size": spec.hidden_size,
        "mlp_ratio": max(1, spec.vision_intermediate_size // spec.vision_hidden_size),
    }
    return _qwen(family, tokenizer, spec, "Qwen2VL", vision)


def qwen2_5_vl(family: ModelFamily, tokenizer: Any, spec: TinySpec) -> tuple[Any, Any]:
    """A tiny Qwen2.5-VL: full attention every 8th tower block, windows elsewhere."""
    full = list(range(7, spec.vision_depth, 8)) or [spec.vision_depth - 1]
    vision = _vision_tower(spec) | {"window_size": 112, "fullatt_block_indexes": full}
    return _qwen(family, tokenizer, spec, "Qwen2_5_VL", vision)


def qwen3_vl(family: ModelFamily, tokenizer: Any, spec: TinySpec) -> tuple[Any, Any]:
    """A tiny Qwen3-VL: its own head width, interleaved M-RoPE, absolute position embeddings
    on a grid (tiny: up to 16x16 patches, 256 px), DeepStack taps, pixels normalised to
    [-1, 1] and a chat template without a default system prompt."""
    vision = _vision_tower(spec) | {
        "num_position_embeddings": spec.vision_num_position_embeddings or 256,
        "deepstack_visual_indexes": list(spec.deepstack_visual_indexes or (spec.vision_depth - 1,)),
    }
    return _qwen(
        family,
        tokenizer,
        spec,
        "Qwen3VL",
        vision,
        text={"head_dim": spec.attention_head_dim},
        rope={"mrope_interleaved": True, "rope_theta": 5_000_000.0},
        image={"image_mean": [0.5] * 3, "image_std": [0.5] * 3},
        video="Qwen3VLVideoProcessor",
        template=QWEN3_VL_CHAT_TEMPLATE,
    )


def build_config(family: str, tokenizer: Any, spec: TinySpec) -> Any:
    """The tiny model config; token ids come from the tokenizer so image tokens match."""
    found = get_family(family)
    return found.tiny_builder()(found, tokenizer, spec)[0]


# --------------------------------------------------------------------------- model


def build_tiny_model(
    family: str = "qwen3-vl", spec: TinySpec | None = None, corpus: Sequence[str] | None = None
) -> tuple[Any, Any]:
    """(model, processor) of a tiny random-init model of ``family`` (a built-in's name or a
    dotted path, which the config then records as ``mirg_family`` for loading)."""
    import torch
    from transformers import AutoModelForImageTextToText

    found = get_family(family)
    spec = spec or TinySpec()
    if spec.num_heads % spec.num_kv_heads or (
        spec.head_dim is None and spec.hidden_size % spec.num_heads
    ):
        raise MirgError("hidden_size must divide by num_heads and num_heads by num_kv_heads")
    tokenizer = build_tokenizer(spec.vocab_size, spec.seed, corpus)
    config, processor = found.tiny_builder()(found, tokenizer, spec)
    if found.name not in BUILT_IN_FAMILIES:  # config.json records where the family lives
        if not isinstance(family, str):
            raise MirgError(
                f"family {found.name!r} is not mirg's: name it by dotted path "
                "(my_pkg.module.FAMILY), which the model's config.json then records"
            )
        setattr(config, CONFIG_KEY, family)
    torch.manual_seed(spec.seed)
    model = AutoModelForImageTextToText.from_config(config)
    ids = _token_ids(tokenizer)
    model.generation_config.eos_token_id = [ids["eos_token_id"], ids["pad_token_id"]]
    model.generation_config.pad_token_id = ids["pad_token_id"]
    model.generation_config.bos_token_id = ids["bos_token_id"]
    return model, processor


def save_tiny_model(
    out: str | Path,
    family: str = "qwen3-vl",
    spec: TinySpec | None = None,
    corpus: Sequence[str] | None = None,
    dtype: str | None = None,
) -> Path:
    """Build a tiny model and write it to ``out``; ``dtype`` (``"bfloat16"``) converts the
    weights first, as real-size stand-ins are written like the checkpoints they imitate."""
    import torch

    out = Path(out)
    spec = spec or TinySpec()
    model, processor = build_tiny_model(family, spec, corpus)
    if dtype is not None:
        model = model.to(getattr(torch, dtype))
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    info = {
        "family": family,
        "profile": get_family(family).profile,
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(processor.tokenizer),
        "spec": dataclasses.asdict(spec),
    }
    write_json(out / "mirg_tiny_model.json", info)
    return out
