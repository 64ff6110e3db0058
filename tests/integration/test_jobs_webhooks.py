"""Webhooks are signed, carry a stable event id, and reach a receiver that was down for a
while (at least once: a repeat has the same id)."""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time

from stemserve.client.proto_gen import jobs_pb2 as jpb
from stemserve.jobs.webhooks import sign

from tests.integration import test_jobs_support as support
from tests.integration.test_jobs_support import submit, upload, wait_job
from tests.integration.test_service_support import wav_bytes

jobs_server = support.jobs_server  # the fixture, shared
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


class Receiver:
    """Answers 503 until ``up_at``, then 200; keeps every request it accepted."""

    def __init__(self, down_for_s: float) -> None:
        self.up_at = time.monotonic() + down_for_s
        self.accepted: list[tuple[dict, bytes]] = []
        self.refused = 0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                if time.monotonic() < receiver.up_at:
                    receiver.refused += 1
                    self.send_error(503)
                    return
                receiver.accepted.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/hooks"


def wait_for_events(receiver: Receiver, ids: set[str], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not ids <= {h["webhook-id"] for h, _ in receiver.accepted}:
        assert time.monotonic() < deadline, f"events {ids} not all delivered: {receiver.accepted}"
        time.sleep(0.05)


def test_signed_events_reach_a_receiver_that_was_down(jobs_server):
    receiver = Receiver(down_for_s=2.0)
    server = jobs_server(webhook_secret=SECRET)
    stub = server.stub
    sha = upload(stub, wav_bytes(1.0, seed=21))
    hook = jpb.Webhook(url=receiver.url, events=["job.running", "job.succeeded"])
    job = wait_job(stub, submit(stub, input=jpb.JobInput(upload_id=sha), webhook=hook).job.id)
    assert job.status == jpb.JOB_STATUS_SUCCEEDED
    wait_for_events(receiver, {f"{job.id}.running", f"{job.id}.succeeded"})
    assert receiver.refused >= 1  # it was down, and got them later
    for head, body in receiver.accepted:
        assert head["webhook-signature"] == sign(SECRET, head["webhook-id"], int(head["webhook-timestamp"]), body)
        assert abs(int(head["webhook-timestamp"]) - time.time()) < 60
        event = json.loads(body)
        assert event["type"] == "job." + head["webhook-id"].rsplit(".", 1)[1]
        assert event["data"]["id"] == job.id
    done = [json.loads(b) for h, b in receiver.accepted if h["webhook-id"] == f"{job.id}.succeeded"]
    assert done[0]["data"]["status"] == "SUCCEEDED" and len(done[0]["data"]["stems"]) == 4
    # a cache hit answers at once and still gets its one event; no event type it did not ask for
    again = submit(stub, input=jpb.JobInput(audio_sha256=sha), webhook=jpb.Webhook(url=receiver.url)).job
    assert again.cache_hit
    wait_for_events(receiver, {f"{again.id}.succeeded"})
    assert f"{again.id}.running" not in {h["webhook-id"] for h, _ in receiver.accepted}
