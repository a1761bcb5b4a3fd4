"""The README's PyTorch table is what benchmarks/vs_pytorch.py renders from the committed JSON
(nobody types its numbers), and the ratios in that JSON are the medians of its own rounds."""

from __future__ import annotations

import importlib.util
import json
import statistics
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "vs_pytorch.json"


@pytest.fixture(scope="module")
def vs_pytorch():
    """The script as a module (it imports neither jax nor torch at the top)."""
    spec = importlib.util.spec_from_file_location("vs_pytorch", ROOT / "benchmarks" /
                                                  "vs_pytorch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def result() -> dict:
    return json.loads(RESULT.read_text())


def test_readme_table_is_the_rendering_of_the_committed_json(vs_pytorch, result):
    begin, end = vs_pytorch.README_MARKERS
    block = (ROOT / "README.md").read_text().split(begin, 1)[1].split(end, 1)[0]
    assert block.strip() == vs_pytorch.render(result).strip()


def test_both_shapes_and_both_references_are_in_the_result(result):
    rows = {row["config"]: row for row in result["rows"]}
    assert set(rows) == {"small", "paper"}
    for row in rows.values():
        assert {"jax", "eager", "compiled", "standalone"} <= set(row["rounds"][0])
        assert len(row["rounds"]) == result["meta"]["rounds"] >= 3


@pytest.mark.parametrize("ratio, numerator, denominator", [
    ("vs_eager", "jax", "eager"), ("vs_compiled", "jax", "compiled"),
    ("ref_vs_standalone", "eager", "standalone")])
def test_ratios_are_medians_and_spreads_of_the_rounds(result, ratio, numerator, denominator):
    for row in result["rows"]:
        per_round = [r[numerator] / r[denominator] for r in row["rounds"]]
        assert row[ratio]["median"] == pytest.approx(statistics.median(per_round))
        assert (row[ratio]["min"], row[ratio]["max"]) == pytest.approx(
            (min(per_round), max(per_round)))


def test_write_readme_replaces_only_the_marked_block(vs_pytorch, result, tmp_path):
    begin, end = vs_pytorch.README_MARKERS
    readme = tmp_path / "README.md"
    readme.write_text(f"# top\n\n{begin}\nold table\n{end}\n\n## after\n")
    vs_pytorch.write_readme(result, readme)
    vs_pytorch.write_readme(result, readme)  # idempotent
    text = readme.read_text()
    assert "old table" not in text and text.startswith("# top\n") and text.endswith("## after\n")
    assert text.count(begin) == 1 and vs_pytorch.render(result) in text
    readme.write_text("no markers here\n")
    with pytest.raises(SystemExit, match="markers"):
        vs_pytorch.write_readme(result, readme)
    assert readme.read_text() == "no markers here\n"
