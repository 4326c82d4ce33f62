"""The load tester's parts that need no server: texts, numbers, verdicts, report and plots."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from samo_serve.loadtest.corpus import builtin_corpus, load_corpus
from samo_serve.loadtest.engine import LevelResult, LoadSpec, TextPicker
from samo_serve.loadtest.output import write_outputs
from samo_serve.loadtest.summary import summarize_level


def test_builtin_corpus_is_distinct_and_sized() -> None:
    texts = builtin_corpus()
    assert len(texts) == len(set(texts)) >= 1000


def test_corpus_formats(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one\n\ntwo\none\n", encoding="utf-8")
    (tmp_path / "b.tsv").write_text('"quoted, text"\t1\tid1\nplain\t2\tid2\n', encoding="utf-8")
    (tmp_path / "c.jsonl").write_text('{"text": "x"}\n{"text": "y"}\n', encoding="utf-8")
    assert load_corpus(tmp_path / "a.txt") == ["one", "two"]
    assert load_corpus(tmp_path / "b.tsv") == ["quoted, text", "plain"]
    assert load_corpus(tmp_path / "c.jsonl") == ["x", "y"]
    (tmp_path / "empty.txt").write_text("\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no texts"):
        load_corpus(tmp_path / "empty.txt")


@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.9])
def test_repeat_ratio_is_the_share_of_repeats(ratio: float) -> None:
    pick = TextPicker(builtin_corpus(), ratio, seed=3)
    texts = [pick() for _ in range(4000)]
    repeats = len(texts) - len(set(texts))
    assert repeats / len(texts) == pytest.approx(ratio, abs=0.03)


def test_a_corpus_that_runs_out_stays_fresh() -> None:
    pick = TextPicker(["a", "b"], 0.0)
    assert [pick() for _ in range(5)] == ["a", "b", "a (1)", "b (1)", "a (2)"]


def _level(statuses: dict[str, int], latencies: list[float], concurrency: int = 8) -> LevelResult:
    result = LevelResult(LoadSpec("http://x", concurrency=concurrency, requests=sum(statuses.values())))
    result.statuses = Counter(statuses)
    result.latencies_s = latencies
    result.elapsed_s = 2.0
    return result


def test_summary_numbers_and_verdicts() -> None:
    s = summarize_level(_level({"200": 99, "503": 1}, [0.01 * (i + 1) for i in range(99)]))
    assert (s["sent"], s["succeeded"], s["success_rate"]) == (100, 99, 0.99)
    assert s["throughput_rps"] == 49.5
    assert s["latency_ms"]["min"] == 10.0
    assert s["latency_ms"]["max"] == 990.0
    assert s["latency_ms"]["p50"] == 500.0
    assert s["verdicts"] == {"p95 < 500 ms": False, "success > 99%": False}
    assert s["statuses"] == {"200": 99, "503": 1}
    failed = summarize_level(_level({"ConnectError": 5}, []))
    assert failed["latency_ms"]["p95"] is None
    assert failed["success_rate"] == 0.0


def test_outputs_render(tmp_path: Path) -> None:
    levels = [
        summarize_level(_level({"200": 50}, [0.01 + 0.001 * i for i in range(50)], concurrency=c)) for c in (1, 8, 32)
    ]
    run = {"url": "http://x", "started_at": "now", "corpus": "built-in", "repeat_ratio": 0.0, "batch": 1,
           "bound": "50 requests per level", "p95_target_ms": 500.0, "levels": levels,
           "stress": {"degradation_at": 32, "max_sustainable": "c=8", "max_sustainable_rps": 25.0}}  # fmt: skip
    files = write_outputs(run, [[0.01] * 50] * 3, tmp_path)
    names = {f.name for f in files}
    assert names == {"results.json", "report.md", "throughput.png", "p95.png", "success.png", "latency_histogram.png"}
    for f in files:
        assert f.stat().st_size > 500
    report = (tmp_path / "report.md").read_text()
    assert "| c=8 |" in report
    assert "Degradation point: 32" in report
    assert json.loads((tmp_path / "results.json").read_text())["levels"][2]["concurrency"] == 32
