"""``mirg convert`` over the readers table: a reader defined outside mirg
(``tests/plugins/mirg_toys/reader.py``, a CSV of image,question,box rows) named by dotted
path with its own ``--option``s, and MIG-Bench as a built-in format."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from mirg.cli import main
from mirg.core.rewards import score_completion
from mirg.data.readers import READERS, get_reader
from mirg.data.schema import read_samples
from mirg.data.trajectories import build_trajectory
from mirg.errors import MirgError

REPO = Path(__file__).resolve().parents[1]
PLUGINS = REPO / "tests" / "plugins"
TOY = "mirg_toys.reader.READER"

ROWS = """image,question,x1,y1,x2,y2
pics/a.png,Locate the red square in Image-1.,20,10,100,50
pics/b.png,Locate the blue circle in Image-1.,0,0,50,25
pics/a.png,Locate the moon in Image-1.,150,10,260,50
"""


@pytest.fixture
def rows(tmp_path, monkeypatch) -> Path:
    monkeypatch.syspath_prepend(str(PLUGINS))
    (tmp_path / "pics").mkdir()
    Image.new("RGB", (200, 100), (120, 120, 120)).save(tmp_path / "pics" / "a.png")
    Image.new("RGB", (100, 50), (120, 120, 120)).save(tmp_path / "pics" / "b.png")
    path = tmp_path / "rows.csv"
    path.write_text(ROWS)
    return path


def convert(source: Path, out: Path, *extra: str) -> int:
    return main(["convert", "--format", TOY, "--input", str(source), "--out", str(out), *extra])


def test_a_reader_outside_mirg_converts_to_valid_samples(rows, tmp_path, capsys):
    out = tmp_path / "toy.jsonl"
    assert convert(rows, out, "--option", "task=referring", "--skip-bad") == 0
    summary = capsys.readouterr().out
    assert f"wrote 2 samples to {out} from 3 records" in summary
    assert "left out 1 row: bad record 1" in summary  # the reader's unit, from its record
    assert "rows.csv:4: field 'box'" in Path(f"{out}.skipped.log").read_text()  # x2 = 260 > 200
    samples = read_samples(out, root=tmp_path, check_images="decode")
    assert [s.id for s in samples] == ["rows-2", "rows-3"]
    assert [s.task for s in samples] == ["referring", "referring"]
    assert list(samples[0].target_box) == [0.1, 0.1, 0.5, 0.5]
    assert list(samples[1].target_box) == [0.0, 0.0, 0.5, 0.5]
    for s in samples:  # usable as any reader's samples: the trajectory earns full reward
        text = build_trajectory(s, "qwen2-vl")
        reward = score_completion(text, s.target_image, s.target_box, profile="qwen2-vl")
        assert (reward.object, reward.image, reward.format) == (1.0, 1.0, 1.0), text


def test_a_readers_own_options_and_errors(rows, tmp_path, capsys):
    out = tmp_path / "toy.jsonl"
    # Without --skip-bad the bad row stops the command with file, line and field.
    assert convert(rows, out) == 2
    assert "rows.csv:4: field 'box'" in capsys.readouterr().err
    # Relative units: the pixel rows now lie outside 0..1.
    assert convert(rows, out, "--option", "units=relative") == 2
    assert "rows.csv:2: field 'box'" in capsys.readouterr().err
    # An option the reader does not declare is refused, naming those it takes.
    assert convert(rows, out, "--option", "colour=red") == 2
    assert f"--format {TOY} takes no --option colour (its options: units, task)" in (
        capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        convert(rows, out, "--option", "units")  # not KEY=VALUE
    assert "expected KEY=VALUE" in capsys.readouterr().err
    assert not out.exists()


def test_a_reader_may_need_one_of_its_own_options(rows, tmp_path, capsys, monkeypatch):
    """``needs`` may name a reader's --option key: missing, it is asked for in one line."""
    from dataclasses import replace

    import mirg_toys.reader as toy

    monkeypatch.setattr(toy, "STRICT", replace(toy.READER, needs=("input", "units")), raising=False)
    out = tmp_path / "toy.jsonl"
    argv = ["convert", "--format", "mirg_toys.reader.STRICT", "--input", str(rows), "--out"]
    assert main([*argv, str(out)]) == 2
    assert "needs --option units=…" in capsys.readouterr().err and not out.exists()
    assert main([*argv, str(out), "--option", "units=pixels", "--skip-bad"]) == 0


def test_format_names_a_reader_record():
    assert get_reader("llava").needs == ("input", "profile")
    assert set(READERS) == {"mgrounding", "llava", "refcoco", "coco-captions", "migbench"}
    with pytest.raises(MirgError, match=r"'mirg\.data\.readers\.get_reader' is function, not a"):
        get_reader("mirg.data.readers.get_reader")
    with pytest.raises(MirgError, match=r"reader 'no_such\.READER' cannot be imported"):
        get_reader("no_such.READER")
    with pytest.raises(MirgError, match=r"readers must be built-in names \(mgrounding, llava"):
        get_reader("csv")


def test_a_reader_outside_mirg_through_the_command_line(rows, tmp_path):
    """As a user runs it: a fresh process, the package on PYTHONPATH, nothing in mirg edited."""
    out = tmp_path / "toy.jsonl"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PLUGINS), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "mirg", "convert", "--format", TOY, "--input", str(rows)]
    command += ["--option", "task=spotting", "--skip-bad", "--out", str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "wrote 2 samples" in done.stdout
    assert {s.task for s in read_samples(out, root=tmp_path)} == {"spotting"}


def test_migbench_is_a_convert_format(tmp_path, capsys):
    item = {"task": "region", "images": ["./MIG-Bench/a.jpg", "./MIG-Bench/b.jpg"]}
    items = [
        item
        | {"question": "Locate the region of Image-2 in Image-1.", "answer": [0.1, 0.1, 0.2, 0.2]},
        item | {"question": "Locate it in Image-1.", "answer": [0.5, 0.5, 0.2, 0.2]},  # inverted
    ]
    source = tmp_path / "MIG_data.json"
    source.write_text(json.dumps(items))
    out = tmp_path / "mig.jsonl"
    args = ["convert", "--format", "migbench", "--input", str(source), "--out", str(out)]
    assert main(args) == 2
    assert "MIG_data.json: item 1: field 'answer'" in capsys.readouterr().err
    assert main([*args, "--skip-bad"]) == 0
    assert "wrote 1 samples" in capsys.readouterr().out
    (sample,) = read_samples(out, root=tmp_path, check_images="none")
    assert sample.id == "migbench-0" and sample.images == ["MIG-Bench/a.jpg", "MIG-Bench/b.jpg"]
    assert sample.target_image == 1 and sample.meta["annotations"] == "target_only"
    # With the images present, their sizes are read from the headers.
    (tmp_path / "MIG-Bench").mkdir()
    for name, size in (("a.jpg", (64, 48)), ("b.jpg", (32, 32))):
        Image.new("RGB", size).save(tmp_path / "MIG-Bench" / name)
    assert main([*args, "--skip-bad", "--image-sizes", "--check-images", "exists"]) == 0
    (sample,) = read_samples(out, root=tmp_path)
    assert sample.image_sizes == [[64, 48], [32, 32]]
