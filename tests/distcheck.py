"""Check that a multi-process ``mirg train`` run really is data-parallel (a test tool).

A misconfigured launcher fails silently: ``accelerate launch --num_processes 2 --cpu``
without an MPI host file starts *one* process, a wrong backend trains N independent
copies, and every rank may write the same checkpoint. This runs ``mirg train`` with one
callback added, so that each rank records, per optimizer step, a digest of its gradients
(after DDP's all-reduce) and of its parameters, a digest of the first inputs it saw, and
every file it wrote under ``output_dir``; ``verify`` then compares the ranks::

    accelerate launch --config_file recipes/accelerate/cpu_ddp.yaml tests/distcheck.py \
        --record runs/check -- train sft --config recipes/tiny/sft.yaml --max_steps 2
    python tests/distcheck.py verify runs/check

Everything after ``--`` is ``mirg``'s own command line. It lives in ``tests/``, not in
the package, because recording the writes patches ``torch.save`` and safetensors'
``save_file`` for the whole process. For GRPO on a random-init model, name the hashed
rewards of ``tests/hash_rewards.py`` (``--rewards hash_rewards.object_reward …``): every
real reward is 0 there, so advantages and gradients would be exactly 0 and prove nothing.
Under DeepSpeed the gradients live in DeepSpeed's buffers, so only parameters are
compared (gathered first under ZeRO-3), and each rank's ZeRO shard files are expected.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import hashlib
import json
import os
import sys
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

# Files every rank legitimately writes (fnmatch patterns on the file name): its own RNG
# state in each checkpoint and, under DeepSpeed ZeRO, its shard of the optimizer (and, for
# ZeRO-3, model) states.
PER_RANK_FILES = (
    "rng_state_{rank}.pth",
    "zero_pp_rank_{rank}_mp_rank_*_optim_states.pt",
    "zero_pp_rank_{rank}_mp_rank_*_model_states.pt",
    "bf16_zero_pp_rank_{rank}_mp_rank_*_optim_states.pt",
)


def _digest_tensors(named: list[tuple[str, Any]]) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(named, key=lambda kv: kv[0]):
        h.update(name.encode())
        import torch

        raw = tensor.detach().to("cpu").contiguous().view(-1).view(torch.uint8)
        h.update(raw.numpy().tobytes())
    return h.hexdigest()[:16]


def _gathered(params: list) -> Any:
    """ZeRO-3 keeps a shard of each large parameter per rank: gather them to compare."""
    partitioned = [p for p in params if hasattr(p, "ds_id")]
    if not partitioned:
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(partitioned, modifier_rank=None)


class _Recorder:
    """Per-rank record, dumped to ``<record>/rank<R>.json`` when the process exits."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.rank = int(os.environ.get("RANK", "0"))
        self.data: dict[str, Any] = {
            "rank": self.rank,
            "world_size": int(os.environ.get("WORLD_SIZE", "1")),
            "backend": None,
            "output_dir": None,
            "first_input": None,
            "steps": [],
            "writes": [],
            "exit": None,
        }
        self._writes: list[str] = []

    def wrote(self, path: object) -> None:
        if isinstance(path, (str, bytes, os.PathLike)):
            self._writes.append(os.path.abspath(os.fsdecode(path)))

    def dump(self) -> None:
        out_dir = self.data["output_dir"]
        if out_dir:
            root = os.path.abspath(out_dir)
            self.data["writes"] = [
                os.path.relpath(p, root) for p in self._writes if p.startswith(root + os.sep)
            ]
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"rank{self.rank}.json").write_text(json.dumps(self.data, indent=1) + "\n")


def _watch_writes(recorder: _Recorder) -> None:
    """Record files opened for writing: Python ``open``, safetensors and ``torch.save``."""
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND

    def hook(event: str, args: tuple) -> None:
        if event != "open" or not args:
            return
        path, mode, flags = (*tuple(args), None, None, None)[:3]
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & write_flags
        )
        if writing:
            recorder.wrote(path)

    sys.addaudithook(hook)
    # safetensors writes from Rust, out of the audit hook's sight; transformers imports
    # save_file by name, so this must run before transformers is imported.
    import safetensors.torch

    original = safetensors.torch.save_file

    def save_file(tensors: Any, filename: Any, *args: Any, **kwargs: Any) -> Any:
        recorder.wrote(filename)
        return original(tensors, filename, *args, **kwargs)

    safetensors.torch.save_file = save_file
    # torch.save opens its file from C++ as well (optimizer, scheduler, RNG states).
    import torch

    original_save = torch.save

    def torch_save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> Any:
        recorder.wrote(f)
        return original_save(obj, f, *args, **kwargs)

    torch.save = torch_save


def _callback(recorder: _Recorder) -> Any:
    from transformers import TrainerCallback

    class DistCheckCallback(TrainerCallback):
        """Digests of gradients (post all-reduce) and parameters at every optimizer step."""

        def __init__(self) -> None:
            self._grads: str | None = None

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            import torch.distributed as dist

            recorder.data["output_dir"] = args.output_dir
            if dist.is_available() and dist.is_initialized():
                recorder.data["backend"] = str(dist.get_backend())
                recorder.data["world_size"] = dist.get_world_size()

            def first_input(module, a, kw):
                ids = kw.get("input_ids") if kw else None
                if ids is None and a:
                    ids = a[0]
                if recorder.data["first_input"] is None and ids is not None:
                    recorder.data["first_input"] = _digest_tensors([("input_ids", ids)])

            if model is not None:
                model.register_forward_pre_hook(first_input, with_kwargs=True)

        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            grads = [(n, p.grad) for n, p in model.named_parameters() if p.grad is not None]
            self._grads = _digest_tensors(grads) if grads else None

        def on_step_end(self, args, state, control, model=None, **kwargs):
            params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
            with _gathered([p for _, p in params]):
                digest = _digest_tensors(params)
            recorder.data["steps"].append(
                {"step": state.global_step, "grads": self._grads, "params": digest}
            )

    return DistCheckCallback()


def run_recorded(record: str | Path, argv: list[str]) -> int:
    """Run ``mirg train STAGE OPTIONS…`` (``argv``) with the recording callback added."""
    recorder = _Recorder(Path(record))
    atexit.register(recorder.dump)
    _watch_writes(recorder)  # before transformers imports safetensors' save_file
    from mirg.train.cli import train

    if argv[:1] != ["train"] or len(argv) < 2:
        raise SystemExit(f"expected: -- train sft|grpo [options], got {argv}")
    code = train(argv[1], argv[2:], callbacks=[_callback(recorder)])
    recorder.data["exit"] = code
    return code


def verify(record: str | Path) -> list[str]:
    """Problems found across the ranks' records (empty when the run was data-parallel)."""
    record = Path(record)
    ranks = sorted(
        (json.loads(p.read_text()) for p in record.glob("rank*.json")), key=lambda r: r["rank"]
    )
    if not ranks:
        return [f"no rank records in {record}"]
    problems = []
    world = ranks[0]["world_size"]
    if world < 2:
        problems.append(f"world size {world}: the launcher started a single process")
    if [r["rank"] for r in ranks] != list(range(world)):
        problems.append(f"records for ranks {[r['rank'] for r in ranks]}, world size {world}")
    for r in ranks:
        if r["exit"] != 0:
            problems.append(f"rank {r['rank']} exited with {r['exit']}")
        if not r["steps"]:
            problems.append(f"rank {r['rank']} took no optimizer step")
    steps = [[s["step"] for s in r["steps"]] for r in ranks]
    if any(s != steps[0] for s in steps):
        problems.append(f"ranks took different steps: {steps}")
    for i, step in enumerate(ranks[0]["steps"]):
        for key in ("grads", "params"):
            values = {r["rank"]: r["steps"][i][key] for r in ranks if i < len(r["steps"])}
            if key == "grads" and set(values.values()) == {None}:
                continue  # DeepSpeed keeps gradients in its own buffers; params still compared
            if len(set(values.values())) != 1:
                problems.append(f"step {step['step']}: {key} differ across ranks {values}")
    params = [s["params"] for s in ranks[0]["steps"]]
    if len(params) > 1 and len(set(params)) == 1:
        problems.append("parameters never changed between steps")
    inputs = [r["first_input"] for r in ranks]
    if len(ranks) > 1 and len(set(inputs)) != len(inputs):
        problems.append(f"ranks saw the same first inputs {inputs}: the data is not sharded")
    main_writes = ranks[0]["writes"]
    for r in ranks[1:]:
        own = [f.format(rank=r["rank"]) for f in PER_RANK_FILES]
        extra = [w for w in r["writes"] if not any(fnmatch(os.path.basename(w), p) for p in own)]
        if extra:
            problems.append(f"rank {r['rank']} wrote {extra} (only the main process should)")
    saved = [w for w in main_writes if w.endswith(".safetensors")]
    if not saved:
        problems.append("the main process wrote no safetensors checkpoint")
    duplicates = sorted({w for w in saved if saved.count(w) > 1})
    if duplicates:
        problems.append(f"written more than once: {duplicates}")
    return problems


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["verify"]:
        parser = argparse.ArgumentParser(prog="python tests/distcheck.py verify")
        parser.add_argument("record", help="folder given as --record to the run")
        args = parser.parse_args(argv[1:])
        problems = verify(args.record)
        for problem in problems:
            print(f"FAIL: {problem}")
        if not problems:
            ranks = sorted(Path(args.record).glob("rank*.json"))
            print(f"OK: {len(ranks)} ranks stepped in lockstep with identical gradients/weights")
        return 1 if problems else 0
    parser = argparse.ArgumentParser(
        prog="python tests/distcheck.py",
        description="run 'mirg train …' recording per-rank digests (then: … verify RECORD)",
    )
    parser.add_argument("--record", required=True, help="folder for the per-rank records")
    parser.add_argument("mirg_args", nargs=argparse.REMAINDER, help="-- then mirg's arguments")
    args = parser.parse_args(argv)
    rest = args.mirg_args[1:] if args.mirg_args[:1] == ["--"] else args.mirg_args
    return run_recorded(args.record, rest)


if __name__ == "__main__":
    raise SystemExit(main())
