#!/usr/bin/env python3
"""Runs the README's walkthrough ("A first session with curl") against a fresh server.

The story is the README's shell blocks marked with an HTML comment right above the fence:

    <!-- walkthrough: server -->   the block that starts the server (run in the background)
    <!-- walkthrough -->           a block of the story (run in order, in one bash session)

Lines `#> text` in a story block are the output the block must print (its commands print
the HTTP status with `curl -w '%{http_code}\\n'` and key fields with `jq`); `...` in such a
line matches any text. Every story block must state at least one such line.

The runner starts the server block with `127.0.0.1:8080` replaced by a free loopback port and
`walkthrough.db` by a file in a fresh temporary directory, waits for /health/ready, runs the
story blocks in order under `set -euo pipefail` from the repository root, compares each
block's output with its `#>` lines, and stops the server. It fails (exit status 1) on the
first difference, a block that fails or does not run, or a server that does not start.
Needs python3, bash, curl and jq. Usage: python3 tools/readme-walkthrough.py [README.md]
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARK = re.compile(r"^<!--\s*walkthrough(:\s*server)?\s*-->\s*$")
BEGIN, END = "@@walkthrough-begin", "@@walkthrough-end"
STORY_SECTION = "## A first session with curl"
SERVER_START_SECONDS = 300  # `cargo run` may have to build first
STORY_SECONDS = 600


def fail(message):
    print(f"readme-walkthrough: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def blocks(readme):
    """[(line number, is_server, text)] of the marked ```sh blocks, in order."""
    lines = open(readme, encoding="utf-8").read().split("\n")
    found = []
    i = 0
    while i < len(lines):
        m = MARK.match(lines[i])
        if not m:
            i += 1
            continue
        j = i + 1
        if j >= len(lines) or lines[j].strip() not in ("```sh", "```bash"):
            fail(f"{readme}:{i + 1}: a walkthrough marker must be followed by a ```sh fence")
        k = j + 1
        while k < len(lines) and lines[k].strip() != "```":
            k += 1
        if k >= len(lines):
            fail(f"{readme}:{j + 1}: unterminated code block")
        found.append((j + 1, m.group(1) is not None, "\n".join(lines[j + 1 : k])))
        i = k + 1
    return found


def unmarked_in_story(readme):
    """Line numbers of ```sh fences in the story's section that carry no marker."""
    lines = open(readme, encoding="utf-8").read().split("\n")
    inside, fence, bad = False, False, []
    for i, line in enumerate(lines):
        if line.startswith("## "):
            inside = line.strip() == STORY_SECTION
        if line.strip().startswith("```"):
            if not fence and inside and line.strip() in ("```sh", "```bash"):
                if i == 0 or not MARK.match(lines[i - 1]):
                    bad.append(i + 1)
            fence = not fence
    return bad


def expected(text):
    out = []
    for line in text.split("\n"):
        s = line.strip()
        if s == "#>":
            out.append("")
        elif s.startswith("#> "):
            out.append(s[3:])
    return out


def matches(pattern, line):
    parts = [re.escape(p) for p in pattern.split("...")]
    return re.fullmatch(".*".join(parts), line) is not None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, server, log):
    deadline = time.time() + SERVER_START_SECONDS
    while time.time() < deadline:
        if server.poll() is not None:
            fail(f"the server block exited with status {server.returncode}:\n{open(log).read()[-4000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    fail(f"the server did not become ready in {SERVER_START_SECONDS} s:\n{open(log).read()[-4000:]}")


def stop(server):
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def main():
    readme = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "README.md")
    for tool in ("bash", "curl", "jq"):
        if shutil.which(tool) is None:
            fail(f"`{tool}` is not installed (Debian: apt-get install {tool})")
    name = os.path.relpath(readme)
    found = blocks(readme)
    servers = [b for b in found if b[1]]
    story = [b for b in found if not b[1]]
    if len(servers) != 1 or not story:
        fail(f"{readme}: expected one server block and story blocks, found {len(servers)} and {len(story)}")
    bad = unmarked_in_story(readme)
    if bad:
        fail(f"{name}:{bad[0]}: a shell block in '{STORY_SECTION}' without a walkthrough marker")
    if found[0] is not servers[0]:
        fail(f"{readme}: the server block must come first")
    for line, _, text in story:
        if not expected(text):
            fail(f"{readme}:{line}: the block states no answer (`#> ...` lines)")

    started = time.time()
    tmp = tempfile.mkdtemp(prefix="wor-hub-walkthrough-")
    port = free_port()

    def localise(text):
        return text.replace("127.0.0.1:8080", f"127.0.0.1:{port}").replace(
            "walkthrough.db", os.path.join(tmp, "walkthrough.db")
        )

    log = os.path.join(tmp, "server.log")
    server = None
    try:
        with open(log, "w") as out:
            server = subprocess.Popen(
                ["bash", "-c", "set -euo pipefail\n" + localise(servers[0][2])],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        wait_ready(port, server, log)

        script = ["set -euo pipefail"]
        for n, (_, _, text) in enumerate(story):
            script += [f"echo '{BEGIN} {n}'", localise(text), f"echo '{END} {n}'"]
        try:
            run = subprocess.run(
                ["bash", "-c", "\n".join(script)], cwd=ROOT, stdout=subprocess.PIPE,
                text=True, timeout=STORY_SECONDS, env=dict(os.environ, TMPDIR=tmp),
            )
            stdout, status = run.stdout, run.returncode
        except subprocess.TimeoutExpired as e:
            stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            status = f"timeout after {STORY_SECONDS} s"

        outputs, current = {}, None
        for line in stdout.split("\n"):
            if line.startswith(BEGIN):
                current = int(line.split()[1])
                outputs[current] = {"lines": [], "ended": False}
            elif line.startswith(END):
                outputs[int(line.split()[1])]["ended"] = True
                current = None
            elif current is not None:
                outputs[current]["lines"].append(line)

        for n, (line, _, text) in enumerate(story):
            got = outputs.get(n)
            if got is None:
                fail(f"{name}:{line}: block {n + 1} did not run (the story stopped before it)")
            if not got["ended"]:
                printed = "\n".join(got["lines"])
                fail(f"{name}:{line}: block {n + 1} failed (bash status {status}); it printed:\n{printed}")
            want = expected(text)
            ok = len(want) == len(got["lines"]) and all(
                matches(w, g) for w, g in zip(want, got["lines"])
            )
            if not ok:
                fail(
                    f"README.md:{line}: block {n + 1} printed other answers than it states.\n"
                    + "stated:\n  " + "\n  ".join(want) + "\nprinted:\n  " + "\n  ".join(got["lines"])
                )
        if status != 0:
            fail(f"the story ended with bash status {status}")
        print(
            f"readme-walkthrough: {len(story)} blocks of the README walkthrough answered as stated "
            f"({time.time() - started:.1f} s)"
        )
    finally:
        if server is not None:
            stop(server)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
