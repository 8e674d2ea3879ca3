"""What happens once per inference request when it ends, whatever its front end: metrics, the
trace's server span, the access log line. Front ends call :meth:`RequestObserver.finish`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from gateway.metrics import GatewayMetrics, RequestRecord

if TYPE_CHECKING:
    from gateway.access_log import AccessLog
    from gateway.tracing.tracer import RequestTracer


class RequestObserver:
    def __init__(
        self,
        metrics: GatewayMetrics,
        tracer: RequestTracer | None = None,
        access_log: AccessLog | None = None,
    ) -> None:
        self.metrics = metrics
        self.tracer = tracer
        self.access_log = access_log

    def finish(self, record: RequestRecord, status: int) -> None:
        self.metrics.finish(record, status)
        trace = record.trace
        if trace is not None and trace.sampled:
            trace.end(record, status)
        if self.access_log is not None:
            self.access_log.finish(record, status, time.perf_counter())

    def close(self) -> None:
        """Flush the spans still queued (bounded by the export timeout)."""
        tracer, self.tracer = self.tracer, None
        if tracer is not None:
            tracer.shutdown()
