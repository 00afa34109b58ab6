#!/usr/bin/env python3
"""What faults cost, measured on real processes (issue: reliability under faults).

  kill9   a sender at full rate over 4 TCP connections; the relay is killed with -9 after
          a few seconds, restarted on the same store (it stores what it had spooled), and
          the rows are counted. Lines are fixed-length, so bytes give lines exactly:
            lost = written by the sender - still queued in the kernel at the kill - stored
          ("queued" is what no relay could have read: Recv-Q/Send-Q of the sockets, read
          with `ss` while the sender is stopped with SIGSTOP just before the kill).
  stall   N connections (default 9,000) push while the store is locked for 30 s by another
          connection; the relay's RSS is sampled every 0.25 s (peak reported); then, lock
          still held and senders stopped mid-push, SIGTERM's time to exit is measured; the
          lock is released, the relay restarted on the same store, and lost is counted as
          for kill9.

Each relay binary given with --bin is measured in turn, alternating, --runs times.

  python3 bench/faults_bench.py --bin target/release/logrelayd [--bin OLD] [--only kill9,stall]
"""

import argparse
import os
import resource
import selectors
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import free_port, rows, wait_port

LINE_LEN = 200  # bytes per line, LF included


def line_block(n):
    body = "<134>1 2026-12-01T10:00:00.000Z bench app 42 - - "
    pad = LINE_LEN - len(body) - 1
    line = (body + "x" * pad + "\n").encode()
    assert len(line) == LINE_LEN
    return line * n


def start_relay(binary, db, port, extra=()):
    args = [binary, "--listen", f"127.0.0.1:{port}", "--db", f"sqlite:{db}", "--no-udp"]
    proc = subprocess.Popen(
        args + list(extra), stdout=subprocess.DEVNULL, stderr=open(db + ".log", "ab")
    )
    wait_port(port)
    return proc



def settle(db, proc, timeout=120):
    """Rows once the count stops moving (two equal reads 1 s apart)."""
    end = time.time() + timeout
    last = -1
    while time.time() < end:
        n = rows(db, timeout=30)
        if n == last:
            return n
        last = n
        time.sleep(1)
    return last


def kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def queued_bytes(port):
    """Bytes the kernel holds on both ends of every connection to `port`."""
    out = subprocess.run(
        ["ss", "-tnH", "state", "established", f"( sport = :{port} or dport = :{port} )"],
        capture_output=True, text=True, check=True,
    ).stdout
    total = 0
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            total += int(parts[0]) + int(parts[1])
    return total


def sender(port, conns, seconds):
    """Child process: writes fixed-length lines round-robin until the time is up or
    every connection failed; prints the bytes written (also on SIGINT)."""
    block = memoryview(line_block(1000))
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(conns)]
    sel = selectors.DefaultSelector()
    for i, s in enumerate(socks):
        s.setblocking(False)
        sel.register(s, selectors.EVENT_WRITE, i)
    offset = [0] * conns
    live = conns
    written = 0
    end = time.time() + seconds
    try:
        while time.time() < end and live:
            for key, _ in sel.select(timeout=0.5):
                s, i = key.fileobj, key.data
                try:
                    n = s.send(block[offset[i]:])
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    sel.unregister(s)
                    live -= 1
                    continue
                written += n
                offset[i] = (offset[i] + n) % len(block)
    except KeyboardInterrupt:
        pass
    finally:
        print(written, flush=True)


def kill9(binary, seconds):
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        db = os.path.join(tmp, "logs.db")
        port = free_port()
        relay = start_relay(binary, db, port)
        send = subprocess.Popen(
            [sys.executable, __file__, "_send", str(port), "4", str(seconds + 30)],
            stdout=subprocess.PIPE, text=True,
        )
        time.sleep(seconds)
        send.send_signal(signal.SIGSTOP)
        time.sleep(0.2)
        queued = queued_bytes(port)
        relay.kill()
        relay.wait()
        send.send_signal(signal.SIGCONT)
        written = int(send.communicate(timeout=60)[0].strip() or 0)
        relay = start_relay(binary, db, port)
        stored = settle(db, relay)
        relay.send_signal(signal.SIGTERM)
        relay.wait(timeout=60)
        lines = written // LINE_LEN
        lost = lines - queued // LINE_LEN - stored
        return {"written": lines, "queued": queued // LINE_LEN, "stored": stored, "lost": lost}


def stall(binary, conns, lock_secs):
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        db = os.path.join(tmp, "logs.db")
        port = free_port()
        relay = start_relay(binary, db, port, ["--max-connections", str(conns + 100)])
        lock = sqlite3.connect(db, timeout=30, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
        idle = kib(relay.pid, "VmRSS")
        send = subprocess.Popen(
            [sys.executable, __file__, "_send", str(port), str(conns), str(lock_secs + 120)],
            stdout=subprocess.PIPE, text=True,
        )
        peak = 0
        end = time.time() + lock_secs
        while time.time() < end:
            peak = max(peak, kib(relay.pid, "VmRSS"))
            time.sleep(0.25)
        # SIGTERM with the lock still held and every connection pushing.
        send.send_signal(signal.SIGSTOP)
        time.sleep(0.2)
        queued = queued_bytes(port)
        t0 = time.time()
        relay.send_signal(signal.SIGTERM)
        try:
            relay.wait(timeout=120)
        except subprocess.TimeoutExpired:
            relay.kill()
            relay.wait()
        exit_s = time.time() - t0
        send.send_signal(signal.SIGCONT)
        send.send_signal(signal.SIGINT)
        written = int(send.communicate(timeout=120)[0].strip() or 0) // LINE_LEN
        lock.execute("COMMIT")
        lock.close()
        relay = start_relay(binary, db, port)
        stored = settle(db, relay)
        relay.send_signal(signal.SIGTERM)
        relay.wait(timeout=60)
        return {
            "idle_rss_mib": round(idle / 1024, 1), "peak_rss_mib": round(peak / 1024, 1),
            "sigterm_exit_s": round(exit_s, 2), "written": written,
            "queued": queued // LINE_LEN, "stored": stored,
            "lost": written - queued // LINE_LEN - stored,
        }


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_send":
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        sender(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", action="append", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default="kill9,stall")
    ap.add_argument("--kill-after", type=float, default=5)
    ap.add_argument("--conns", type=int, default=9000)
    ap.add_argument("--lock-secs", type=float, default=30)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    only = a.only.split(",")
    results = {}
    for run in range(a.runs):
        for b in a.bin:
            if "kill9" in only:
                r = kill9(b, a.kill_after)
                print(f"kill9 {b} run {run}: {r}", flush=True)
                results.setdefault(("kill9", b), []).append(r)
            if "stall" in only:
                r = stall(b, a.conns, a.lock_secs)
                print(f"stall {b} run {run}: {r}", flush=True)
                results.setdefault(("stall", b), []).append(r)
    print()
    for (what, b), rs in results.items():
        keys = rs[0].keys()
        med = {k: statistics.median(r[k] for r in rs) for k in keys}
        worst = {k: max(r[k] for r in rs) for k in keys}
        print(f"{what} {b}: median {med}  max {worst}")


if __name__ == "__main__":
    main()
