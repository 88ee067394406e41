"""The README's benchmark table is generated from bench/results/latest.json, never edited.

No timing is asserted here: the numbers are whatever the last ``make bench``
measured.  What is held is that the table in README.md is exactly what
``bench.report`` renders from the committed results, that every ratio
there carries its baseline, and that ``met`` follows from the value and the
goal rather than being typed in.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench import report
from bench.results import RESULTS_PATH, meets, ratio

pytestmark = pytest.mark.unit


def _results() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(RESULTS_PATH.read_text(encoding="utf-8"))
    return loaded


def test_the_readme_table_is_the_rendering_of_the_committed_results() -> None:
    readme = report.README.read_text(encoding="utf-8")
    assert report.current_block(readme) == report.render(_results()), (
        "README.md's benchmark table differs from bench/results/latest.json: "
        "run `python -m bench.report --write` (make bench does)"
    )
    assert report.main(["--check"]) == 0


def test_the_committed_results_say_what_was_measured_where() -> None:
    results = _results()
    assert len(results["git"]["commit"]) == 40
    assert results["machine"]["cpu_count"]
    keys = {entry["key"] for entry in results["ratios"]}
    # Every goal of issue 17 has its ratio in the full run.
    for key in (
        "age_seal_vs_raw",
        "age_open_vs_raw",
        "age_cli_encrypt_wall",
        "age_cli_decrypt_wall",
        "age_cli_encrypt_peak_rss",
        "age_cli_encrypt_rss_flat",
        "blob_upload_rss_flat",
        "blob_download_rss_flat",
        "api_overhead_tokens",
        "api_overhead_cards_50",
    ):
        assert key in keys, key
    for entry in results["ratios"]:
        assert entry["baseline"], entry["key"]
        if entry["goal"] is not None:
            assert entry["met"] == meets(entry["value"], entry["goal"]), entry["key"]


def test_met_follows_the_goal() -> None:
    assert meets(1.0, "<= 1.0")
    assert not meets(1.001, "<= 1.0")
    assert meets(0.95, ">= 0.95")
    assert not meets(0.949, ">= 0.95")
    with pytest.raises(ValueError, match="goal"):
        meets(1.0, "about 1")
    entry = ratio("k", "what", 1.2345, ours="1 s", baseline="b 1 s", goal="<= 1.0")
    assert entry["value"] in (1.234, 1.235)
    assert entry["met"] is False
    assert ratio("k", "what", 2.0, ours="x", baseline="y")["met"] is None


def test_render_escapes_cells_and_marks_unmet_goals() -> None:
    results = {
        "started": "2026-01-01T00:00:00Z",
        "machine": {
            "cpu_count": 2,
            "cpu_model": "Test CPU",
            "python": "3.11.7",
            "cryptography": "50.0.2",
            "load_average_at_start": [1.0, 2.0, 3.0],
        },
        "git": {"commit": "a" * 40, "dirty": True},
        "ratios": [
            ratio("a", "x | y", 0.5, ours="1 s", baseline="2 s", goal=">= 0.9"),
            ratio("b", "z", 2.0, ours="3", baseline="4"),
        ],
    }
    block = report.render(results)
    assert block.startswith(report.BEGIN)
    assert block.endswith(report.END)
    assert "| x \\| y | 0.500 | >= 0.9 | **no** | 1 s | 2 s |" in block
    assert "| z | 2.000 | - | - | 3 | 4 |" in block
    assert "aaaaaaaaaaaa (with uncommitted changes)" in block
    text = f"before\n{report.BEGIN}\nold\n{report.END}\nafter\n"
    assert report.replace_block(text, block) == f"before\n{block}\nafter\n"
    with pytest.raises(ValueError, match="markers"):
        report.replace_block("no markers here", block)
