"""Reading a bastion process's monitoring listener over HTTP, as Prometheus and a load
balancer would: ``get`` any path (an error status is an answer, not an exception), and
``metrics`` parsed into ``{(name, labels): value}``."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Series = tuple[str, frozenset[tuple[str, str]]]


def get(url: str, *, method: str = "GET", timeout_s: float = 5.0) -> tuple[int, bytes]:
    """The status and body of ``url``."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            return int(answer.status), bytes(answer.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())


def get_json(url: str) -> tuple[int, Any]:
    status, body = get(url)
    return status, json.loads(body)


def metrics(base_url: str) -> dict[Series, float]:
    """Every sample of ``/metrics`` (histogram buckets and sums included)."""
    status, body = get(f"{base_url}/metrics")
    assert status == 200, (status, body[:200])
    out: dict[Series, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = float(sample.value)
    return out


def value(scraped: dict[Series, float], name: str, **labels: str) -> float | None:
    """One series' value (None: not exposed)."""
    return scraped.get((name, frozenset(labels.items())))


def names(scraped: dict[Series, float]) -> set[str]:
    return {name for name, _ in scraped}


_LISTENING = re.compile(r"monitoring_listening.*?\bport=(\d+)")


def listening_url(log: Path) -> str:
    """The URL of a process's monitoring listener, from its ``monitoring_listening`` log
    line (port 0 takes a free one); AssertionError until it is logged."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    found = _LISTENING.search(text)
    assert found is not None, "monitoring_listening not logged yet"
    return f"http://127.0.0.1:{found.group(1)}"
