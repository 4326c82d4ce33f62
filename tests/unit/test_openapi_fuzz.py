"""schemathesis against the app's own /openapi.json (in-process, fake model): no 5xx, responses match.

Each operation of the spec gets generated requests (valid and not); every response must be a non-5xx
whose body matches the documented schema for its status. The same run goes against a real server in
``bench/fault_suite.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings

from samo_serve.core.model_card import ModelCard
from samo_serve.core.pipeline import LocalPipeline
from samo_serve.core.tokenizer import TextTokenizer
from samo_serve.http.app import create_app
from samo_serve.service import EmotionService
from samo_serve.settings import Settings

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.content_type_conformance,
]


def test_every_operation_conforms(card: ModelCard, tokenizer: TextTokenizer, fake_runner: Any, tmp_path: Path) -> None:
    settings_ = Settings(data_dir=tmp_path)  # the embedded request log (SQLite), so analytics answer
    service = EmotionService.from_settings(card, LocalPipeline(tokenizer, fake_runner), settings_)
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(settings_, service))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/predict", "/predict/batch", "/analytics/summary", "/readyz"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def conforms(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=CHECKS)

        conforms()
