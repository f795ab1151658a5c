#!/usr/bin/env python3
"""A tiny rest-hook receiver for trying wor-hub's notifications (python3 stdlib only).

Usage: python3 tools/hook-receiver.py PORT DIR

Listens on http://127.0.0.1:PORT/ (PORT 0: a free port), answers every POST with 200,
writes each body to DIR/000001.json, DIR/000002.json ... and prints one line per request
to stdout. A Subscription notification Bundle (type history) prints the SubscriptionStatus
`type` parameter (its first entry) and its event numbers, comma-separated, or `-` if it
has none; a FHIR message Bundle (type message, e.g. a referral-status message to a
sender's registered Endpoint) prints `message`, the MessageHeader's event code and the
id of the message it answers (MessageHeader.response.identifier, or `-`):

    handshake -
    event-notification 1
    event-notification 2,3
    message referral-status msg-2026-0001

A body that is neither prints `? -`. On start it says where it listens on
stderr (`hook-receiver: listening on http://127.0.0.1:PORT/`). Stop it with Ctrl-C or
SIGTERM. For local trials only: it checks nothing and keeps everything.
"""

import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


def summary(body):
    """`<type> <event numbers or ->` of a notification Bundle, `message <event code>
    <response.identifier or ->` of a message Bundle."""
    try:
        bundle = json.loads(body)
        if bundle.get("type") == "message":
            header = bundle["entry"][0]["resource"]
            event = header["eventCoding"]["code"]
            answered = header.get("response", {}).get("identifier") or "-"
            return f"message {event} {answered}"
        params = bundle["entry"][0]["resource"]["parameter"]
        kind = next(p["valueCode"] for p in params if p.get("name") == "type")
    except (ValueError, LookupError, TypeError, AttributeError, StopIteration):
        return "? -"
    numbers = []
    for p in params:
        if p.get("name") == "notification-event":
            for part in p.get("part", []):
                if part.get("name") == "event-number":
                    numbers.append(str(part.get("valueString", part.get("valueInteger"))))
    return f"{kind} {','.join(numbers) or '-'}"


class Hook(BaseHTTPRequestHandler):
    count = 0

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Hook.count += 1
        with open(os.path.join(self.server.dir, f"{Hook.count:06d}.json"), "wb") as f:
            f.write(body)
        print(summary(body), flush=True)  # before the answer: logged once acknowledged
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass  # stdout is the one-line-per-request log


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    port, directory = int(sys.argv[1]), sys.argv[2]
    os.makedirs(directory, exist_ok=True)
    server = HTTPServer(("127.0.0.1", port), Hook)
    server.dir = directory
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"hook-receiver: listening on http://127.0.0.1:{server.server_port}/",
          file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
