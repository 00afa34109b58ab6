#!/usr/bin/env python3
"""The relay over TLS vs plain TCP, measured in one run with the two alternating.

  plain   logq simulate (6 services, native JSON) -> the plain port -> SQLite
  tls     the same to a --listen-tls port with mutual TLS (client certificate from the
          relay's tls-client-ca) and a hello token (auth-tokens-file)

For each run: messages / wall second until the last message is stored (SQLite rows,
polled), the relay's CPU (utime + stime from /proc) per message, and the sender's (logq
simulate, from wait4) per message. Certificates are made with the openssl command.
Needs release binaries (cargo build --release --bins).

  python3 bench/tls_vs_plain.py [--n 400000] [--runs 3] [--acks]
"""

import argparse
import os
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
TOKEN = "bench-token"




def openssl(*args):
    subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def make_pki(d):
    """A CA, a server certificate for localhost / 127.0.0.1, a client certificate."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem",
            "-days", "2", "-subj", "/CN=bench CA")
    for name, ext in [
        ("server", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
        ("client", "subjectAltName=DNS:bench-client\nextendedKeyUsage=clientAuth\n"),
    ]:
        with open(f"{d}/{name}.ext", "w") as f:
            f.write("basicConstraints=CA:FALSE\n" + ext)
        openssl("req", *ec, "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr",
                "-subj", f"/CN={name}")
        openssl("x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/ca.pem",
                "-CAkey", f"{d}/ca.key", "-CAcreateserial", "-out", f"{d}/{name}.pem",
                "-days", "2", "-extfile", f"{d}/{name}.ext")
    with open(f"{d}/tokens", "w") as f:
        f.write(TOKEN + "\n")
    with open(f"{d}/token", "w") as f:
        f.write(TOKEN + "\n")


def run(pki, n, tls, acks):
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "logs.db")
        port, tls_port = free_port(), free_port()
        args = [RELAYD, "--listen", f"127.0.0.1:{port}", "--no-udp", "--stats-interval",
                "3600", "--db", f"sqlite:{db}"]
        if tls:
            args += ["--listen-tls", f"127.0.0.1:{tls_port}",
                     "--tls-cert", f"{pki}/server.pem", "--tls-key", f"{pki}/server.key",
                     "--tls-client-ca", f"{pki}/ca.pem", "--auth-tokens-file", f"{pki}/tokens"]
        relay = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                 stderr=open(os.path.join(tmp, "relay.log"), "w"))
        wait_port(port)
        sim = [LOGQ, "simulate", "--count", str(n), "--protocol", "json", "--services", "6"]
        if acks:
            sim += ["--acks", "--ack-timeout", "120s"]
        if tls:
            wait_port(tls_port)
            sim += ["--server", f"127.0.0.1:{tls_port}", "--tls-ca", f"{pki}/ca.pem",
                    "--tls-cert", f"{pki}/client.pem", "--tls-key", f"{pki}/client.key",
                    "--token-file", f"{pki}/token"]
        else:
            sim += ["--server", f"127.0.0.1:{port}"]
        cpu0, t0 = cpu_seconds(relay.pid), time.time()
        sender = subprocess.Popen(sim, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t1 = wait_until(lambda: rows(db), n)
        cpu = cpu_seconds(relay.pid) - cpu0
        _, status, usage = os.wait4(sender.pid, 0)
        sender.returncode = os.waitstatus_to_exitcode(status)
        assert sender.returncode == 0, "simulate failed"
        relay.send_signal(signal.SIGTERM)
        relay.wait(30)
        sender_cpu = usage.ru_utime + usage.ru_stime
        return n / (t1 - t0), cpu / n * 1e6, sender_cpu / n * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=400_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--acks", action="store_true", help="logq simulate --acks (the Logger)")
    a = ap.parse_args()
    results = {"plain": [], "tls": []}
    with tempfile.TemporaryDirectory() as pki:
        make_pki(pki)
        for r in range(a.runs):
            for mode in ("plain", "tls"):
                res = run(pki, a.n, mode == "tls", a.acks)
                results[mode].append(res)
                print(f"run {r + 1} {mode:5}: {res[0]:9.0f} msg/s  relay {res[1]:5.2f} µs/msg"
                      f"  sender {res[2]:5.2f} µs/msg", flush=True)
    print(f"\nmedians over {a.runs} runs of {a.n} messages"
          f"{' (--acks)' if a.acks else ''}:")
    for mode, rs in results.items():
        print(f"  {mode:5}: {statistics.median(x[0] for x in rs):9.0f} msg/s"
              f"  relay {statistics.median(x[1] for x in rs):5.2f} µs/msg"
              f"  sender {statistics.median(x[2] for x in rs):5.2f} µs/msg")


if __name__ == "__main__":
    main()
