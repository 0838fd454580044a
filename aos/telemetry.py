"""Telemetry: OpenTelemetry traces from the kernel, in the GenAI semantic conventions.

Off unless an OTLP endpoint is configured (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
or ``OTEL_EXPORTER_OTLP_ENDPOINT``, from the environment or ``.env``); off, the
OpenTelemetry packages are not even imported and every span is one shared
no-op object. On, spans go to the endpoint over OTLP/HTTP (protobuf) in
batches:

- ``invoke_agent {agent name}``: one dispatch (``gen_ai.conversation.id`` the
  session, ``gen_ai.agent.id``/``name``, its status, steps and token usage);
- ``chat {model}``: one model call (provider, request and response model,
  finish reasons, token usage, cost when the server reports one; retries as
  ``aos.llm.retry`` events);
- ``execute_tool bash``: one command (call id, exit code, status);
- ``aos.hook {hook}``: one gate implementation's call (owner, verdict); the
  hook call sent to a service carries its context (``traceparent``);
- ``aos.syscall {name}``: one syscall of a service or an agent over the wire
  (principal kind, error code), a child of the caller's context when its frame
  carries one.

The same endpoint gets **metrics** (``OTEL_METRICS_EXPORTER=none`` keeps them
off), every ``OTEL_METRIC_EXPORT_INTERVAL`` ms (default 60000):
``gen_ai.client.token.usage`` and ``gen_ai.client.operation.duration`` per model
call, ``aos.dispatches`` by status, ``aos.hook.duration`` by hook and skill,
``aos.tool.duration`` by status, ``aos.history.appends`` and
``aos.sessions.active`` (the dispatches running on the node).

**Content** (prompts, replies, commands, their output, error texts that may
quote them) is left out of every span, event and status unless
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``: spans never record
exceptions themselves, so no path carries content past the switch.
docs/observability.md describes it all.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from aos import __version__
from aos.llm import is_openrouter

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

CAPTURE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
Attributes = Mapping[str, str | int | float | bool | list[str] | None]
"""Span attributes; ``None`` values are left out."""


class Span:
    """What instrumented code may do with a span; this base is the no-op one."""

    def set(self, attributes: Attributes) -> None:
        """Set attributes (``None`` values are left out)."""

    def event(self, name: str, attributes: Attributes | None = None) -> None: ...

    def fail(self, status: str, detail: str | None = None) -> None:
        """Mark the span as an error: ``status`` always, ``detail`` (which may
        quote content) only when content is captured."""


_NO_SPAN = Span()


class _Live(Span):
    def __init__(self, span: Any, capture: bool) -> None:
        self._span = span
        self._capture = capture

    def set(self, attributes: Attributes) -> None:
        self._span.set_attributes({k: v for k, v in attributes.items() if v is not None})

    def event(self, name: str, attributes: Attributes | None = None) -> None:
        self._span.add_event(name, dict(attributes or {}))

    def fail(self, status: str, detail: str | None = None) -> None:
        from opentelemetry.trace import Status, StatusCode

        self._span.set_attribute("error.type", status)
        described = f"{status}: {detail}" if self._capture and detail else status
        self._span.set_status(Status(StatusCode.ERROR, described))


class Metrics:
    """The node's instruments (OpenTelemetry metrics), while an endpoint is set."""

    def __init__(self, meter: Meter, active: Callable[[], int]) -> None:
        from opentelemetry.metrics import CallbackOptions, Observation

        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Tokens per model call"
        )
        self.operation = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="Model call duration"
        )
        self.dispatches = meter.create_counter(
            "aos.dispatches", unit="{dispatch}", description="Dispatches ended, by status"
        )
        self.hooks = meter.create_histogram(
            "aos.hook.duration", unit="s", description="Gate implementation calls"
        )
        self.tools = meter.create_histogram(
            "aos.tool.duration", unit="s", description="Tool calls, gates and command"
        )
        self.appends = meter.create_counter(
            "aos.history.appends", unit="{fact}", description="Facts committed to histories"
        )

        def sessions(options: CallbackOptions) -> list[Observation]:
            return [Observation(active())]

        meter.create_observable_gauge(
            "aos.sessions.active",
            [sessions],
            unit="{session}",
            description="Sessions running a dispatch on this node",
        )


class Telemetry:
    """The node's tracer and instruments (see the module's docstring)."""

    def __init__(
        self,
        tracer: Tracer | None = None,
        provider: TracerProvider | None = None,
        *,
        capture_content: bool = False,
        metrics: Metrics | None = None,
        meters: MeterProvider | None = None,
    ) -> None:
        self._tracer = tracer
        self._provider = provider
        self.capture_content = capture_content
        """Whether prompts, replies, commands and outputs go into spans."""
        self.metrics = metrics
        """The instruments, when metrics are on (else None: nothing to record)."""
        self._meters = meters

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    @classmethod
    def from_env(
        cls,
        getenv: Callable[[str], str | None],
        node_id: str,
        active: Callable[[], int] = lambda: 0,
    ) -> Telemetry:
        """Traces to the configured OTLP endpoint, or off (the standard ``OTEL_*``
        variables: ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none`` turn
        them off, ``OTEL_SERVICE_NAME`` names the service, default ``agentos``)."""
        capture = (getenv(CAPTURE_CONTENT) or "").strip().lower() == "true"
        endpoint = getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        base = getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
        if not endpoint and base:
            endpoint = base.rstrip("/") + "/v1/traces"
        off = (getenv("OTEL_SDK_DISABLED") or "").lower() == "true" or (
            getenv("OTEL_TRACES_EXPORTER") or ""
        ).lower() == "none"
        if not endpoint or off:
            return cls(capture_content=capture)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        resource = Resource.create(
            {
                "service.name": getenv("OTEL_SERVICE_NAME") or "agentos",
                "service.version": __version__,
                "service.instance.id": node_id,
            }
        )
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        metrics, meters = None, None
        metrics_endpoint = getenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or (
            base.rstrip("/") + "/v1/metrics" if base else None
        )
        if metrics_endpoint and (getenv("OTEL_METRICS_EXPORTER") or "").lower() != "none":
            meters = _meter_provider(getenv, metrics_endpoint, resource)
            metrics = Metrics(meters.get_meter("aos", __version__), active)
        return cls(
            provider.get_tracer("aos", __version__),
            provider,
            capture_content=capture,
            metrics=metrics,
            meters=meters,
        )

    @contextmanager
    def span(
        self, name: str, attributes: Attributes | None = None, *, parent: str | None = None
    ) -> Iterator[Span]:
        """A span of the current one (the dispatch's, in its task), or of the W3C
        ``parent`` context a caller sent; ended on exit."""
        if self._tracer is None:
            yield _NO_SPAN
            return
        context = None
        if parent:
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

            context = TraceContextTextMapPropagator().extract({"traceparent": parent})
        with self._tracer.start_as_current_span(
            name, context=context, record_exception=False, set_status_on_exception=False
        ) as span:
            live = _Live(span, self.capture_content)
            if attributes:
                live.set(attributes)
            yield live

    def traceparent(self) -> str | None:
        """The current span as a W3C ``traceparent`` (handed to the agent's bash as
        ``TRACEPARENT``, so a command's own spans join the run's trace)."""
        if self._tracer is None:
            return None
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier)
        return carrier.get("traceparent")

    def content(self, value: Any) -> str | None:
        """``value`` as span text (JSON unless a string) when content is captured."""
        if not self.capture_content:
            return None
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    async def flush(self) -> None:
        """Export every ended span, and the metrics so far, now."""
        if self._provider is not None:
            await asyncio.to_thread(self._provider.force_flush)
        if self._meters is not None:
            await asyncio.to_thread(self._meters.force_flush)

    async def close(self) -> None:
        if self._provider is not None:
            await asyncio.to_thread(self._provider.shutdown)
            self._provider = None
            self._tracer = None
        if self._meters is not None:
            await asyncio.to_thread(self._meters.shutdown)
            self._meters = None
            self.metrics = None


def _meter_provider(
    getenv: Callable[[str], str | None], endpoint: str, resource: Any
) -> MeterProvider:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    interval = float(getenv("OTEL_METRIC_EXPORT_INTERVAL") or 60000)
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=endpoint), export_interval_millis=interval
    )
    return MeterProvider(resource=resource, metric_readers=[reader])


def provider_name(base_url: str) -> str:
    """``gen_ai.provider.name`` of the model server at ``base_url`` (any other
    than OpenRouter speaks OpenAI's API)."""
    return "openrouter" if is_openrouter(base_url) else "openai"
