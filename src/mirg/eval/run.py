"""``mirg eval``: generate answers for a benchmark, score them, write the report.

The output folder holds ``run.json`` (what produced it), ``predictions.jsonl`` (written line
by line as answers come, the format ``mirg score`` reads), ``metrics.json`` (the
benchmark's scorer: :mod:`mirg.eval.benchmarks`), ``report.html`` and the benchmark's own
files (MC-Bench's ``mcbench_results.json``). Rerunning over the same folder resumes: items
already predicted are skipped, and a line cut short by a killed run is discarded and
predicted again, so every item ends with exactly one line. ``run.json`` also makes a
folder mirg eval's own (:func:`claim_output`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from mirg.core.scoring import PROTOCOLS, read_predictions
from mirg.data.schema import DataError, check_image, read_json
from mirg.errors import MirgError, shown
from mirg.eval.benchmarks import (
    BENCHMARKS,
    EvalItem,
    GroundingBenchmark,
    get_benchmark,
    load_eval_items,
)
from mirg.eval.generation import (
    BACKENDS,
    OFFICIAL_MAX_NEW_TOKENS,
    PROMPTS,
    REASONING_MAX_NEW_TOKENS,
    HFGenerator,
    VLLMGenerator,
    answer_batch,
    batches_by_shape,
    image_sizes,
    prompt_tokens,
    vllm_engine_args,
)
from mirg.files import check_free, fingerprint, folder_lock, write_json
from mirg.outputs import claim_folder

PREDICTIONS, METRICS, RUN, REPORT = "predictions.jsonl", "metrics.json", "run.json", "report.html"
#: Every file a run writes at the top of its folder (besides the lock and the benchmark's own).
WRITES = (RUN, PREDICTIONS, METRICS, REPORT)


@dataclass
class EvalConfig:
    model: str
    data: str
    out: str
    bench: str | None = None  # a benchmark's name or dotted path; None: the one recognising data
    images: str | None = None
    protocol: str = "strict"
    prompt: str = "reasoning"
    backend: str = "hf"
    batch_size: int = 16
    tasks: list[str] | None = None
    limit: int | None = None
    max_new_tokens: int | None = None  # None: 128 for the official prompt, 1024 otherwise
    profile: str | None = None  # None: the model family's profile
    min_pixels: int | None = None
    max_pixels: int | None = None
    device: str = "auto"  # auto: CUDA when present
    dtype: str = "auto"  # auto: bfloat16 on a GPU, float32 on the CPU
    attention: str = "auto"  # auto: flash_attention_2 where installed on a GPU, else sdpa
    tensor_parallel_size: int = 1  # vllm
    gpu_memory_utilization: float = 0.9  # vllm
    max_model_len: int | None = None  # vllm; None: the longest prompt plus max_new_tokens
    overwrite: bool = False  # start afresh in a folder holding another run or other files
    extra: dict[str, Any] = field(default_factory=dict)  # recorded in run.json only

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("protocol", self.protocol, PROTOCOLS),
            ("prompt", self.prompt, PROMPTS),
            ("backend", self.backend, BACKENDS),
        ):
            if value not in allowed:
                raise MirgError(f"unknown {name} {shown(value)}; known: {', '.join(allowed)}")
        if self.batch_size < 1:
            raise MirgError(f"batch size must be at least 1, got {self.batch_size}")
        if self.max_new_tokens is None:
            self.max_new_tokens = (
                OFFICIAL_MAX_NEW_TOKENS if self.prompt == "official" else REASONING_MAX_NEW_TOKENS
            )

    def benchmark(self) -> GroundingBenchmark:
        return get_benchmark(self.bench, self.data)

    def writes(self) -> tuple[str, ...]:
        """The files a mirg eval run may write at the top of a folder: its own and those of
        every built-in benchmark and of this run's (a folder holding any is claimed)."""
        benches = [*(get_benchmark(name, self.data) for name in BENCHMARKS), self.benchmark()]
        return tuple(dict.fromkeys([*WRITES, *(f for b in benches for f in b.writes)]))

    def identity(self) -> dict[str, Any]:
        """What makes predictions comparable: the same model and data (paths and contents),
        benchmark (when named: older folders have none), images, prompt and decoding."""
        named = {"bench": self.bench} if self.bench else {}
        return {
            **named,
            "model": str(Path(self.model).resolve()) if Path(self.model).exists() else self.model,
            "model_fingerprint": fingerprint(self.model),
            "data": str(Path(self.data).resolve()),
            "data_fingerprint": fingerprint(self.data),
            "images": str(Path(self.images).resolve()) if self.images else None,
            "prompt": self.prompt,
            "profile": self.profile,
            "max_new_tokens": self.max_new_tokens,
            "min_pixels": self.min_pixels,
            "max_pixels": self.max_pixels,
            "dtype": self.dtype,
        }


def _clear_run(out: Path, cfg: EvalConfig) -> None:
    """Remove what a run writes in ``out`` (``--overwrite``: start afresh), nothing else."""
    for name in cfg.writes():
        (out / name).unlink(missing_ok=True)


def claim_output(out: Path, cfg: EvalConfig) -> None:
    """Refuse ``out`` when it holds files mirg eval did not write (no ``run.json`` of its
    own: a mapping with an ``identity``) that a run would replace, unless ``--overwrite``,
    which removes them first so no foreign predictions are resumed."""
    try:
        record = json.loads((out / RUN).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = None
    ours = isinstance(record, dict) and isinstance(record.get("identity"), dict)
    if not ours and (out / PREDICTIONS).exists() and not cfg.overwrite:
        raise MirgError(
            f"{out} holds {PREDICTIONS} without a {RUN} of mirg eval: cannot tell which model "
            "made them; use a new --out folder, or pass --overwrite to start afresh there"
        )
    if claim_folder(
        out,
        command="mirg eval",
        record=RUN,
        ours=ours,
        writes=cfg.writes(),
        overwrite=cfg.overwrite,
    ):
        _clear_run(out, cfg)


def _check_same_run(out: Path, cfg: EvalConfig) -> None:
    """Refuse to mix predictions of another model, benchmark or prompt into ``out``
    (``--overwrite``: remove them and start afresh)."""
    run_file = out / RUN
    if not run_file.is_file():
        return
    before = read_json(run_file, "evaluation record").get("identity", {})
    now = cfg.identity()
    diff = {k: (before.get(k), now[k]) for k in now if before.get(k) != now[k]}
    if diff and cfg.overwrite:
        _clear_run(out, cfg)
    elif diff:
        detail = "; ".join(f"{k}: {shown(a)} before, {shown(b)} now" for k, (a, b) in diff.items())
        raise MirgError(
            f"{out} holds predictions from another run ({detail}); refusing to mix them. "
            "Use a new --out folder, or pass --overwrite to start afresh there"
        )


def repair_predictions(path: Path) -> int:
    """Drop a last line cut short by a killed run; returns the bytes removed."""
    if not path.is_file():
        return 0
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    with path.open("r+b") as fh:
        fh.truncate(keep)
    return len(data) - keep


def score_run(out: Path, items: Sequence[EvalItem], protocol: str, profile: str) -> dict:
    """metrics.json from predictions.jsonl, by the items' benchmark (as ``mirg score``
    scores), with how many answers were cut at the token limit (``truncated``)."""
    predictions = read_predictions(out / PREDICTIONS)
    metrics = items[0].benchmark.score(items, predictions, protocol, profile, out)
    lines = (out / PREDICTIONS).read_text(encoding="utf-8").splitlines()
    metrics["truncated"] = sum(bool(json.loads(x).get("truncated")) for x in lines if x.strip())
    write_json(out / METRICS, metrics)
    return metrics


def preflight(items: Sequence[EvalItem], show: int = 5) -> dict[str, tuple[int, int]]:
    """Check that every image exists and decodes within the pixel limit of the data
    pipeline, before the first generation.

    Returns each image's (width, height). Raises FileNotFoundError with the count and the
    first few bad paths (one line), rather than a crash an hour into the run.
    """
    sizes: dict[str, tuple[int, int]] = {}
    bad: list[str] = []
    for path in sorted({p for it in items for p in it.images}):
        if not Path(path).exists() and not Path(path).is_symlink():
            bad.append(f"{path} (missing)")
            continue
        try:
            size = check_image(Path(path), path, "decode")
        except DataError as exc:
            reason = str(exc).removeprefix(f"{path}: ")
            for prefix in ("image", "image path", "image file"):
                reason = reason.removeprefix(f"{prefix} {path} ")
            bad.append(f"{path} ({reason})")
            continue
        assert size is not None  # "decode" always measures
        sizes[path] = size
    if bad:
        listed = "; ".join(bad[:show])
        raise FileNotFoundError(
            f"{len(bad)} of {len(sizes) + len(bad)} images are missing or unreadable; "
            f"first {min(show, len(bad))}: {listed}"
        )
    return sizes


def evaluate(cfg: EvalConfig, loaded: Any = None, progress: bool = True) -> dict:
    """Run the evaluation described by ``cfg``; returns the metrics.

    ``loaded`` (a ``mirg.models.loading.LoadedModel``) reuses a model already in memory,
    as the demo does between stages. One run at a time writes an output folder.
    """
    out = Path(cfg.out)
    check_free(out)  # a run in progress is named first
    if not cfg.overwrite:  # refuse before the lock file is made in a folder not ours
        claim_output(out, cfg)
    with folder_lock(out, f"mirg eval of {cfg.model}"):
        return _evaluate(cfg, loaded, progress)


def _evaluate(cfg: EvalConfig, loaded: Any, progress: bool) -> dict:
    from tqdm.auto import tqdm

    from mirg.models.loading import (
        find_family,
        load_model_and_processor,
        load_processor,
        resolve_profile,
    )

    out = Path(cfg.out)
    claim_output(out, cfg)
    items = load_eval_items(cfg.data, cfg.images, cfg.tasks, cfg.limit, cfg.bench)
    if not items:
        raise MirgError(f"{cfg.data}: no items to evaluate")
    bench = items[0].benchmark
    bench.check(Path(cfg.data), items, cfg.prompt, preflight(items))
    out.mkdir(parents=True, exist_ok=True)
    _check_same_run(out, cfg)
    pred_path = out / PREDICTIONS
    repair_predictions(pred_path)
    done = read_predictions(pred_path) if pred_path.exists() else {}
    keys = {it.key for it in items}
    stray = [k for k in done if k not in keys]
    if stray:
        raise MirgError(
            f"{pred_path} has predictions for items not in this run (e.g. {stray[:3]}); "
            "use a new --out folder"
        )
    todo = [it for it in items if it.key not in done]

    if loaded is None and todo and cfg.backend == "hf":
        from mirg.models.placement import placement_kwargs

        loaded = load_model_and_processor(
            cfg.model,
            profile=cfg.profile,
            min_pixels=cfg.min_pixels,
            max_pixels=cfg.max_pixels,
            **placement_kwargs(cfg.device, cfg.dtype, cfg.attention),
        )
    if loaded is None:
        processor = load_processor(cfg.model, min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels)
        profile = resolve_profile(find_family(cfg.model), cfg.profile, what=cfg.model)
    else:
        processor, profile = loaded.processor, loaded.profile

    run = {"identity": cfg.identity(), "config": asdict(cfg), "profile_used": profile.name}
    write_json(out / RUN, run)

    msgs = {it.key: bench.messages(it, cfg.prompt, profile) for it in todo}
    max_new_tokens = cfg.max_new_tokens or REASONING_MAX_NEW_TOKENS
    lengths = {
        it.key: prompt_tokens(processor, msgs[it.key], image_sizes(it.images)) for it in todo
    }
    generator: Any = None
    batch_size = cfg.batch_size
    if todo and cfg.backend == "vllm":
        engine = vllm_engine_args(
            cfg.model,
            processor,
            max_images=max(len(it.images) for it in todo),
            max_model_len=cfg.max_model_len or max(lengths.values()) + max_new_tokens,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            tensor_parallel_size=cfg.tensor_parallel_size,
        )
        generator = VLLMGenerator(processor, max_new_tokens, engine)
        batch_size = len(todo)  # the engine schedules the whole set itself
    elif todo:
        generator = HFGenerator(loaded.model, processor, max_new_tokens)

    desc = f"eval {Path(cfg.data).name}"
    bar = tqdm(total=len(todo), disable=not progress or not todo, desc=desc, unit="item")
    t0 = time.perf_counter()
    with _appending(pred_path) as fh:
        for batch in batches_by_shape(todo, batch_size, lambda it: lengths[it.key]):
            for record in answer_batch(generator, processor, batch, [msgs[it.key] for it in batch]):
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            bar.update(len(batch))
    bar.close()
    seconds = time.perf_counter() - t0

    metrics = score_run(out, items, cfg.protocol, profile.name)
    run["last_run"] = {"predicted": len(todo), "resumed_from": len(done), "seconds": seconds}
    write_json(out / RUN, run)
    from mirg.eval.report import write_report

    write_report(out)
    return metrics


@contextmanager
def _appending(path: Path) -> Iterator[IO]:
    """Append predictions line by line (a killed run keeps what it wrote); a disk error
    names the file."""
    try:
        with path.open("a", encoding="utf-8") as handle:
            yield handle
    except OSError as exc:
        if exc.filename is not None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
