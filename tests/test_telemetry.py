"""Traces: a real dispatch's spans, exported by the OpenTelemetry SDK over OTLP/HTTP
to a receiver in this test (aiohttp) and decoded with ``opentelemetry-proto``: the
real wire format. Two tool calls, one of them refused by a guard; the span tree,
the required GenAI attributes, token counts; content only with the switch on
(searched as bytes in every exported payload)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from conftest import install, kernel_with_model, poll_until
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from test_services import running

from aos.hookspecs import hookimpl
from aos.kernel import Kernel
from aos.principals import ADMIN
from aos.telemetry import CAPTURE_CONTENT
from aos.testing import Reply, ScriptedLLM, temporary_daemon

pytestmark = pytest.mark.anyio

SECRET = "the vault code is PINEAPPLE-4242"
COMMAND = "echo counted-sheep $TRACEPARENT"
REFUSED = "rm -rf /srv/data"
ANSWER = "All done: one command ran, the guard refused the other."


class Receiver:
    """An OTLP/HTTP receiver: every payload as it came, its spans and its metrics
    (name -> data points of the latest export: they are cumulative)."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.spans: list[Span] = []
        self.metrics: dict[str, list[Any]] = {}
        self.url = ""

    async def metric_payload(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.payloads.append(body)
        for resource in ExportMetricsServiceRequest.FromString(body).resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    kind = metric.WhichOneof("data")
                    points = getattr(metric, kind).data_points if kind else []
                    self.metrics[metric.name] = list(points)
        reply = ExportMetricsServiceResponse().SerializeToString()
        return web.Response(body=reply, content_type="application/x-protobuf")

    async def traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.payloads.append(body)
        export = ExportTraceServiceRequest.FromString(body)
        for resource in export.resource_spans:
            for scope in resource.scope_spans:
                self.spans.extend(scope.spans)
        reply = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=reply, content_type="application/x-protobuf")


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/v1/traces", found.traces)
    app.router.add_post("/v1/metrics", found.metric_payload)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    found.url = f"http://127.0.0.1:{port}"
    try:
        yield found
    finally:
        await runner.cleanup()


class Guard:
    """A tool.before gate refusing ``rm``."""

    @hookimpl
    def tool_before(self, output: dict[str, Any]) -> dict[str, Any]:
        if output["args"]["command"].startswith("rm "):
            return {"verdict": "reject", "reason": "no deleting"}
        return output


def attributes(span: Span) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for kv in span.attributes:
        value = kv.value
        kind = value.WhichOneof("value")
        if kind == "array_value":
            found[kv.key] = [v.string_value for v in value.array_value.values]
        else:
            found[kv.key] = getattr(value, kind) if kind else None
    return found


async def traced_dispatch(tmp_path: Path, llm: ScriptedLLM, sink: Receiver, **environ: str) -> str:
    llm.add(Reply.tool_calls([COMMAND, REFUSED]), Reply.text(ANSWER))
    db = f"sqlite://{tmp_path / 'aos.db'}"
    kernel: Kernel
    async with kernel_with_model(
        db, tmp_path, llm, OTEL_EXPORTER_OTLP_ENDPOINT=sink.url, **environ
    ) as kernel:
        install(kernel, "guard")
        kernel.pm.register(Guard(), name="guard")
        agent = await kernel.syscall(
            ADMIN, "agent.create", {"name": "counter", "config": {"skills": ["guard"]}}
        )
        session = await kernel.syscall(ADMIN, "session.create", {"agent_id": agent["agent"]["id"]})
        outcome = await kernel.syscall(
            ADMIN, "session.dispatch", {"id": session["id"], "message": SECRET}
        )
        assert outcome["status"] == "completed", outcome
        await kernel.telemetry.flush()
        return str(session["id"])


async def test_a_dispatch_is_a_tree_of_genai_spans_without_content(tmp_path: Path) -> None:
    async with receiver() as sink:
        with ScriptedLLM() as llm:
            session = await traced_dispatch(tmp_path, llm, sink)
    by_name: dict[str, list[Span]] = {}
    for span in sink.spans:
        by_name.setdefault(span.name, []).append(span)
    [agent] = by_name["invoke_agent counter"]
    chats = by_name["chat test-model"]
    tools = by_name["execute_tool bash"]
    hooks = by_name["aos.hook tool.before"]
    assert (len(chats), len(tools), len(hooks)) == (2, 2, 2)
    assert {s.trace_id for s in sink.spans} == {agent.trace_id}  # one trace
    assert all(s.parent_span_id == agent.span_id for s in chats + tools)
    assert {h.parent_span_id for h in hooks} == {t.span_id for t in tools}
    top = attributes(agent)
    assert top["gen_ai.operation.name"] == "invoke_agent"
    assert top["gen_ai.provider.name"] == "openai"  # an OpenAI-compatible server
    assert top["gen_ai.conversation.id"] == session
    assert top["gen_ai.agent.name"] == "counter"
    assert (top["aos.dispatch.status"], top["aos.dispatch.steps"]) == ("completed", 2)
    first = attributes(chats[0])
    assert (first["gen_ai.operation.name"], first["gen_ai.request.model"]) == ("chat", "test-model")
    assert first["gen_ai.usage.input_tokens"] > 0 and first["gen_ai.usage.output_tokens"] > 0
    assert first["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert top["gen_ai.usage.input_tokens"] == sum(
        attributes(c)["gen_ai.usage.input_tokens"] for c in chats
    )
    verdicts = sorted(attributes(h)["aos.hook.verdict"] for h in hooks)
    assert verdicts == ["pass", "reject"]
    assert sorted(attributes(t)["aos.tool.status"] for t in tools) == ["ok", "rejected"]
    everything = b"".join(sink.payloads)
    for content in (SECRET, COMMAND, "counted-sheep", REFUSED, "no deleting", ANSWER):
        assert content.encode() not in everything, content


async def test_metrics_count_tokens_dispatches_hooks_tools_and_appends(tmp_path: Path) -> None:
    async with receiver() as sink:
        with ScriptedLLM() as llm:
            await traced_dispatch(tmp_path, llm, sink)
    metrics = sink.metrics

    def attrs(point: Any) -> dict[str, Any]:
        return {kv.key: kv.value.string_value for kv in point.attributes}

    tokens = {attrs(p)["gen_ai.token.type"]: p for p in metrics["gen_ai.client.token.usage"]}
    assert tokens["input"].count == tokens["output"].count == 2  # two model calls
    assert (
        tokens["input"].sum > 0 and attrs(tokens["input"])["gen_ai.request.model"] == "test-model"
    )
    [durations] = metrics["gen_ai.client.operation.duration"]
    assert durations.count == 2
    [ended] = metrics["aos.dispatches"]
    assert (attrs(ended)["aos.dispatch.status"], ended.as_int) == ("completed", 1)
    verdicts = {attrs(p)["aos.hook.verdict"]: p.count for p in metrics["aos.hook.duration"]}
    assert verdicts == {"pass": 1, "reject": 1}
    tools = {attrs(p)["aos.tool.status"]: p.count for p in metrics["aos.tool.duration"]}
    assert tools == {"ok": 1, "rejected": 1}
    [appends] = metrics["aos.history.appends"]
    assert appends.as_int >= 8  # started, user, 2 assistants, 2 calls/results, finished
    assert "aos.sessions.active" in metrics


async def test_with_the_switch_on_the_content_is_in_the_spans(tmp_path: Path) -> None:
    async with receiver() as sink:
        with ScriptedLLM() as llm:
            await traced_dispatch(tmp_path, llm, sink, **{CAPTURE_CONTENT: "true"})
    everything = b"".join(sink.payloads)
    for content in (SECRET, COMMAND, "counted-sheep", REFUSED, ANSWER):
        assert content.encode() in everything, content
    [tool] = [
        s
        for s in sink.spans
        if s.name == "execute_tool bash" and attributes(s)["gen_ai.tool.call.arguments"] == COMMAND
    ]
    # the command ran with the W3C trace context of its own span
    traceparent = f"00-{tool.trace_id.hex()}-{tool.span_id.hex()}-0"  # then its flags
    assert attributes(tool)["gen_ai.tool.call.result"].startswith(f"counted-sheep {traceparent}")


async def test_off_without_an_endpoint(tmp_path: Path) -> None:
    with ScriptedLLM() as llm:
        async with kernel_with_model(f"sqlite://{tmp_path / 'aos.db'}", tmp_path, llm) as kernel:
            assert not kernel.telemetry.enabled


TRACED_GUARD = '''\
"""A guard whose check is a span of its own, continuing the kernel's hook call."""
import os

from aos_sdk import define_service
from aos_sdk.service import traceparent
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

provider = TracerProvider()
endpoint = os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] + "/v1/traces"
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
tracer = provider.get_tracer("traced-guard")


@define_service
def service():
    def guard(input_data, output_data):
        parent = TraceContextTextMapPropagator().extract({"traceparent": traceparent()})
        with tracer.start_as_current_span("traced-guard check", context=parent):
            return output_data

    return {"hooks": {"tool.before": guard}}
'''


async def test_a_services_own_span_is_a_child_of_the_hook_span(tmp_path: Path) -> None:
    """The hook call carries its span's context; the service (the Python SDK's
    ``traceparent()``) continues it; the agent's command's syscall joins its tool span."""
    guard = tmp_path / "skills" / "traced-guard"
    guard.mkdir(parents=True)
    (guard / "SKILL.md").write_text(
        "---\nname: traced-guard\ndescription: A guard that traces.\nservice: ./service.py\n---\n"
    )
    (guard / "service.py").write_text(TRACED_GUARD)
    async with receiver() as sink:
        with ScriptedLLM(Reply.tool_call("skill list"), Reply.text("done")) as llm:
            async with temporary_daemon(
                tmp_path,
                AOS_MODEL="m",
                OPENROUTER_BASE_URL=llm.base_url,
                OTEL_EXPORTER_OTLP_ENDPOINT=sink.url,
                AOS_DEFAULT_SKILLS="aos-context,aos-skill",
            ) as daemon:
                kernel = daemon.kernel
                assert kernel is not None
                await poll_until(lambda: running(daemon, "traced-guard"))
                agent = await kernel.syscall(
                    ADMIN, "agent.create", {"name": "t", "config": {"skills": ["traced-guard"]}}
                )
                session = await kernel.syscall(
                    ADMIN, "session.create", {"agent_id": agent["agent"]["id"]}
                )
                outcome = await kernel.syscall(
                    ADMIN, "session.dispatch", {"id": session["id"], "message": "list skills"}
                )
                assert outcome["status"] == "completed", outcome
                await kernel.telemetry.flush()
    [hook] = [s for s in sink.spans if s.name == "aos.hook tool.before"]
    [check] = [s for s in sink.spans if s.name == "traced-guard check"]
    [tool] = [s for s in sink.spans if s.name == "execute_tool bash"]
    assert attributes(hook)["aos.hook.owner"] == "traced-guard"
    assert (check.trace_id, check.parent_span_id) == (hook.trace_id, hook.span_id)
    # the agent's `skill list` calls skill.list on agent.sock with TRACEPARENT: a child of its tool
    syscalls = [s for s in sink.spans if s.name == "aos.syscall skill.list"]
    assert syscalls and all(s.parent_span_id == tool.span_id for s in syscalls)
    assert attributes(syscalls[0])["aos.principal.kind"] == "agent"
