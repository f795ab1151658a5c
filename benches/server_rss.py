#!/usr/bin/env python3
"""Peak RSS of the wor-hub server process alone, under the benchmark's load.

`wor-hub-bench` runs its servers in its own process, so its peak RSS is the client's,
two servers' and the loader's together. This program starts `wor-hub serve` as a
process of its own (release build, sample directory, open mode on loopback), drives it
over HTTP from this process, and reads the server's peak resident set (`VmHWM` in
/proc/PID/status) after each phase:

  1. referral ingest at concurrency 64 (the README fixture's transaction Bundle, a new
     BSN and ServiceRequest identifier each, as wor-hub-bench sends it);
  2. read by id of the stored Tasks at concurrency 8;
  3. the README's poll (Task?owner=..&_lastUpdated=gt..&_sort=_lastUpdated) at
     concurrency 8.

    cargo build --release --bin wor-hub
    python3 benches/server_rss.py [--database-url URL] [--seconds 10]

Without --database-url a fresh SQLite file in a temporary directory is used; a
postgres:// URL must name an empty database (the sample directory is loaded into it).
Every answer must be 2xx: the program exits 1 otherwise. Standard library only.
"""

import argparse
import http.client
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from datetime import datetime, timezone

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURE = (ROOT / "tests/fixtures/referral-transaction.json").read_text()
FIXTURE_BSN = "999999011"
FIXTURE_SR_ID = "HIS-2026-000123"
FIXTURE_AUTHORED = "2026-11-20T10:00:00+01:00"
OWNER = "Organization/tom-in-de-buurt"


def bsn(n):
    """A valid BSN (the eleven-test) of its own for every n: 2n or 2n + 1 after
    10000000, since changing the eighth digit by one moves the check digit by 2."""
    for candidate in (10_000_000 + 2 * n, 10_000_000 + 2 * n + 1):
        digits = [int(c) for c in f"{candidate:08d}"]
        check = sum(d * w for d, w in zip(digits, range(9, 1, -1))) % 11
        if check < 10:
            return f"{candidate:08d}{check}"
    raise AssertionError(n)


class Counter:
    def __init__(self):
        self.lock = threading.Lock()
        self.n = 0

    def next(self):
        with self.lock:
            self.n += 1
            return self.n


def referral(n):
    authored = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    return (
        FIXTURE.replace(FIXTURE_BSN, bsn(n))
        .replace(FIXTURE_SR_ID, f"RSS-{n:09d}")
        .replace(FIXTURE_AUTHORED, authored)
    )


def peak_rss_mb(pid):
    """(peak, current) resident set of `pid` in MB, from /proc/PID/status."""
    fields = {}
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return (int(fields["VmHWM"].split()[0]) / 1024, int(fields["VmRSS"].split()[0]) / 1024)


def phase(port, concurrency, seconds, request):
    """Runs `request(conn, i)` from `concurrency` threads for `seconds`; returns
    (answers, failures). Each thread keeps one connection."""
    stop = time.monotonic() + seconds
    done = Counter()
    failed = []

    def worker(t):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        i = 0
        while time.monotonic() < stop:
            try:
                status, body = request(conn, t, i)
            except (OSError, http.client.HTTPException) as e:
                failed.append(repr(e))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                continue
            if not 200 <= status < 300:
                failed.append(f"{status}: {body[:200]!r}")
            done.next()
            i += 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done.n, failed


def call(conn, method, path, body=None):
    headers = {"Accept": "application/fhir+json"}
    if body is not None:
        headers["Content-Type"] = "application/fhir+json"
    conn.request(method, path, body=body, headers=headers)
    answer = conn.getresponse()
    return answer.status, answer.read()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase")
    parser.add_argument("--binary", default=str(ROOT / "target/release/wor-hub"))
    args = parser.parse_args()

    work = tempfile.TemporaryDirectory(prefix="wor-hub-rss-")
    database = args.database_url or os.path.join(work.name, "hub.db")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(os.path.join(work.name, "server.log"), "w")
    server = subprocess.Popen(
        [args.binary, "serve", "--database-url", database, "--listen", f"127.0.0.1:{port}",
         "--log", "warn", "--log-format", "text"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    failures = []
    try:
        for _ in range(200):
            try:
                probe = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                if call(probe, "GET", "/fhir/metadata")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        else:
            sys.exit("the server did not answer /fhir/metadata")
        print(f"wor-hub {args.binary} on {database.split('@')[-1]}, pid {server.pid}")
        peak, now = peak_rss_mb(server.pid)
        print(f"started: peak RSS {peak:.1f} MB, RSS {now:.1f} MB")

        counter = Counter()
        since = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

        def ingest(conn, _t, _i):
            return call(conn, "POST", "/fhir", referral(counter.next()))

        n, failed = phase(port, 64, args.seconds, ingest)
        failures += failed
        peak, now = peak_rss_mb(server.pid)
        print(f"ingest c64: {n / args.seconds:.0f} referrals/s ({n} in {args.seconds:.0f} s); "
              f"peak RSS {peak:.1f} MB, RSS {now:.1f} MB")

        probe = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        query = urllib.parse.urlencode({"owner": OWNER, "_count": "200", "_elements": "id"})
        status, body = call(probe, "GET", f"/fhir/Task?{query}")
        ids = [e["resource"]["id"] for e in json.loads(body).get("entry", [])]
        if status != 200 or not ids:
            sys.exit(f"no Tasks to read: {status}")

        def read(conn, t, i):
            return call(conn, "GET", f"/fhir/Task/{ids[(t * 7919 + i) % len(ids)]}")

        n, failed = phase(port, 8, args.seconds, read)
        failures += failed
        peak, now = peak_rss_mb(server.pid)
        print(f"read by id c8: {n / args.seconds:.0f}/s; peak RSS {peak:.1f} MB, RSS {now:.1f} MB")

        poll = urllib.parse.urlencode({"owner": OWNER, "_lastUpdated": f"gt{since}",
                                       "_sort": "_lastUpdated"})

        def search(conn, _t, _i):
            return call(conn, "GET", f"/fhir/Task?{poll}")

        n, failed = phase(port, 8, args.seconds, search)
        failures += failed
        peak, now = peak_rss_mb(server.pid)
        print(f"README poll c8: {n / args.seconds:.0f}/s; peak RSS {peak:.1f} MB, "
              f"RSS {now:.1f} MB")
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    if failures:
        print(f"{len(failures)} answers were not 2xx, e.g. {failures[:3]}")
        sys.exit(1)
    print(f"server peak RSS over all phases: {peak:.1f} MB")


if __name__ == "__main__":
    main()
