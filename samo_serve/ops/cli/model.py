"""``samo-serve model {info,eval,train,export,bench}``: inspect, evaluate, train and export models."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from samo_serve.ops.cli.errors import CliError, user_file
from samo_serve.settings import DEFAULT_MODEL_NAME, default_model_dir, model_dir_named

if TYPE_CHECKING:
    from rich.table import Table

    from samo_serve.core.model_card import ModelCard
    from samo_serve.ops.cli.common import Subparsers

__all__ = ["register"]

_DATA = "../shared/data/goemotions"
_MODEL_DIR_HELP = "a model folder, or a shipped model's name (goemotions-minilm, goemotions-minilm-l6)"
_DATA_REMEDY = "pass --data with the GoEmotions folder (train.tsv, dev.tsv, test.tsv)"
_TRAIN_MODULES = {"torch", "transformers", "onnx"}


def register(sub: Subparsers) -> None:
    model = sub.add_parser("model", help="train, export, evaluate and inspect models")
    msub = model.add_subparsers(dest="model_command", required=True)
    model_dir = str(default_model_dir())

    info = msub.add_parser("info", help="print the model card")
    info.add_argument("--model-dir", default=model_dir, help=_MODEL_DIR_HELP)
    info.set_defaults(func=_info)

    ev = msub.add_parser("eval", help="macro/micro F1, per-label P/R/F1, int8 vs fp32 (ORT only)")
    ev.add_argument("--model-dir", default=model_dir, help=_MODEL_DIR_HELP)
    ev.add_argument("--data", default=_DATA)
    ev.add_argument("--split", default="test", choices=["train", "dev", "test"])
    ev.add_argument("--json", action="store_true")
    ev.add_argument(
        "--documents",
        action="store_true",
        help="the document benchmark (pseudo-entries of 3-12 test sentences, per aggregation) and emoji F1",
    )
    ev.add_argument(
        "--write-reference", action="store_true",
        help="keep the split's emotion mix and confidence on the card: the drift watch's reference",
    )  # fmt: skip
    ev.set_defaults(func=_eval)

    _register_train(msub)

    ex = msub.add_parser("export", help="ONNX fp32 + int8 + fp16, parity check, model card")
    ex.add_argument("--checkpoint", default="artifacts/ckpt", help="ours, or any local HF sequence classifier")
    ex.add_argument("--out", default=model_dir)
    ex.add_argument("--name", default=DEFAULT_MODEL_NAME)
    ex.add_argument("--data", default=None, help="GoEmotions dir: tune thresholds on dev, record metrics")
    ex.add_argument(
        "--int8-graph", choices=["plain", "fused"], default="plain",
        help="quantize the exporter's graph (default) or the transformer-fused one (docs/MODEL.md)",
    )  # fmt: skip
    ex.set_defaults(func=_export)

    mb = msub.add_parser("bench", help="fp32 vs int8 (fp16 on a GPU): texts/s at batch 1/32/64, F1, agreement")
    mb.add_argument("--model-dir", default=model_dir, help=_MODEL_DIR_HELP)
    mb.add_argument("--data", default=_DATA, help="GoEmotions dir (its test split)")
    mb.add_argument("--texts", type=int, default=1024, help="texts timed per batch size")
    mb.add_argument("--seconds", type=float, default=2.0, help="time per precision and batch size")
    mb.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0: all cores)")
    mb.add_argument("--json", action="store_true")
    mb.set_defaults(func=_bench)


def _register_train(msub: Subparsers) -> None:
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
    tr.add_argument("--layers", type=int, default=None, help="keep the base's first N layers (a faster student)")
    tr.add_argument(
        "--teacher",
        default=None,
        help="a model folder (or shipped model's name) whose scores are soft targets (distillation)",
    )
    tr.add_argument("--distill-weight", type=float, default=0.5, help="soft targets' share of the loss")
    tr.add_argument("--init-checkpoint", default=None, help="start from this checkpoint (a further fine-tune)")
    tr.add_argument(
        "--quant-aware",
        action="store_true",
        help="train through an emulation of the served int8 graph too (int8 <-> fp32 agreement)",
    )
    tr.add_argument(
        "--consistency-weight", type=float, default=20.0, help="with --quant-aware: weight of the int8-vs-fp32 term"
    )
    tr.set_defaults(func=_train)


def _card(model_dir: Path, option: str = "--model-dir") -> ModelCard:
    """The card of ``model_dir``, checksum verified; a :class:`CliError` when the folder is no model."""
    from samo_serve.core.model_card import load_card

    remedy = (
        f"pass {option} with a folder holding card.json and its ONNX file (samo-serve model export writes one)"
        " or a shipped model's name"
    )
    if not model_dir.is_dir():
        raise CliError(f"model folder {model_dir} does not exist", remedy)
    with user_file(model_dir, "model folder", remedy, invalid=(ValueError,)):
        return load_card(model_dir)


def _split(data: Path, split: str) -> Path:
    """``data``, once it holds GoEmotions' ``split``.tsv."""
    if not (data / f"{split}.tsv").is_file():
        raise CliError(f"GoEmotions {split} split {data / f'{split}.tsv'} does not exist", _DATA_REMEDY)
    return data


def _needs_train_extra(command: str, exc: ModuleNotFoundError) -> CliError | ModuleNotFoundError:
    """A missing training library is a missing extra; any other missing module is a bug."""
    if (exc.name or "").split(".")[0] not in _TRAIN_MODULES:
        return exc
    return CliError(
        f"samo-serve model {command} needs {exc.name}, which is not installed",
        "install the train extra: pip install 'samo-serve[train]' (pip install -e '.[train]' in a checkout)",
    )


def _info(args: argparse.Namespace) -> int:
    print(json.dumps(_card(model_dir_named(args.model_dir)).model_dump(), indent=2))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from samo_serve.modeling.model_eval import evaluate_split

    model_dir = model_dir_named(args.model_dir)
    _card(model_dir)
    data = _split(Path(args.data), args.split)
    if args.documents:
        return _eval_documents(model_dir, data, args.split, args.json)
    with user_file(data, "GoEmotions data", _DATA_REMEDY):
        report = evaluate_split(model_dir, data, args.split)
    if args.write_reference:
        from samo_serve.core.model_card import load_card, save_card

        card = load_card(model_dir, verify=False)
        card.metrics.setdefault(args.split, {})["reference"] = report["reference"]
        print(f"reference of {args.split} (n={report['n']}) written to {save_card(card, model_dir)}", file=sys.stderr)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    from rich.table import Table

    from samo_serve.ops.report import stdout_console

    table = Table(title=f"{report['model_version']} on GoEmotions {args.split} (n={report['n']})")
    for column in ("label", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="right" if column != "label" else "left", no_wrap=True)
    for label, row in report["per_label"].items():
        table.add_row(label, *(f"{row[k]:.3f}" for k in ("precision", "recall", "f1")), str(row["support"]))
    console = stdout_console()
    console.print(table)
    console.print(f"macro-F1 {report['macro_f1']:.4f}  micro-F1 {report['micro_f1']:.4f}")
    if "vs_fp32" in report:
        v = report["vs_fp32"]
        console.print(
            f"vs fp32: macro-F1 {v['fp32_macro_f1']:.4f} (delta {v['macro_f1_delta']:+.4f}), "
            f"top-label agreement {v['top_label_agreement']:.2%}"
        )
    return 0


def _eval_documents(model_dir: Path, data: Path, split: str, as_json: bool) -> int:
    from samo_serve.modeling.model_eval import evaluate_documents, evaluate_emoji

    with user_file(data, "GoEmotions data", _DATA_REMEDY):
        docs = evaluate_documents(model_dir, data, split)
        emoji = evaluate_emoji(model_dir, data, tuple(s for s in ("test", "dev") if (data / f"{s}.tsv").is_file()))
    if as_json:
        print(json.dumps({"documents": docs, "emoji": emoji}, indent=2))
        return 0
    from rich.table import Table

    from samo_serve.ops.report import stdout_console

    console = stdout_console()
    table = Table(
        title=f"{docs['model_version']}: {docs['entries']} pseudo-entries of GoEmotions {split} "
        f"({docs['sentences']} sentences, {docs['segments']} segments, seed {docs['seed']})",
        caption="sentence: macro-F1 of each sentence as read inside its entry (past: entries past the window "
        "only); P, R, F1 (micro) and macro-F1: each entry vs the union of its sentences' gold labels; labels: "
        "predicted per entry",
    )
    for column in ("reading", "sentence", "past", "P", "R", "F1", "macro", "labels"):
        table.add_column(column, justify="left" if column == "reading" else "right", no_wrap=True)
    alone = docs["alone"]
    table.add_row("alone", f"{alone['macro_f1']:.3f}", f"{alone['macro_f1_past_window']:.3f}", *[""] * 5)
    for name, row in docs["document_level"].items():
        seg = docs["segment_level"].get(name)
        table.add_row(
            "first window" if name == "first_window" else name,
            *((f"{seg['macro_f1']:.3f}", f"{seg['macro_f1_past_window']:.3f}") if seg else ("–", "–")),
            *(f"{row[k]:.3f}" for k in ("micro_precision", "micro_recall", "micro_f1", "macro_f1")),
            f"{row['labels_predicted']:.1f}",
        )
    console.print(table)
    console.print(
        f"true labels per entry {docs['document_level']['max']['labels_true']:.1f}; entries read in one window "
        f"{docs['entries_in_one_window']}; gold boundaries kept {docs['boundary_recall']:.1%}; "
        f"best document F1: {docs['best_aggregation']}"
    )
    primary = Table(title="each entry's primary (scores: the served aggregation)")
    for column in ("primary", "one of its emotions", "neutral though it has emotions", "its dominant label"):
        primary.add_column(column, justify="left" if column == "primary" else "right", no_wrap=True)
    for name, row in docs["primary"].items():
        keys = ("emotion_in_gold", "neutral_primary_with_emotions", "primary_is_dominant")
        primary.add_row("strongest score (max)" if name == "max" else name, *(f"{row[k]:.1%}" for k in keys))
    console.print(primary)
    emoji_table = Table(title="texts with emoji: before / after demojize")
    for column in ("split", "texts", "macro-F1", "micro-F1"):
        emoji_table.add_column(column, justify="left" if column == "split" else "right", no_wrap=True)
    for name, row in emoji["splits"].items():
        before, after = row["before"], row["after"]
        emoji_table.add_row(
            name,
            str(row["texts"]),
            f"{before['macro_f1']:.4f} → {after['macro_f1']:.4f}",
            f"{before['micro_f1']:.4f} → {after['micro_f1']:.4f}",
        )
    console.print(emoji_table)
    return 0


def _train(args: argparse.Namespace) -> int:
    try:
        from samo_serve.modeling.training.classifier import is_own_checkpoint
        from samo_serve.modeling.training.train import TrainConfig, train
    except ModuleNotFoundError as exc:
        raise _needs_train_extra("train", exc) from exc
    data = _split(Path(args.data), "train")
    teacher = Path(args.teacher) if args.teacher else None  # as typed: the recipe records it
    if teacher is not None:
        _card(model_dir_named(teacher), "--teacher")  # a clear error now, not after the data is read
    init = Path(args.init_checkpoint) if args.init_checkpoint else None
    if init is not None and not is_own_checkpoint(init):
        raise CliError(
            f"checkpoint {init} does not exist or is not one samo-serve model train wrote",
            "pass --init-checkpoint with the --out folder of an earlier samo-serve model train",
        )
    try:
        config = TrainConfig(
            data_dir=data,
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
            layers=args.layers,
            teacher_dir=teacher,
            distill_weight=args.distill_weight,
            init_checkpoint=init,
            quant_aware=args.quant_aware,
            consistency_weight=args.consistency_weight,
        )
    except ValueError as exc:  # options that contradict each other
        raise CliError(str(exc), "see samo-serve model train --help") from exc
    with user_file(data, "GoEmotions data", _DATA_REMEDY):
        best = train(config)
    print(f"best checkpoint: step {best['step']}, dev macro-F1 {best['dev_macro_f1']} -> {args.out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    try:
        from samo_serve.modeling.training.export import export
    except ModuleNotFoundError as exc:
        raise _needs_train_extra("export", exc) from exc
    checkpoint = Path(args.checkpoint)
    remedy = "pass --checkpoint with the folder samo-serve model train wrote (or a local HF sequence classifier)"
    if not checkpoint.is_dir():
        raise CliError(f"checkpoint {checkpoint} does not exist", remedy)
    data = _split(Path(args.data), "dev") if args.data else None
    with user_file(checkpoint, "checkpoint", remedy):
        card = export(checkpoint, Path(args.out), args.name, data, int8_graph=args.int8_graph)
    print(f"exported {card.version} -> {args.out}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from samo_serve.loadtest.corpus import load_corpus
    from samo_serve.modeling.model_bench import bench_model

    model_dir = model_dir_named(args.model_dir)
    _card(model_dir)
    data = Path(args.data) if args.data and (Path(args.data) / "test.tsv").exists() else None
    texts = load_corpus(data / "test.tsv" if data else None)[: args.texts]
    report = bench_model(model_dir, data, texts, min_seconds=args.seconds, threads=args.threads)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    from samo_serve.ops.report import stdout_console

    console = stdout_console()
    console.print(_bench_table(report))
    for precision, why in report["missing"].items():
        console.print(f"[yellow]{precision}[/]: {why}")
    if data is None:
        console.print("[dim]no GoEmotions test split given (--data): speed only[/]")
    return 0


def _bench_cells(variant: dict[str, Any]) -> dict[str, str]:
    """One precision's measures, by row label."""
    from samo_serve.modeling.model_bench import BATCH_SIZES

    batch, speed = variant["batch"], variant.get("speedup_vs_fp32", {})
    cells = {f"batch {bs}": f"{batch[bs]['texts_per_s']:,.0f} ({batch[bs]['ms_per_batch']:.2f})" for bs in BATCH_SIZES}
    cells.update({f"speed-up vs fp32, batch {bs}": f"{speed[bs]:.2f}x" if speed else "–" for bs in BATCH_SIZES})
    for label, key, spec in (
        ("macro-F1", "macro_f1", ".4f"),
        ("Δ F1 vs fp32", "macro_f1_delta_vs_fp32", "+.4f"),
        ("top-1 agree vs fp32", "top_label_agreement_vs_fp32", ".1%"),
    ):
        cells[label] = format(variant[key], spec) if key in variant else "–"
    return cells


def _bench_table(report: dict[str, Any]) -> Table:
    """A column per precision, a row per measure: fits 80 columns (a column per batch size did not)."""
    from rich.table import Table

    columns = {precision: _bench_cells(variant) for precision, variant in report["variants"].items()}
    table = Table(
        title=f"{report['model_version']} on {report['device']}", caption="texts/s (ms per batch), model only"
    )
    table.add_column("", no_wrap=True)
    for precision in columns:
        table.add_column(precision, justify="right", no_wrap=True)
    for label in next(iter(columns.values()), {}):
        table.add_row(label, *(cells[label] for cells in columns.values()))
    return table
