#!/usr/bin/env python3
"""Ingest with and without retention, the configurations alternating in one run.

    python3 bench/retention_bench.py --workload W.octet [--n 1000000] [--runs 3]
        [--cap 128MiB] [--relay target/release/logrelayd [--relay OTHER ...]]
        [--configs plain,max-size,archive]

W.octet is ../shared/bench/gen_rfc5424.py output (--framing octet). Each run starts a
fresh relay on a fresh store, sends the workload with ../shared/bench/replay.py over 4
connections and times it until /metrics says every message is stored. Configurations:
`plain` (no retention), `max-size` (retention-max-size CAP, smaller than the workload's
store so retention removes blocks for most of the run), `archive` (the same with an
archive dir: every removed row is archived first). For each it prints msg/s, the ratio
of the medians to `plain`'s, the passes that removed rows (how many, the longest and
their total: a pass runs on the writer's thread, so ingest waits for it; archiving runs on
a thread of its own and is not counted), the rows removed, the store's size on disk (file
+ WAL) at its largest while ingest went on (looked at every 100 ms; the largest of the
runs), when the last message was stored and after the relay's stop, the archives' size, and
the relay's CPU seconds per thread name when the last message was stored (with `archive`,
also the rows archived by then, the archive thread's CPU per archived row, and the data
bytes per row of every archive file written by the relay's stop). With several
`--relay` binaries (a build before and after a change) each configuration runs once with
each binary in every round, in turn, so they share the machine's state (name:PATH labels
a binary; each build's ratios are to its own `plain`).
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from benchlib import cpu_seconds, free_port

HERE = os.path.dirname(os.path.abspath(__file__))
REPLAY = os.path.join(HERE, "..", "..", "shared", "bench", "replay.py")


def stored(metrics_port):
    try:
        page = urllib.request.urlopen(
            f"http://127.0.0.1:{metrics_port}/metrics", timeout=2
        ).read().decode()
    except OSError:
        return None
    m = re.search(r"^logrelay_stored_total (\d+)$", page, re.M)
    return int(m.group(1)) if m else None


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def store_size(d):
    """The store's file and WAL, in bytes."""
    total = 0
    for f in os.listdir(d):
        if f.startswith("logs.db"):
            try:
                total += os.path.getsize(os.path.join(d, f))
            except OSError:
                pass
    return total


def archived(path):
    """Rows and data bytes of the archive files whose manifests are written."""
    rows = size = 0
    for f in os.listdir(path):
        if f.endswith(".manifest.json"):
            try:
                m = json.load(open(os.path.join(path, f)))
                rows, size = rows + m["rows"], size + m["bytes"]
            except (OSError, ValueError, KeyError):
                pass
    return rows, size


def thread_cpu(pid):
    """CPU seconds per thread name (threads of one name summed)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            comm = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
            out[comm] = round(out.get(comm, 0) + cpu_seconds(f"{pid}/task/{tid}"), 2)
        except OSError:
            pass
    return out


def one(args, name, extra, work, relay):
    d = tempfile.mkdtemp(prefix=f"ret-{name}-", dir=work)
    port, mport = free_port(), free_port()
    cmd = [relay, "--listen", f"127.0.0.1:{port}", "--no-udp",
           "--db", f"sqlite:{d}/logs.db", "--metrics", f"127.0.0.1:{mport}",
           "--spool-dir", f"{d}/spool"]
    if name == "archive":
        os.mkdir(f"{d}/arch")
        extra = [x.replace("{arch}", f"{d}/arch") for x in extra]
    cmd += extra
    env = dict(os.environ, RUST_LOG="info")
    env.pop("LOGRELAY_CONFIG", None)
    log = open(f"{d}/relay.log", "w")
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.time() + 30
        while stored(mport) is None:
            if time.time() > deadline or p.poll() is not None:
                raise SystemExit(f"{name}: relay did not start; see {d}/relay.log")
            time.sleep(0.05)
        t0 = time.time()
        replay = subprocess.Popen([sys.executable, REPLAY, "--file", args.workload,
                                   "--port", str(port), "--connections", "4"],
                                  stdout=subprocess.DEVNULL)
        # The store's size on disk (file + WAL) while ingest goes on, every 100 ms.
        peak, next_look = 0, 0.0
        deadline = time.time() + 600
        while (stored(mport) or 0) < args.n:
            if time.time() > deadline:
                raise SystemExit(f"{name}: not every message stored in 600 s")
            if time.time() >= next_look:
                peak, next_look = max(peak, store_size(d)), time.time() + 0.1
            time.sleep(0.02)
        secs = time.time() - t0
        if replay.wait() != 0:
            raise SystemExit(f"{name}: the replay failed")
        threads = thread_cpu(p.pid)
        at_last = store_size(d)
        peak = max(peak, at_last)
        rows_archived = archived(f"{d}/arch")[0] if name == "archive" else 0
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=120)
        log.close()
    passes = []
    for line in open(f"{d}/relay.log", errors="replace"):
        m = re.search(r"retention removed ([\d,]+) rows", line)
        ms = re.search(r"\bms=(\d+)", line)
        if m and ms:
            passes.append((int(ms.group(1)), int(m.group(1).replace(",", ""))))
    db = store_size(d)
    res = {
        "config": name, "seconds": secs, "msg_s": args.n / secs,
        "passes": len(passes), "pass_ms_max": max((p[0] for p in passes), default=0),
        "pass_ms_sum": sum(p[0] for p in passes),
        "rows_removed": sum(p[1] for p in passes),
        "store_bytes": db, "store_bytes_at_last": at_last, "store_bytes_peak": peak,
        "archive_bytes": du(f"{d}/arch") if "archive" in name else 0,
        "threads": threads, "rows_archived": rows_archived,
        # The archive thread's CPU per row it had archived, both read when the last
        # message was stored.
        "archive_us_per_row": round(1e6 * threads.get("logrelay-archiv", 0) / rows_archived, 2)
        if rows_archived else None,
    }
    if name == "archive":
        # Data bytes per archived row, over every file written by the relay's stop.
        rows, size = archived(f"{d}/arch")
        res["archive_b_per_row"] = round(size / rows, 1) if rows else None
    if not args.keep:
        shutil.rmtree(d, ignore_errors=True)
    return res


def per_row(xs):
    us = [x["archive_us_per_row"] for x in xs if x.get("archive_us_per_row")]
    return f"{statistics.median(us):.1f} µs" if us else "—"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", required=True)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cap", default="128MiB")
    ap.add_argument("--relay", action="append",
                    help="a relay binary, NAME:PATH to label it; repeat to compare builds")
    ap.add_argument("--configs", default="plain,max-size,archive")
    ap.add_argument("--work", default="/tmp")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    relays = []
    for i, r in enumerate(args.relay or ["target/release/logrelayd"]):
        label, sep, path = r.partition(":")
        relays.append((label, path) if sep else (str(i) if args.relay and len(args.relay) > 1
                                                  else "", r))
    wanted = args.configs.split(",")
    configs = [
        (name, extra) for name, extra in [
            ("plain", []),
            ("max-size", ["--retention-max-size", args.cap]),
            ("archive", ["--retention-max-size", args.cap, "--retention-archive-dir", "{arch}"]),
        ] if name in wanted
    ]
    runs = []
    for name, extra in configs:
        for label, path in relays:
            runs.append((f"{name} ({label})" if label else name, name, extra, path))
    results = {key: [] for key, *_ in runs}
    for r in range(args.runs):
        # Builds alternate inside a round, and their order turns every round.
        for key, name, extra, path in runs if r % 2 == 0 else runs[::-1]:
            res = one(args, name, extra, args.work, path)
            res["round"] = r
            res["relay"] = path
            results[key].append(res)
            print(json.dumps(res), flush=True)
    plains = {path: statistics.median(x["msg_s"] for x in xs)
              for key, name, _, path in runs if name == "plain" for xs in [results[key]]}
    print("\n| config | msg/s (median) | min / max | vs plain | passes removing rows "
          "| longest pass | passes' total | rows removed | store peak | store at last "
          "| store at end | archives | rows archived | archive CPU per row |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, xs in results.items():
        rates = [x["msg_s"] for x in xs]
        med = statistics.median(rates)
        plain = plains.get(xs[0]["relay"], med)
        print(f"| {name} | {med:,.0f} | {min(rates):,.0f} / {max(rates):,.0f} "
              f"| {100 * med / plain:.0f} % | {statistics.median(x['passes'] for x in xs):.0f} "
              f"| {max(x['pass_ms_max'] for x in xs)} ms "
              f"| {statistics.median(x['pass_ms_sum'] for x in xs):.0f} ms "
              f"| {statistics.median(x['rows_removed'] for x in xs):,.0f} "
              f"| {max(x['store_bytes_peak'] for x in xs) / 2**20:.0f} MiB "
              f"| {statistics.median(x['store_bytes_at_last'] for x in xs) / 2**20:.0f} MiB "
              f"| {statistics.median(x['store_bytes'] for x in xs) / 2**20:.0f} MiB "
              f"| {statistics.median(x['archive_bytes'] for x in xs) / 2**20:.0f} MiB "
              f"| {statistics.median(x['rows_archived'] for x in xs):,.0f} "
              f"| {per_row(xs)} |")


if __name__ == "__main__":
    main()
