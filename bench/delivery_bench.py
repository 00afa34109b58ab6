#!/usr/bin/env python3
"""Acknowledged delivery, RELP and forwarding, measured in one run with alternating configs.

  acks      logq simulate --protocol json (6 services) into logrelayd -> SQLite, without and
            with --acks (the Logger, hello, seq, ack lines).
  relp      rsyslog (imtcp -> omrelp) as the sender; the receiver is logrelayd --listen-relp
            -> SQLite, or rsyslog's own imrelp -> a flat file, as shipped and with Nagle's
            algorithm off on imrelp's sockets (bench/shim/nodelay.c, built with cc and
            LD_PRELOADed: imrelp answers each frame in its own small segment, and with
            omrelp's delayed ACKs every window of 128 frames waits ~40 ms).
  forward   logq simulate --acks into a central relay directly, or into an edge relay
            (--db none --forward-to central) in front of it.

For each run: messages / wall second until the last message is stored (SQLite rows or file
lines, polled), and the receiving daemons' CPU (utime + stime from /proc) per message.
Needs release binaries (cargo build --release --bins) and, for relp, rsyslog + rsyslog-relp.

  python3 bench/delivery_bench.py [--n 400000] [--runs 3] [--only acks,relp,forward]
"""

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time

from benchlib import free_port, cpu_seconds, rows, wait_port, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELAYD = os.path.join(ROOT, "target/release/logrelayd")
LOGQ = os.path.join(ROOT, "target/release/logq")


def relay(tmp, name, args):
    port = free_port()
    p = subprocess.Popen(
        [RELAYD, "--listen", f"127.0.0.1:{port}", "--no-udp", "--stats-interval", "3600"] + args,
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(tmp, f"{name}.log"), "w"),
    )
    wait_port(port)
    return p, port



def lines(path):
    try:
        with open(path, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return 0



def stop(*procs):
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


def simulate(port, n, acks):
    args = [LOGQ, "simulate", "--server", f"127.0.0.1:{port}", "--count", str(n),
            "--protocol", "json", "--services", "6"]
    if acks:
        args += ["--acks", "--ack-timeout", "120s"]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_acks(n, acks):
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "logs.db")
        p, port = relay(tmp, "relay", ["--db", f"sqlite:{db}"])
        cpu0, t0 = cpu_seconds(p.pid), time.time()
        sender = simulate(port, n, acks)
        t1 = wait_until(lambda: rows(db), n)
        cpu = cpu_seconds(p.pid) - cpu0
        assert sender.wait(120) == 0, "simulate failed"
        stop(p)
        return n / (t1 - t0), cpu / n * 1e6


def nodelay_shim(tmp):
    """bench/shim/nodelay.c built as a shared object in `tmp`."""
    out = os.path.join(tmp, "nodelay.so")
    if not os.path.exists(out):
        subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", out,
                        os.path.join(ROOT, "bench/shim/nodelay.c"), "-ldl"], check=True)
    return out


def rsyslog_conf(tmp, name, body, preload=None):
    work = os.path.join(tmp, name)
    os.makedirs(work)
    conf = os.path.join(work, "rsyslog.conf")
    with open(conf, "w") as f:
        f.write(f'global(workDirectory="{work}")\n' + body)
    env = dict(os.environ, LD_PRELOAD=preload) if preload else None
    p = subprocess.Popen(["rsyslogd", "-n", "-f", conf, "-i", os.path.join(work, "pid")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return p


def feed(port, n):
    s = socket.create_connection(("127.0.0.1", port))
    buf = bytearray()
    for i in range(n):
        buf += b"<13>Dec  1 04:00:00 h relpbench: relpseq=%d padding-to-a-typical-size-%d\n" % (i, i)
        if len(buf) > 60000:
            s.sendall(buf)
            buf.clear()
    s.sendall(buf)
    s.close()


def run_relp(n, receiver, shim_dir=None):
    with tempfile.TemporaryDirectory() as tmp:
        relp_port = free_port()
        if receiver == "logrelayd":
            db = os.path.join(tmp, "logs.db")
            target, _ = relay(tmp, "relay", ["--db", f"sqlite:{db}",
                                             "--listen-relp", f"127.0.0.1:{relp_port}"])
            count = lambda: rows(db)  # noqa: E731
        else:
            out = os.path.join(tmp, "out.log")
            target = rsyslog_conf(tmp, "imrelp", (
                'module(load="imrelp")\n'
                f'input(type="imrelp" port="{relp_port}" address="127.0.0.1")\n'
                f'*.* action(type="omfile" file="{out}")\n'),
                preload=nodelay_shim(shim_dir) if shim_dir else None)
            count = lambda: lines(out)  # noqa: E731
        wait_port(relp_port)
        in_port = free_port()
        sender = rsyslog_conf(tmp, "omrelp", (
            'module(load="imtcp")\nmodule(load="omrelp")\n'
            f'input(type="imtcp" address="127.0.0.1" port="{in_port}")\n'
            f'*.* action(type="omrelp" target="127.0.0.1" port="{relp_port}" '
            'template="RSYSLOG_SyslogProtocol23Format" queue.type="LinkedList" '
            f'queue.size="{n * 2}" action.resumeRetryCount="-1")\n'))
        wait_port(in_port)
        cpu0, t0 = cpu_seconds(target.pid), time.time()
        feed(in_port, n)
        t1 = wait_until(count, n)
        cpu = cpu_seconds(target.pid) - cpu0
        stop(sender, target)
        return n / (t1 - t0), cpu / n * 1e6


def run_forward(n, via_edge):
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "central.db")
        central, cport = relay(tmp, "central", ["--db", f"sqlite:{db}"])
        procs, port = [central], cport
        if via_edge:
            edge, port = relay(tmp, "edge", ["--db", "none", "--spool-dir",
                                             os.path.join(tmp, "edge-spool"),
                                             "--forward-to", f"127.0.0.1:{cport}"])
            procs.insert(0, edge)
        cpu0 = [cpu_seconds(p.pid) for p in procs]
        t0 = time.time()
        sender = simulate(port, n, True)
        t1 = wait_until(lambda: rows(db), n)
        cpu = sum(cpu_seconds(p.pid) - c for p, c in zip(procs, cpu0))
        assert sender.wait(120) == 0, "simulate failed"
        stop(*procs)
        return n / (t1 - t0), cpu / n * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=400_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default="acks,relp,forward")
    a = ap.parse_args()
    shim_dir = tempfile.mkdtemp(prefix="relp-shim-")  # removed at the end
    parts = {
        "acks": [("native, acks off", lambda: run_acks(a.n, False)),
                 ("native, acks on (--acks)", lambda: run_acks(a.n, True))],
        "relp": [("rsyslog omrelp -> logrelayd --listen-relp -> SQLite",
                  lambda: run_relp(a.n, "logrelayd")),
                 ("rsyslog omrelp -> rsyslog imrelp -> file", lambda: run_relp(a.n, "rsyslog")),
                 ("rsyslog omrelp -> rsyslog imrelp (TCP_NODELAY) -> file",
                  lambda: run_relp(a.n, "rsyslog", shim_dir))],
        "forward": [("simulate --acks -> central -> SQLite", lambda: run_forward(a.n, False)),
                    ("simulate --acks -> edge (--db none) -> central -> SQLite",
                     lambda: run_forward(a.n, True))],
    }
    for part in a.only.split(","):
        configs = parts[part]
        results = {name: [] for name, _ in configs}
        for _ in range(a.runs):
            for name, fn in configs:  # alternating, so load changes hit both alike
                results[name].append(fn())
        print(f"\n{part}: N = {a.n:,}, {a.runs} runs each, alternating")
        print("| config | msg/s (median) | min / max | receiver CPU per msg (median) |")
        print("|---|---|---|---|")
        for name, rs in results.items():
            rates = [r for r, _ in rs]
            cpus = [c for _, c in rs]
            print(f"| {name} | {statistics.median(rates):,.0f} | {min(rates):,.0f} / "
                  f"{max(rates):,.0f} | {statistics.median(cpus):.2f} µs |")
    shutil.rmtree(shim_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
