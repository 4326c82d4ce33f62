"""Peer fixture (not product code): LitServe with its own batching, serving the same int8 ONNX model.

python bench/peers/litserve_server.py --port 8500
"""

from __future__ import annotations

import argparse
from typing import Any

import litserve as ls
import numpy as np

from samo_serve.core.model_card import load_card
from samo_serve.core.model_runner import OrtModelRunner
from samo_serve.core.tokenizer import TextTokenizer
from samo_serve.settings import RunnerSettings, default_model_dir


class EmotionLitAPI(ls.LitAPI):  # type: ignore[misc]
    def setup(self, device: str) -> None:
        model_dir = default_model_dir()
        self.card = load_card(model_dir)
        self.tokenizer = TextTokenizer.for_card(self.card, model_dir)
        self.runner = OrtModelRunner.for_card(
            self.card, model_dir, RunnerSettings(device="cpu", policy="batched", sessions=1, intra_op_threads=2)
        )
        self.thresholds = np.asarray(self.card.thresholds)

    def decode_request(self, request):  # type: ignore[no-untyped-def]  # LitServe reads the JSON body when unannotated
        return str(request["text"])

    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        scores = self.runner.predict(self.tokenizer.encode_batch(texts))
        out = []
        for row in scores:
            top = int(np.argmax(row))
            chosen = [i for i in np.argsort(-row) if row[i] >= self.thresholds[i]] or [top]
            out.append({"emotions": [{"label": self.card.labels[i], "score": round(float(row[i]), 6)} for i in chosen],
                        "primary": {"label": self.card.labels[top], "score": round(float(row[top]), 6)}})  # fmt: skip
        return out

    def encode_response(self, output: dict[str, Any]) -> dict[str, Any]:
        return output


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8500)
    args = parser.parse_args()
    api = EmotionLitAPI(max_batch_size=64, batch_timeout=0.002)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1, api_path="/predict", timeout=60)
    server.run(port=args.port, host="127.0.0.1", generate_client_file=False)


if __name__ == "__main__":
    main()
