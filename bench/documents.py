"""What a document costs: 8-sentence entries vs single sentences, same concurrency, same live server.

    python bench/documents.py [--duration 8] [--rounds 2] [--out runs/documents.json]

One `samo-serve run` (L1 cache off: SAMO_CACHE__L1_ENABLED=false; no Redis, no L3), then, at c=8 and c=32,
rounds that alternate POST /predict of single sentences and POST /predict of 8-sentence entries, so both
see the same machine at nearly the same moment. Sentences: GoEmotions texts (../shared/data/goemotions, else
the load tester's built-in sample) that the service reads as one sentence, each numbered so every
request reaches the model; entries join them as the load tester's --entries does (loadtest.corpus).
Reports sentences/s through entries vs single-sentence requests/s (issue 14's target: >= 0.8x).
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # bench/ helpers, and testkit/ (harnesses the wheel leaves out)

from loadgen import Proc, Result, bench_texts, closed_loop, generator, save_report, write_bodies  # noqa: E402

from samo_serve.core.model_card import load_card  # noqa: E402
from samo_serve.core.segments import plan_text, split_text  # noqa: E402
from samo_serve.core.tokenizer import TextTokenizer  # noqa: E402
from samo_serve.loadtest.corpus import entry_picker  # noqa: E402
from samo_serve.modeling.documents import as_sentence  # noqa: E402
from samo_serve.ops.ports import free_port  # noqa: E402
from samo_serve.settings import default_model_dir  # noqa: E402
from testkit.server_process import samo_serve_command  # noqa: E402

CONCURRENCY = (8, 32)
SENTENCES = 8


def sentences(tokenizer: TextTokenizer, wanted: int) -> list[str]:
    """``wanted`` numbered texts that the segmenter reads as one sentence (forced onto the sentence path by a
    window one token short of the model's), so an entry of 8 is 8 segments."""
    tag = uuid.uuid4().hex[:5]
    out = []
    for i, text in enumerate(bench_texts()):
        sentence = as_sentence(f"{tag}{i} {text}")
        if len(split_text(sentence, tokenizer, max_tokens=tokenizer.window - 1)) == 1:
            out.append(sentence)
            if len(out) == wanted:
                break
    return out


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), "?")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each kind per concurrency (alternating)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "documents.json")
    args = parser.parse_args()

    model_dir = default_model_dir()
    tokenizer = TextTokenizer.for_card(load_card(model_dir), model_dir)
    pool = sentences(tokenizer, 40_000)
    half = len(pool) // 2  # singles and entries never share a sentence
    entries = entry_picker(iter(pool[half:]).__next__, SENTENCES)
    docs = [entries() for _ in range((len(pool) - half) // SENTENCES)]
    segments = [len(plan_text(d, tokenizer, 1_000).texts) for d in docs]
    mean_segments = sum(segments) / len(segments)
    print(f"{half} single sentences, {len(docs)} entries of {SENTENCES} ({mean_segments:.2f} segments each, "
          f"as served), {generator()} load", flush=True)  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="samo-docs-bench-"))
    bodies = {"single": write_bodies(tmp / "single.jsonl", pool[:half])}
    bodies["entry"] = write_bodies(tmp / "docs.jsonl", docs)

    port = free_port()
    env = {"SAMO_CACHE__L1_ENABLED": "false"}
    srv = Proc(samo_serve_command(port, free_port()), f"http://127.0.0.1:{port}", env, tmp / "samo.log")
    offsets = dict.fromkeys(bodies, 0)
    runs: dict[str, list[Result]] = {}
    try:
        srv.wait_ready()
        for kind in bodies:  # warm-up: connections, ORT's first calls
            offsets[kind] += closed_loop(srv.url, bodies[kind], 8, 3, f"warmup {kind}", offset=offsets[kind]).requests
        for c, _round, kind in itertools.product(CONCURRENCY, range(args.rounds), bodies):
            r = closed_loop(srv.url, bodies[kind], c, args.duration, f"{kind} c={c}", offset=offsets[kind])
            offsets[kind] += r.requests + 1
            runs.setdefault(f"{kind} c={c}", []).append(r)
            per_s = r.rps * (SENTENCES if kind == "entry" else 1)
            print(f"  {kind:<6} c={c:<3} {r.rps:8.1f} rps  {per_s:8.1f} sentences/s  p50 {r.p50_ms:7.1f}  "
                  f"p95 {r.p95_ms:7.1f} ms  errors {r.errors}", flush=True)  # fmt: skip
    finally:
        srv.stop()
    if offsets["single"] > half or offsets["entry"] > len(docs):
        print("warning: the texts ran out and repeated (L1 off, no Redis: still classified)", flush=True)
    ratios: dict[str, object] = {}
    for c in CONCURRENCY:
        singles = sum(r.rps for r in runs[f"single c={c}"]) / args.rounds
        entry_rps = sum(r.rps for r in runs[f"entry c={c}"]) / args.rounds
        ratios[f"c={c}"] = {
            "single_rps": round(singles, 1),
            "entry_rps": round(entry_rps, 1),
            "sentences_per_s_in_entries": round(entry_rps * SENTENCES, 1),
            "ratio": round(entry_rps * SENTENCES / singles, 2) if singles else None,
        }
    report = {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "generator": generator(),
        "segments_per_entry": round(mean_segments, 2),
        "rounds": {k: [r.row() for r in v] for k, v in runs.items()},
        "ratios": ratios,
    }
    save_report(report, args.out)


if __name__ == "__main__":
    main()
