"""The server's metrics in Prometheus's text exposition format, written by hand.

Requests by endpoint and HTTP status, sends by delivery status, and a
histogram of request latency by endpoint. One event loop updates them, so no
lock is needed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

#: upper bounds of the latency buckets, in seconds
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Histogram:
    def __init__(self) -> None:
        self.counts = [0] * len(BUCKETS)
        self.total = 0
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.total += 1
        self.sum += seconds
        for index, bound in enumerate(BUCKETS):
            if seconds <= bound:
                self.counts[index] += 1
                return


class Metrics:
    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()
        self.sends: Counter[str] = Counter()
        self.latency: dict[str, Histogram] = {}

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests[endpoint, status] += 1
        self.latency.setdefault(endpoint, Histogram()).observe(seconds)

    def sent(self, statuses: Iterable[str]) -> None:
        self.sends.update(statuses)

    def render(self) -> str:
        lines = [
            "# HELP smspipe_http_requests_total HTTP requests answered, by endpoint and status.",
            "# TYPE smspipe_http_requests_total counter",
        ]
        for (endpoint, status), count in sorted(self.requests.items()):
            lines.append(f'smspipe_http_requests_total{{endpoint="{endpoint}",status="{status}"}} {count}')
        lines += [
            "# HELP smspipe_sends_total SMS documents handled by /send_sms, by delivery status.",
            "# TYPE smspipe_sends_total counter",
        ]
        for outcome, sends in sorted(self.sends.items()):
            lines.append(f'smspipe_sends_total{{status="{outcome}"}} {sends}')
        lines += [
            "# HELP smspipe_http_request_duration_seconds Time to answer a request, by endpoint.",
            "# TYPE smspipe_http_request_duration_seconds histogram",
        ]
        for endpoint, histogram in sorted(self.latency.items()):
            lines += _histogram_lines(endpoint, histogram)
        return "\n".join(lines) + "\n"


def _histogram_lines(endpoint: str, histogram: Histogram) -> list[str]:
    name = "smspipe_http_request_duration_seconds"
    lines = []
    cumulative = 0
    for bound, count in zip(BUCKETS, histogram.counts, strict=True):
        cumulative += count
        lines.append(f'{name}_bucket{{endpoint="{endpoint}",le="{bound:g}"}} {cumulative}')
    lines.append(f'{name}_bucket{{endpoint="{endpoint}",le="+Inf"}} {histogram.total}')
    lines.append(f'{name}_sum{{endpoint="{endpoint}"}} {histogram.sum:.6f}')
    lines.append(f'{name}_count{{endpoint="{endpoint}"}} {histogram.total}')
    return lines
