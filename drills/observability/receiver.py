"""The drill's alert receiver: Alertmanager's webhook, on 127.0.0.1, recording every delivery.

Owns ``WebhookReceiver``: an HTTP server in the drill's process that stores each notification
(arrival time, group status, and every alert's status and labels) and answers 200, the way a
chat bridge or paging service would. Does not interpret the alerts (``run`` does).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Delivery:
    """One alert as one notification carried it."""

    received_at: float
    """Wall clock (time.time()) when the POST arrived."""
    status: str
    """``firing`` or ``resolved`` (the alert's own status)."""
    labels: Mapping[str, str]
    annotations: Mapping[str, str]

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")


class WebhookReceiver:
    """``with WebhookReceiver() as receiver:`` then give Alertmanager ``receiver.url``."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.notifications = 0
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length) or b"{}")
                owner._record(payload)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/alerts"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _record(self, payload: dict) -> None:
        now = time.time()
        with self._arrived:
            self.notifications += 1
            for alert in payload.get("alerts") or []:
                self.deliveries.append(
                    Delivery(
                        received_at=now,
                        status=str(alert.get("status", "")),
                        labels=dict(alert.get("labels") or {}),
                        annotations=dict(alert.get("annotations") or {}),
                    )
                )
            self._arrived.notify_all()

    def first(
        self, alertname: str, status: str, *, after: float, labels: Mapping[str, str] | None = None
    ) -> Delivery | None:
        with self._lock:
            for delivery in self.deliveries:
                if (
                    delivery.alertname == alertname
                    and delivery.status == status
                    and delivery.received_at >= after
                    and all(delivery.labels.get(k) == v for k, v in (labels or {}).items())
                ):
                    return delivery
        return None

    def wait_for(
        self,
        alertname: str,
        status: str,
        *,
        after: float,
        timeout: float,
        labels: Mapping[str, str] | None = None,
    ) -> Delivery | None:
        """The first matching delivery at or after ``after``, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.first(alertname, status, after=after, labels=labels)
            remaining = deadline - time.monotonic()
            if found is not None or remaining <= 0:
                return found
            with self._arrived:
                self._arrived.wait(min(remaining, 0.5))

    def snapshot(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)
