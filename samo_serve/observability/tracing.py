"""OpenTelemetry traces of a request across its hops, exported as OTLP/HTTP protobuf (off by default).

One :class:`Tracing` per process (an ingress replica, a model replica, the one-process server), built from
``settings.tracing``. A request's trace, under the caller's W3C ``traceparent`` when it sends one:

* ``POST /predict`` (server span, the edge): ``samo.request_id``, ``samo.tenant``, the status;
* ``validate`` (checks and the segment plan), ``cache.lookup`` (L1; ``cache.l2``, ``cache.l3`` inside),
  ``classify`` (the distinct misses: the micro-batch wait and everything below);
* ``micro_batch`` (in the trace of the first traced call of the batch; the others are linked), with
  ``tokenize`` and ``model.call`` (the handle hop), whose ``traceparent`` travels with the tokens;
* in the model replica: ``model.queue`` (from the call's send to the merged batch's start) and
  ``model.ort`` (ONNX Runtime, ``samo.batch_size`` = the merged batch's texts);
* ``log.write``: the writer's insert of the request's rows, after the response (linked to the others').

Spans carry ids, sizes and the tenant, never text. Sampling is parent-based: a caller's sampled
``traceparent`` is always followed, otherwise ``sample_ratio`` of requests. Spans leave in a background
thread (the SDK's batch processor); an export that fails (no collector, a wrong URL, a timeout) is
counted in ``samo_trace_export_failures_total`` and logged once, and never touches a request.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, SpanContext, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from samo_serve.settings import TracingSettings

__all__ = ["CountingExporter", "Tracing", "traceparent_of_current"]

log = logging.getLogger(__name__)
_PROPAGATOR = TraceContextTextMapPropagator()
_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()
# the OTLP exporter logs every failed export itself; CountingExporter logs the first and counts the rest
_EXPORTER_LOGGERS = ("opentelemetry.exporter.otlp.proto.http.trace_exporter", "opentelemetry.sdk.trace.export")


class CountingExporter(SpanExporter):
    """An exporter that counts (``on_failure``) and logs once what ``inner`` could not deliver."""

    def __init__(self, inner: SpanExporter, on_failure: Callable[[int], None] | None = None) -> None:
        self.inner = inner
        self._on_failure = on_failure
        self.failures = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
        except Exception as exc:  # an exporter must not raise into the processor; count it like a failure
            log.debug("span export raised %s", type(exc).__name__)
            result = SpanExportResult.FAILURE
        if result is not SpanExportResult.SUCCESS:
            self.failures += 1
            if self.failures == 1:
                log.warning("could not export %d spans to the OTLP endpoint (logged once; counted)", len(spans))
            if self._on_failure is not None:
                self._on_failure(len(spans))
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


def traceparent_of_current() -> str | None:
    """The W3C ``traceparent`` of the current span when it is sampled (to send with a hop), else None."""
    if not trace.get_current_span().get_span_context().trace_flags.sampled:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


class Tracing:
    """This process's tracer, or nothing at all when tracing is off (every span is then a shared no-op).

    Args:
        process: ``samo.process`` of the spans (``ingress``, ``model``, ``single-process``).
        exporter: where spans go (default: OTLP/HTTP to ``{otlp_endpoint}/v1/traces``); tests pass their own.
        on_export_failure: called with the spans lost in each failed export (a metric).
    """

    def __init__(
        self,
        settings: TracingSettings,
        process: str,
        exporter: SpanExporter | None = None,
        on_export_failure: Callable[[int], None] | None = None,
    ) -> None:
        self.enabled = settings.enabled
        self._provider: TracerProvider | None = None
        self._tracer: trace.Tracer | None = None
        if not self.enabled:
            return
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            endpoint = settings.otlp_endpoint.rstrip("/") + "/v1/traces"  # the signal path, as OTLP/HTTP appends it
            exporter = OTLPSpanExporter(endpoint=endpoint, timeout=settings.export_timeout_s)
            for name in _EXPORTER_LOGGERS:
                logging.getLogger(name).setLevel(logging.CRITICAL)
        self.exporter = CountingExporter(exporter, on_export_failure)
        resource = Resource.create({"service.name": settings.service_name, "samo.process": process})
        self._provider = TracerProvider(
            resource=resource, sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio))
        )
        # spans leave within a second (the SDK waits 5 s by default), in the processor's own thread
        self._provider.add_span_processor(BatchSpanProcessor(self.exporter, schedule_delay_millis=1000))
        self._tracer = self._provider.get_tracer("samo_serve")

    @classmethod
    def off(cls) -> Tracing:
        return cls(TracingSettings(), "off")

    def span(self, name: str, **attributes: Any) -> contextlib.AbstractContextManager[Any]:
        """A child of the current span, current inside the block (a shared no-op when tracing is off, or
        when the request is not sampled and nothing would be recorded)."""
        if self._tracer is None or not trace.get_current_span().get_span_context().trace_flags.sampled:
            return _NO_SPAN
        return self._tracer.start_as_current_span(name, attributes=attributes or None)

    def server_span(
        self, name: str, headers: Iterable[tuple[bytes, bytes]], request_id: str, tenant: str
    ) -> contextlib.AbstractContextManager[Any]:
        """A request's root in this process: the child of the caller's ``traceparent`` when it sent one.
        A failure is recorded by its class alone (``error.type``): an exception's message is not a span's.
        Tracing off: the shared no-op, so a request makes nothing here."""
        if self._tracer is None:
            return _NO_SPAN
        return self._server_span(self._tracer, name, headers, request_id, tenant)

    @staticmethod
    @contextlib.contextmanager
    def _server_span(
        tracer: trace.Tracer, name: str, headers: Iterable[tuple[bytes, bytes]], request_id: str, tenant: str
    ) -> Iterator[None]:
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers if k in (b"traceparent", b"tracestate")}
        parent = _PROPAGATOR.extract(carrier) if carrier else None
        attributes = {"samo.request_id": request_id, "samo.tenant": tenant}
        with tracer.start_as_current_span(
            name, context=parent, kind=SpanKind.SERVER, attributes=attributes,
            record_exception=False, set_status_on_exception=False,
        ) as span:  # fmt: skip
            try:
                yield
            except BaseException as exc:
                span.set_attribute("error.type", type(exc).__name__)
                span.set_status(trace.StatusCode.ERROR)
                raise

    @contextlib.contextmanager
    def linked(self, name: str, parents: Sequence[SpanContext], **attributes: Any) -> Iterator[None]:
        """A span of work done for several traced calls at once (a micro-batch): in the first one's trace,
        linked to the others; nothing when none of them is sampled."""
        traced = [p for p in parents if p.trace_flags.sampled]
        if self._tracer is None or not traced:
            yield
            return
        parent = trace.set_span_in_context(trace.NonRecordingSpan(traced[0]))
        links = [Link(p) for p in traced[1:]]
        with self._tracer.start_as_current_span(name, context=parent, links=links, attributes=attributes or None):
            yield

    def model_spans(self, batches: Sequence[Any], began: float, ended: float, merged: int) -> None:
        """The model replica's part of each traced call in a merged batch (``TokenBatch.traceparent``):
        ``model.queue`` from the call's send to the batch's start, ``model.ort`` for ONNX Runtime (times are
        ``time.time()`` seconds; hosts' clocks, so a queue across nodes is as right as their sync)."""
        if self._tracer is None:
            return
        for batch in batches:
            if batch.traceparent is None:
                continue
            parent = _PROPAGATOR.extract({"traceparent": batch.traceparent})
            size = {"samo.batch_size": merged, "samo.call_texts": len(batch)}
            for name, start, end in (("model.queue", min(batch.sent_at, began), began), ("model.ort", began, ended)):
                span = self._tracer.start_span(name, context=parent, start_time=int(start * 1e9), attributes=size)
                span.end(end_time=int(end * 1e9))

    def current_parent(self) -> SpanContext:
        return trace.get_current_span().get_span_context()

    def set_attributes(self, **attributes: Any) -> None:
        """On the current span, if it records (the tenant, once the key is known; the response status)."""
        if self._tracer is None:
            return
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes(attributes)

    def flush(self, timeout_s: float = 5.0) -> bool:
        return self._provider.force_flush(int(timeout_s * 1000)) if self._provider is not None else True
