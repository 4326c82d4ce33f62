"""The ``samo-serve`` command line.

Examples::

    samo-serve run                                  # embedded default on http://127.0.0.1:8000
    samo-serve model info                           # print the shipped model card
    samo-serve model eval --split test --data ../shared/data/goemotions
    samo-serve model train --data ../shared/data/goemotions --out artifacts/ckpt   # needs [train]
    samo-serve model export --checkpoint artifacts/ckpt --data ../shared/data/goemotions
    samo-serve keys create --name mobile-app --file keys.json    # prints the key once
    samo-serve report --url http://127.0.0.1:8000                # /stats as tables
    samo-serve loadtest --concurrency 1,8,32 --requests 500 --out runs/lt   # report.md + plots
    samo-serve plan --target-rps 400 --p95-ms 300 --from runs/lt/results.json --out runs/plan.yaml
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from samo_serve.settings import DEFAULT_MODEL_NAME, default_model_dir

if TYPE_CHECKING:
    from samo_serve.http.api_keys import KeyStore

__all__ = ["main"]

# The packaged Serve configs (configs/ in a checkout links here): defaults that work from a wheel, in any cwd.
_CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _cmd_run(args: argparse.Namespace) -> int:
    from samo_serve.ops.launcher import load_config, serve_forever

    config = load_config(Path(args.config), port=args.port, host=args.host)
    return serve_forever(
        config,
        ready_timeout_s=args.ready_timeout,
        direct_ingress=not args.classic_proxy,
        metrics_port=args.metrics_port,
        num_cpus=args.num_cpus,
        num_gpus=args.num_gpus,
        address=args.address,
    )


def _cmd_info(args: argparse.Namespace) -> int:
    from samo_serve.core.model_card import load_card

    card = load_card(Path(args.model_dir))
    print(json.dumps(card.model_dump(), indent=2))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from samo_serve.modeling.model_eval import evaluate_split

    report = evaluate_split(Path(args.model_dir), Path(args.data), args.split)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{report['model_version']} on GoEmotions {args.split} (n={report['n']})")
    for column in ("label", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="right" if column != "label" else "left")
    for label, row in report["per_label"].items():
        table.add_row(label, *(f"{row[k]:.3f}" for k in ("precision", "recall", "f1")), str(row["support"]))
    console = Console()
    console.print(table)
    console.print(f"macro-F1 {report['macro_f1']:.4f}  micro-F1 {report['micro_f1']:.4f}")
    if "vs_fp32" in report:
        v = report["vs_fp32"]
        console.print(
            f"vs fp32: macro-F1 {v['fp32_macro_f1']:.4f} (delta {v['macro_f1_delta']:+.4f}), "
            f"top-label agreement {v['top_label_agreement']:.2%}"
        )
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from samo_serve.modeling.training.train import TrainConfig, train

    config = TrainConfig(
        data_dir=Path(args.data),
        out_dir=Path(args.out),
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        max_length=args.max_length,
        seed=args.seed,
        threads=args.threads,
        limit=args.limit,
        max_steps=args.max_steps,
        stop_after_step=args.stop_after_step,
        evals_per_epoch=args.evals_per_epoch,
    )
    best = train(config)
    print(f"best checkpoint: step {best['step']}, dev macro-F1 {best['dev_macro_f1']} -> {args.out}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from samo_serve.modeling.training.export import export

    card = export(Path(args.checkpoint), Path(args.out), args.name, Path(args.data) if args.data else None)
    print(f"exported {card.version} -> {args.out}")
    return 0


def _key_store(args: argparse.Namespace) -> KeyStore:
    from samo_serve.http.api_keys import KeyStore
    from samo_serve.settings import Settings

    path = Path(args.file) if args.file else Settings().api_keys_file
    if path is None:
        raise SystemExit("samo-serve keys: set SAMO_API_KEYS_FILE or pass --file PATH")
    return KeyStore(path)


def _cmd_keys_create(args: argparse.Namespace) -> int:
    store = _key_store(args)
    key = store.create(args.name, args.tier)
    print(key)
    print(f"# stored as a hash in {store.path}; this is the only time the key is shown", file=sys.stderr)
    return 0


def _cmd_keys_list(args: argparse.Namespace) -> int:
    keys = [k.public() for k in _key_store(args).list()]
    if args.json:
        print(json.dumps(keys, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "name", "tier", "created", "revoked")
    for k in keys:
        table.add_row(str(k["id"]), str(k["name"]), str(k["tier"]), str(k["created_at"]), str(k["revoked_at"] or ""))
    Console().print(table)
    return 0


def _cmd_keys_revoke(args: argparse.Namespace) -> int:
    try:
        record = _key_store(args).revoke(args.id)
    except KeyError:
        print(f"samo-serve keys: no key with id {args.id!r}", file=sys.stderr)
        return 1
    print(f"revoked {record.id} ({record.name}); replicas stop accepting it within ~2 s")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    import httpx

    from samo_serve.ops.report import render_report

    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    try:
        response = httpx.get(args.url.rstrip("/") + "/stats", headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        print(f"samo-serve report: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 2
    if response.status_code != 200:
        print(f"samo-serve report: /stats answered {response.status_code}: {response.text[:300]}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(response.json(), indent=2))
        return 0
    render_report(response.json())
    return 0


def _cmd_loadtest(args: argparse.Namespace) -> int:
    from samo_serve.loadtest.runner import run_loadtest

    def numbers(text: str, kind: type) -> list:  # type: ignore[type-arg]
        return [kind(v) for v in text.split(",") if v.strip()]

    run = run_loadtest(
        args.url,
        concurrency=numbers(args.concurrency, int),
        rate=numbers(args.rate, float) if args.rate else None,
        requests=args.requests,
        duration_s=args.duration,
        corpus=Path(args.corpus) if args.corpus else None,
        repeat_ratio=args.repeat_ratio,
        batch=args.batch,
        api_key=args.api_key,
        stress=args.stress,
        p95_target_ms=args.p95_target_ms,
        out=Path(args.out) if args.out else None,
    )
    if stress := run.get("stress"):
        print(
            f"degradation point: {stress['degradation_at'] or 'not reached'}; "
            f"max sustainable: {stress['max_sustainable']} ({stress['max_sustainable_rps']} rps)"
        )
    return 0


def _cmd_model_bench(args: argparse.Namespace) -> int:
    from samo_serve.loadtest.corpus import load_corpus
    from samo_serve.modeling.model_bench import BATCH_SIZES, bench_model

    data = Path(args.data) if args.data and (Path(args.data) / "test.tsv").exists() else None
    texts = load_corpus(data / "test.tsv" if data else None)[: args.texts]
    report = bench_model(Path(args.model_dir), data, texts, min_seconds=args.seconds, threads=args.threads)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"{report['model_version']} on {report['device']}", caption="texts/s (ms per batch), model only"
    )
    table.add_column("precision")
    for bs in BATCH_SIZES:
        table.add_column(f"batch {bs}", justify="right")
    for column in ("speed-up vs fp32", "macro-F1", "Δ F1", "top-1 agree"):
        table.add_column(column, justify="right")
    for precision, row in report["variants"].items():
        speed = row.get("speedup_vs_fp32", {})
        table.add_row(
            precision,
            *(f"{row['batch'][bs]['texts_per_s']:,.0f} ({row['batch'][bs]['ms_per_batch']:.2f})" for bs in BATCH_SIZES),
            " / ".join(f"{speed[bs]:.2f}x" for bs in BATCH_SIZES) if speed else "–",
            f"{row['macro_f1']:.4f}" if "macro_f1" in row else "–",
            f"{row['macro_f1_delta_vs_fp32']:+.4f}" if "macro_f1_delta_vs_fp32" in row else "–",
            f"{row['top_label_agreement_vs_fp32']:.1%}" if "top_label_agreement_vs_fp32" in row else "–",
        )
    console = Console()
    console.print(table)
    for precision, why in report["missing"].items():
        console.print(f"[yellow]{precision}[/]: {why}")
    if data is None:
        console.print("[dim]no GoEmotions test split given (--data): speed only[/]")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    import yaml

    from samo_serve.ops.planner import PlanError, apply_plan, gpus_per_replica, make_plan
    from samo_serve.ops.serve_config import deployment, load_serve_config, write_serve_config

    if args.results:
        results = json.loads(Path(args.results).read_text(encoding="utf-8"))
    else:  # measure now: a stress ramp against the running service, as `samo-serve loadtest --stress`
        from samo_serve.loadtest.runner import run_loadtest

        print(f"no --from: measuring {args.url} with a stress ramp (p95 target {args.p95_ms:g} ms)", file=sys.stderr)
        results = run_loadtest(
            args.url, [1], requests=args.requests, api_key=args.api_key, stress=True, p95_target_ms=args.p95_ms,
            out=Path(args.measure_out) if args.measure_out else None,
        )  # fmt: skip
    config = load_serve_config(Path(args.config))
    try:
        plan = make_plan(
            results, args.target_rps, args.p95_ms, args.headroom, gpus_per_replica(config),
            measured_cpus=args.measured_cpus, available_cpus=args.cpus,
        )  # fmt: skip
    except PlanError as exc:
        print(f"samo-serve plan: {exc}", file=sys.stderr)
        return 1
    planned = apply_plan(config, plan, fixed=args.fixed)
    if args.json:
        print(json.dumps(plan.as_dict(), indent=2))
    else:
        m = plan.measured_at
        bound = "" if plan.saturated else " (a lower bound: no measured level broke the target)"
        print(
            f"measured: {m['throughput_rps']} rps at p95 {m['p95_ms']} ms with {m['replicas']} "
            f"-> {plan.per_replica_rps:.1f} rps per model replica{bound}\n"
            f"plan for {plan.target_rps:g} rps at p95 <= {plan.p95_ms:g} ms, {plan.headroom:.0%} utilization: "
            f"{plan.model_replicas} EmotionModel, {plan.ingress_replicas} Ingress replica(s), {plan.gpus:g} GPU(s)"
            + (f", {plan.cpus:g} CPUs ({plan.cpus_per_replica:g} per model replica as measured)" if plan.cpus else "")
            + f"; predicted capacity {plan.predicted_rps:.0f} rps"
            + (f"\n[!] {args.cpus:g} CPUs fit only {plan.model_replicas} replica(s)" if plan.cpu_limited else "")
            + ("" if plan.meets_target else f"\n[!] the target {plan.target_rps:g} rps is NOT met by this plan")
            + "\n"
        )
        blocks = [deployment(planned, name) for name in ("Ingress", "EmotionModel")]
        print("# paste into the deployments: section of your Serve config")
        print(yaml.safe_dump(blocks, sort_keys=False), end="")
    if args.out:
        header = f"samo-serve plan --target-rps {args.target_rps:g} --p95-ms {args.p95_ms:g}: {plan.as_dict()}"
        write_serve_config(planned, Path(args.out), header=header)
        print(f"written {args.out} (samo-serve run --config {args.out})", file=sys.stderr)
    return 0


def _cmd_k8s_render(args: argparse.Namespace) -> int:
    from samo_serve.ops.k8s import render_file

    text = render_file(Path(args.config), args.image)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"written {args.out}", file=sys.stderr)
    else:
        print(text, end="")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="samo-serve", description="Emotion detection on Ray Serve")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="serve the embedded default on a local Ray (blocks; Ctrl-C stops)")
    run.add_argument("--config", default=str(_CONFIGS / "serve.yaml"))
    run.add_argument("--port", type=int, default=None, help="HTTP port (default: the config's, 8000)")
    run.add_argument("--host", default=None, help="bind address (default: the config's, 127.0.0.1)")
    run.add_argument("--ready-timeout", type=float, default=600.0)
    run.add_argument(
        "--classic-proxy",
        action="store_true",
        help="serve through Ray's HTTP proxy instead of directly from the ingress replica (slower; see docs)",
    )
    run.add_argument(
        "--metrics-port", type=int, default=8080, help="Ray's Prometheus endpoint (ray_serve_*, ray_samo_*)"
    )
    run.add_argument("--num-cpus", type=int, default=None, help="logical CPUs of the local Ray (default: cores)")
    run.add_argument(
        "--num-gpus", type=int, default=None, help="logical GPUs of the local Ray (default: the GPUs it detects)"
    )
    run.add_argument(
        "--address",
        default=None,
        help="deploy on a running Ray cluster (auto, HOST:PORT) through its HTTP proxy instead of a local Ray",
    )
    run.set_defaults(func=_cmd_run)

    model = sub.add_parser("model", help="train, export, evaluate and inspect models")
    msub = model.add_subparsers(dest="model_command", required=True)
    model_dir = str(default_model_dir())

    info = msub.add_parser("info", help="print the model card")
    info.add_argument("--model-dir", default=model_dir)
    info.set_defaults(func=_cmd_info)

    ev = msub.add_parser("eval", help="macro/micro F1, per-label P/R/F1, int8 vs fp32 (ORT only)")
    ev.add_argument("--model-dir", default=model_dir)
    ev.add_argument("--data", default="../shared/data/goemotions")
    ev.add_argument("--split", default="test", choices=["train", "dev", "test"])
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=_cmd_eval)

    tr = msub.add_parser("train", help="fine-tune all-MiniLM-L6-v2 on GoEmotions (needs the train extra)")
    tr.add_argument("--data", required=True)
    tr.add_argument("--out", default="artifacts/ckpt")
    tr.add_argument("--epochs", type=float, default=3.0)
    tr.add_argument("--lr", type=float, default=8e-5)
    tr.add_argument("--batch-size", type=int, default=32)
    tr.add_argument("--max-length", type=int, default=64)
    tr.add_argument("--seed", type=int, default=13)
    tr.add_argument("--threads", type=int, default=2)
    tr.add_argument("--limit", type=int, default=None, help="rows per split (smoke runs)")
    tr.add_argument("--max-steps", type=int, default=None, help="a shorter run (the schedule ends here too)")
    tr.add_argument(
        "--stop-after-step", type=int, default=None, help="end here, full run's schedule (reproduce a card's step)"
    )
    tr.add_argument("--evals-per-epoch", type=int, default=2)
    tr.set_defaults(func=_cmd_train)

    ex = msub.add_parser("export", help="ONNX fp32 + int8 + fp16, parity check, model card")
    ex.add_argument("--checkpoint", default="artifacts/ckpt", help="ours, or any local HF sequence classifier")
    ex.add_argument("--out", default=model_dir)
    ex.add_argument("--name", default=DEFAULT_MODEL_NAME)
    ex.add_argument("--data", default=None, help="GoEmotions dir: tune thresholds on dev, record metrics")
    ex.set_defaults(func=_cmd_export)

    lt = sub.add_parser("loadtest", help="measure how much load a running deployment holds (bounded runs)")
    lt.add_argument("--url", default="http://127.0.0.1:8000")
    lt.add_argument("--concurrency", default="1,8,32,64", help="closed-loop levels, e.g. 1,8,32,64")
    lt.add_argument("--rate", default=None, help="open loop instead: arrival rates in requests/s, e.g. 50,100")
    bound = lt.add_mutually_exclusive_group()
    bound.add_argument("--requests", type=int, default=None, help="requests per level (default 200)")
    bound.add_argument("--duration", type=float, default=None, help="seconds per level")
    lt.add_argument("--corpus", default=None, help="texts: .txt (one per line), .tsv (GoEmotions) or .jsonl")
    lt.add_argument("--repeat-ratio", type=float, default=0.0, help="share of repeated texts (0..1): cache hits")
    lt.add_argument("--batch", type=int, default=1, help="texts per request (/predict/batch when > 1)")
    lt.add_argument("--api-key", default=os.environ.get("SAMO_API_KEY"), help="default: $SAMO_API_KEY")
    lt.add_argument("--stress", action="store_true", help="ramp concurrency 1,2,4,… until it degrades")
    lt.add_argument("--p95-target-ms", type=float, default=500.0)
    lt.add_argument("--out", default=None, help="folder for report.md, PNG plots and results.json")
    lt.set_defaults(func=_cmd_loadtest)

    pl = sub.add_parser("plan", help="replicas and GPUs for a target load, from measured per-replica capacity")
    pl.add_argument("--target-rps", type=float, required=True, help="the peak load to plan for, requests/s")
    pl.add_argument("--p95-ms", type=float, required=True, help="the p95 latency to hold at that load")
    pl.add_argument("--from", dest="results", default=None, help="a load test's results.json (default: measure)")
    pl.add_argument("--url", default="http://127.0.0.1:8000", help="what to measure when there is no --from")
    pl.add_argument("--requests", type=int, default=300, help="requests per stress level when measuring")
    pl.add_argument("--measure-out", default=None, help="keep the measurement (report + results.json) here")
    pl.add_argument("--api-key", default=os.environ.get("SAMO_API_KEY"), help="default: $SAMO_API_KEY")
    pl.add_argument("--config", default=str(_CONFIGS / "serve.yaml"), help="the Serve config the plan resizes")
    pl.add_argument("--headroom", type=float, default=0.8, help="planned utilization of measured capacity")
    pl.add_argument(
        "--measured-cpus", type=float, default=None,
        help="CPUs the measured service ran on (default: results.json's host_cpus, set for a local service)",
    )  # fmt: skip
    pl.add_argument("--cpus", type=float, default=None, help="CPUs available to the plan (default: unbounded)")
    pl.add_argument("--fixed", action="store_true", help="fixed num_replicas instead of autoscaling up to them")
    pl.add_argument("--out", default=None, help="write the resized Serve config here")
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(func=_cmd_plan)

    k8s = sub.add_parser("k8s", help="Kubernetes (KubeRay) manifests")
    k8s_sub = k8s.add_subparsers(dest="k8s_command", required=True)
    render = k8s_sub.add_parser("render", help="the RayService manifest, serveConfigV2 from a Serve config")
    render.add_argument("--config", default="configs/serve-gpu.yaml")
    render.add_argument("--image", default=None, help="default: samo-serve:<version>-ray<pinned Ray>")
    render.add_argument("--out", default=None, help="write here instead of stdout (k8s/rayservice.yaml)")
    render.set_defaults(func=_cmd_k8s_render)

    report = sub.add_parser("report", help="the /stats summary of a running service as terminal tables")
    report.add_argument("--url", default="http://127.0.0.1:8000")
    report.add_argument("--api-key", default=os.environ.get("SAMO_API_KEY"), help="default: $SAMO_API_KEY")
    report.add_argument("--json", action="store_true", help="print /stats as it came")
    report.set_defaults(func=_cmd_report)

    mb = msub.add_parser("bench", help="fp32 vs int8 (fp16 on a GPU): texts/s at batch 1/32/64, F1, agreement")
    mb.add_argument("--model-dir", default=model_dir)
    mb.add_argument("--data", default="../shared/data/goemotions", help="GoEmotions dir (its test split)")
    mb.add_argument("--texts", type=int, default=1024, help="texts timed per batch size")
    mb.add_argument("--seconds", type=float, default=2.0, help="time per precision and batch size")
    mb.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0: all cores)")
    mb.add_argument("--json", action="store_true")
    mb.set_defaults(func=_cmd_model_bench)

    keys = sub.add_parser("keys", help="create, list and revoke API keys (stored as hashes)")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    file_help = "the keys file (default: $SAMO_API_KEYS_FILE)"
    kc = ksub.add_parser("create", help="make a key and print it once")
    kc.add_argument("--name", required=True, help="who or what uses it")
    kc.add_argument("--tier", default="default", help="rate-limit tier (rate_limits.tiers)")
    kc.add_argument("--file", default=None, help=file_help)
    kc.set_defaults(func=_cmd_keys_create)
    kl = ksub.add_parser("list", help="ids, names, tiers; never the keys")
    kl.add_argument("--file", default=None, help=file_help)
    kl.add_argument("--json", action="store_true")
    kl.set_defaults(func=_cmd_keys_list)
    kr = ksub.add_parser("revoke", help="stop accepting a key")
    kr.add_argument("id")
    kr.add_argument("--file", default=None, help=file_help)
    kr.set_defaults(func=_cmd_keys_revoke)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
