"""icl-reproduce end to end at scale=smoke (a few training steps: the wiring, not the claims):
it trains, measures and writes reproduction.json and pages; a second call trains nothing and
prints the same table; a call killed outright mid-run, started again, ends with the same
table; training through a Hydra launcher gives the same records. And the committed result
pages are exactly what the committed reproduction.json regenerates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT

from icl_regression.reproduce.pages import write_pages

CLAIM = "claims=[oswald.loss_equals_gd,oswald.sensitivity_cosine]"
RESULTS = ROOT / "docs" / "results"


def reproduce(tmp: Path, *args: str, wait: bool = True):
    command = [sys.executable, "-m", "icl_regression.reproduce", "scale=smoke", CLAIM,
               f"root={tmp / 'runs'}", f"out={tmp / 'out'}", *args]
    if not wait:
        return subprocess.Popen(command, cwd=tmp, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    done = subprocess.run(command, cwd=tmp, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def table(tmp: Path) -> dict:
    result = json.loads((tmp / "out" / "reproduction.json").read_text())
    return {name: (c["spread"], c["verdict"]) for name, c in result["claims"].items()}


@pytest.mark.slow
def test_reproduce_then_again_trains_nothing_and_prints_the_same_table(tmp_path):
    first = reproduce(tmp_path)
    assert "to do: 2 jobs" in first and "oswald.loss_equals_gd" in first
    measured = table(tmp_path)
    assert set(measured) == {"oswald.loss_equals_gd", "oswald.sensitivity_cosine"}
    assert all(spread["mean"] is not None for spread, _ in measured.values())
    second = reproduce(tmp_path)
    assert "to do: 0 jobs" in second
    assert table(tmp_path) == measured
    assert second.split("claim ", 1)[1].split("[reproduce]")[0] == \
        first.split("claim ", 1)[1].split("[reproduce]")[0]
    pages = {p.name for p in (tmp_path / "out").glob("*.md")}
    assert pages == {"README.md", "oswald2022.md"}


@pytest.mark.slow
def test_killed_outright_and_started_again_ends_with_the_same_table(tmp_path):
    straight = tmp_path / "straight"
    straight.mkdir()
    reproduce(straight)
    killed = tmp_path / "killed"
    killed.mkdir()
    proc = reproduce(killed, wait=False)
    logs = killed / "runs" / "smoke" / "logs"
    deadline = time.time() + 300
    while not (logs.exists() and any(logs.iterdir())) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(3)  # the training child is running
    proc.send_signal(signal.SIGKILL)  # no cleanup in the parent; its child gets SIGTERM
    proc.wait()
    time.sleep(5)
    reproduce(killed)
    assert table(killed) == table(straight)


@pytest.mark.slow
def test_several_seeds_give_each_verdict_an_interval_over_seeds(tmp_path):
    """seeds=2: one run per seed, the spread over the training seeds (mean, Student-t interval
    around it), every seed's value on the page, and seed 1 reusing nothing of seed 0."""
    out = reproduce(tmp_path, "seeds=2")
    assert "to do: 4 jobs" in out
    result = json.loads((tmp_path / "out" / "reproduction.json").read_text())
    assert result["seeds"] == [0, 1] and len(result["runs"]) == 2
    for name, claim in result["claims"].items():
        spread, values = claim["spread"], [s["value"] for s in claim["per_seed"]]
        assert spread["over"] == "seeds" and spread["n_seeds"] == 2, name
        assert spread["mean"] == pytest.approx(sum(values) / 2), name
        assert spread["lo"] <= spread["mean"] <= spread["hi"], name
    page = (tmp_path / "out" / "oswald2022.md").read_text()
    assert "seeds=2" in page and "seed 0:" in page and "seed 1:" in page


@pytest.mark.slow
def test_training_through_a_hydra_launcher(tmp_path):
    out = reproduce(tmp_path, "launcher=submitit_local")
    assert "to do: 2 jobs" in out
    result = json.loads((tmp_path / "out" / "reproduction.json").read_text())
    run_dir = Path(next(iter(result["runs"].values()))["run_dir"])
    assert (run_dir / "checkpoints").is_dir() and (run_dir / "reproduce_done.json").exists()
    assert all(c["spread"]["mean"] is not None for c in result["claims"].values())


def test_result_pages_are_what_the_committed_records_regenerate(tmp_path):
    """No number on a result page can drift from reproduction.json: regenerating the pages from
    the committed record gives the committed pages, byte for byte (figures: pixel for pixel)."""
    from matplotlib.testing.compare import compare_images

    record = json.loads((RESULTS / "reproduction.json").read_text())
    written = write_pages(record, tmp_path)
    assert {p.name for p in written} == {p.name for p in RESULTS.glob("*.md")}
    for page in written:
        assert page.read_text() == (RESULTS / page.name).read_text(), page.name
    figures = sorted((tmp_path / "figures").glob("*.png"))
    assert [f.name for f in figures] == sorted(f.name for f in (RESULTS / "figures").glob("*.png"))
    for figure in figures:
        assert compare_images(str(RESULTS / "figures" / figure.name), str(figure), tol=2) is None


def test_every_claim_of_the_committed_run_is_on_its_page():
    record = json.loads((RESULTS / "reproduction.json").read_text())
    for name, claim in record["claims"].items():
        page = (RESULTS / f"{claim['paper']}.md").read_text()
        assert f"`{name}`" in page and f"**{claim['verdict']}**" in page


def test_pages_module_entry_point_rewrites_in_place(tmp_path):
    record = json.loads((RESULTS / "reproduction.json").read_text())
    (tmp_path / "reproduction.json").write_text(json.dumps(record))
    env = {**os.environ, "MPLBACKEND": "Agg"}
    subprocess.run([sys.executable, "-m", "icl_regression.reproduce.pages", str(tmp_path)],
                   check=True, env=env, timeout=300)
    assert (tmp_path / "README.md").read_text() == (RESULTS / "README.md").read_text()
