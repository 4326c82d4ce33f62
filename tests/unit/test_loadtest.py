"""The load tester's parts, no server: texts, the engine over an in-process app (and the drills' use of it),
numbers, verdicts, report and plots."""

from __future__ import annotations

import functools
import json
from collections import Counter
from pathlib import Path

import httpx
import pytest

from samo_serve.core.segments import split_text
from samo_serve.core.tokenizer import TextTokenizer
from samo_serve.loadtest import engine
from samo_serve.loadtest.corpus import builtin_corpus, entry_picker, load_corpus
from samo_serve.loadtest.engine import LevelResult, LoadSpec, TextPicker, run_level
from samo_serve.loadtest.output import write_outputs
from samo_serve.loadtest.summary import summarize_level
from testkit import drills


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


def test_corpus_from_a_goemotions_folder(tmp_path: Path) -> None:
    splits = {"test": "t1\t0\ta\nshared\t1\tb\n", "dev": "shared\t1\tc\nd1\t2\td\n", "train": "r1\t0\te\n"}
    for split, rows in splits.items():
        (tmp_path / f"{split}.tsv").write_text(rows, encoding="utf-8")
    assert load_corpus(tmp_path) == ["t1", "shared", "d1", "r1"]  # test split first, each text once


def test_unique_texts_never_repeat_within_or_across_pickers() -> None:
    first, second = TextPicker(["a", "b"], 0.0, unique=True), TextPicker(["a", "b"], 0.0, unique=True)
    texts = [first() for _ in range(5)] + [second() for _ in range(5)]
    assert len(set(texts)) == 10
    assert [t.split(" #")[0] for t in texts[:5]] == ["a", "b", "a", "b", "a"]  # the corpus, in order


@pytest.mark.parametrize("unique", [True, False])
def test_entries_are_read_as_their_sentences(tokenizer: TextTokenizer, unique: bool) -> None:
    # two texts, so the corpus runs out and TextPicker numbers them: "Bye! (3)" still reads as one sentence
    corpus = ["I love this song, it takes me back to the summer at the lake", "Bye!"]
    corpus += builtin_corpus()[:6] if unique else []
    picker = TextPicker(corpus, 0.0, unique=unique)
    pick = entry_picker(picker, 8)
    entries = [pick() for _ in range(5)]
    sentences = []
    for entry in entries:
        segments = split_text(entry, tokenizer)
        assert len(segments) == 8, entry
        sentences += [entry[s.start : s.end] for s in segments]
    assert len(set(sentences)) == 40  # every sentence new: per-sentence numbering survived the joining
    assert all(s[-1] in ".!?" for s in sentences)
    if not unique:
        assert sentences[1:4] == ["Bye!", f"{corpus[0]} (1).", "Bye (1)!"]
    with pytest.raises(ValueError, match=">= 1"):
        entry_picker(picker, 0)


async def test_entries_go_to_predict_as_one_text() -> None:
    seen: list[httpx.Request] = []
    pick = entry_picker(TextPicker(builtin_corpus(), 0.0), 3)
    result = await run_level(LoadSpec("http://x", concurrency=2, requests=4), pick, transport=_app(seen))
    assert result.statuses == {"200": 4}
    texts = [json.loads(r.content)["text"] for r in seen]
    assert sorted(texts) == sorted(" ".join(f"{t}." if t[-1] not in ".!?" else t for t in builtin_corpus()[i : i + 3])
                                   for i in range(0, 12, 3))  # fmt: skip


def _app(seen: list[httpx.Request]) -> httpx.MockTransport:
    """An in-process server: 200, or 503 for texts containing "busy", or no answer for "drop"."""

    async def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = json.loads(request.content)
        text = " ".join(body.get("texts") or [body.get("text", "")])
        if "drop" in text:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(503 if "busy" in text else 200, json={})

    return httpx.MockTransport(handle)


async def test_closed_loop_counts_every_outcome_and_reports_progress() -> None:
    seen: list[httpx.Request] = []
    done: list[int] = []

    async def progress(n: int) -> None:
        done.append(n)

    spec = LoadSpec("http://x", concurrency=3, requests=9, headers={"X-Test": "1"}, api_key="k")
    result = await run_level(spec, TextPicker(["ok", "busy", "drop"], 0.0), progress, transport=_app(seen))
    assert result.statuses == {"200": 3, "503": 3, "ConnectError": 3}
    assert (result.sent, result.succeeded, len(result.latencies_s)) == (9, 3, 3)
    assert done == list(range(1, 10))
    assert all(r.headers["x-test"] == "1" and r.headers["x-api-key"] == "k" for r in seen)
    assert {r.url.path for r in seen} == {"/predict"}


async def test_open_loop_and_batches() -> None:
    seen: list[httpx.Request] = []
    spec = LoadSpec("http://x", rate=500.0, requests=12, batch=4)
    result = await run_level(spec, TextPicker(builtin_corpus(), 0.0), transport=_app(seen))
    assert result.statuses == {"200": 12}
    assert {r.url.path for r in seen} == {"/predict/batch"}
    assert len({t for r in seen for t in json.loads(r.content)["texts"]}) == 48  # every text new


async def test_duration_bound_and_unbounded_runs() -> None:
    zero = await run_level(LoadSpec("http://x", duration_s=0.0), TextPicker(["a"], 0.0), transport=_app([]))
    assert zero.sent == 0  # no request starts after the deadline
    with pytest.raises(ValueError, match="bound the run"):
        await run_level(LoadSpec("http://x"), TextPicker(["a"], 0.0))


async def test_drills_drive_is_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[httpx.Request] = []
    monkeypatch.setattr(drills, "run_level", functools.partial(engine.run_level, transport=_app(seen)))
    texts = ["ok", "busy", "drop", "ok"]
    statuses = await drills.drive("http://x", texts, 8, 2, headers={"X-API-Key": "k"}, unique=True)
    assert statuses == {200: 4, 503: 2, 0: 2}  # 0: no response
    assert len({json.loads(r.content)["text"] for r in seen}) == 8
    assert all(r.headers["x-api-key"] == "k" for r in seen)
    hook_calls: list[int] = []

    async def hook(n: int) -> None:
        hook_calls.append(n)

    await drills.drive("http://x", ["ok"], 3, 1, on_progress=hook)
    assert hook_calls == [1, 2, 3]
