"""An unhandled error in a replica reaches the log at once, at ERROR, with its traceback and request id,
even where Serve has replaced ``sys.stderr`` by its line-per-record buffered logger (throughput mode)."""

from __future__ import annotations

import io
import logging
import logging.handlers
import sys
from collections.abc import Iterator

import pytest
from ray.serve._private.logging_utils import StreamToLogger

from samo_serve.http.errors import as_samo_error
from samo_serve.observability.logs import LOGGERS, log_to_stderr


@pytest.fixture
def serve_replica_stderr(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """What Serve does to a replica in throughput-optimized mode: ``sys.stderr`` becomes INFO records of a
    logger whose handler holds 1,000 records before its file sees any. Yields that file."""
    file = io.StringIO()
    serve_logger = logging.Logger("test.ray.serve")
    buffered = logging.handlers.MemoryHandler(1000, flushLevel=logging.ERROR, target=logging.StreamHandler(file))
    serve_logger.addHandler(buffered)
    monkeypatch.setattr(sys, "stderr", StreamToLogger(serve_logger, logging.INFO, sys.stderr))
    saved = {n: (lg.handlers[:], lg.propagate, lg.level) for n in LOGGERS for lg in [logging.getLogger(n)]}
    yield file
    for name, (handlers, propagate, level) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:], logger.propagate, logger.level = handlers, propagate, level


def _fail() -> BaseException:
    try:
        raise RuntimeError("boom in the model client")
    except RuntimeError as exc:
        return exc


@pytest.mark.usefixtures("serve_replica_stderr")
def test_an_unhandled_error_is_written_whole_and_at_once() -> None:
    real = io.StringIO()
    log_to_stderr(real)
    error = as_samo_error(_fail(), "req-42")
    assert error.http_status == 500
    text = real.getvalue()
    assert "ERROR samo_serve.http.errors: unhandled error (request req-42)" in text
    assert "Traceback (most recent call last):" in text
    assert "RuntimeError: boom in the model client" in text


def test_without_it_the_traceback_is_lines_of_info_in_a_buffer(serve_replica_stderr: io.StringIO) -> None:
    """The finding this fixes, reproduced: nothing reaches the file yet."""
    logging.getLogger("samo_serve").handlers.clear()
    logging.getLogger("samo_serve").propagate = False  # no pytest capture handler: the last resort runs
    as_samo_error(_fail(), "req-43")
    assert serve_replica_stderr.getvalue() == ""


def test_a_second_call_replaces_its_handler_and_warnings_pass() -> None:
    real = io.StringIO()
    log_to_stderr(io.StringIO())
    log_to_stderr(real)
    logging.getLogger("deployments.model").warning("replica retry")
    logging.getLogger("samo_serve.service").info("not shown")
    assert real.getvalue().count("replica retry") == 1
    assert "not shown" not in real.getvalue()
