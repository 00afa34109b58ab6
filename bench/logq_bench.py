#!/usr/bin/env python3
"""logq benchmark (issue 4): builds a 10M-row store from the realistic workload, then
times the queries below and the follow latency. Traffic stays on 127.0.0.1.

    python3 bench/logq_bench.py [--rows 10000000] [--keep DIR] [--bin DIR] [--only-words]

Needs a release build (cargo build --release --examples --bins) and ../shared/bench.
"""
import argparse, datetime, json, os, re, socket, statistics, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")
LOGQ = os.path.join(REL, "logq")


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, **kw)


def timed(cmd, runs=5):
    """Median wall time in ms of a shell command (output discarded by the command)."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, shell=True, check=False, stdout=subprocess.DEVNULL)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--keep", help="directory to keep (and reuse) the store in")
    ap.add_argument("--bin", help="directory of the logq, logrelayd and examples/fill_store "
                    "to measure (default: target/release)")
    ap.add_argument("--only-words", action="store_true", help="only the word search, counts "
                    "and stats queries")
    a = ap.parse_args()
    global REL, LOGQ
    if a.bin:
        REL = os.path.abspath(a.bin)
        LOGQ = os.path.join(REL, "logq")
    work = a.keep or tempfile.mkdtemp(prefix="logq-bench-")
    os.makedirs(work, exist_ok=True)
    db = os.path.join(work, "logs.db")
    workload = os.path.join(work, "workload.lf")
    if not os.path.exists(workload):
        sh(f"python3 {ROOT}/../shared/bench/gen_rfc5424.py -n 1000000 --framing lf -o {workload}")
    if not os.path.exists(db):
        t = time.perf_counter()
        sh(f"{REL}/examples/fill_store {workload} {db} {a.rows} 72")
        print(f"built {a.rows:,} rows in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    sqlite = f"sqlite:{db}"
    q = f"{LOGQ} --db {sqlite}"
    # A source and a host that exist in the workload: the oldest row's (the newest may be
    # a follow-latency probe of an earlier run of this script on a kept store).
    src = subprocess.run(f"{q} -o json | head -1", shell=True, capture_output=True, text=True).stdout
    rec = json.loads(src)
    app, host = rec["source"], rec["hostname"]
    results = []
    if a.only_words:
        print_table(word_search(q, db))
        return
    for name, cmd in [
        ("(a) -p err -S -1h -n 100", f"{q} -p err -S -1h -n 100 > /dev/null"),
        (f"(b) -s {app} -n 100", f"{q} -s {app} -n 100 > /dev/null"),
        (f"(c) -H {host} -S yesterday -U today -o json | wc -l",
         f"{q} -H '{host}' -S yesterday -U today -o json | wc -l"),
        ("(d) -g 'timeout|refused' over everything", f"{q} -g 'timeout|refused' > /dev/null"),
    ]:
        runs = 5 if name.startswith(("(a)", "(b)")) else 3
        results.append((name, f"{timed(cmd, runs):.1f} ms"))
    # (e) 1M rows as short: the oldest million (rows are spread evenly over 72 h).
    oldest = json.loads(subprocess.run(f"{q} -o json | head -1", shell=True, capture_output=True,
                                       text=True).stdout)["timestamp"]
    t0 = datetime.datetime.fromisoformat(oldest.replace("Z", "+00:00"))
    until = (t0 + datetime.timedelta(hours=72 * 1_000_000 / a.rows)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    n = int(subprocess.run(f"{q} -U {until} -o cat | wc -l", shell=True, capture_output=True, text=True).stdout)
    ms = timed(f"{q} -U {until} > /dev/null", 3)
    results.append((f"(e) dump {n:,} rows as short to /dev/null", f"{ms:.0f} ms = {n / ms * 1000:,.0f} rows/s"))
    results += word_search(q, db)
    results.append(("follow latency send→print (1,000 msgs)", follow_latency(db)))
    print_table(results)


def print_table(results):
    print("| query | result |\n|---|---|")
    for name, r in results:
        print(f"| `{name}` | {r} |")


def out(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout


def word_search(q, db):
    """Issue 16: word search, counts and stats, and the token filters' share of the file."""
    # A request id (each occurs once per cycle of the workload: ≤ 100 rows) and a word in
    # ~1 % of rows.
    line = out(f"{q} -o cat -g request_id= | head -1")
    rare = re.search(r"request_id=([0-9a-f]{16})", line).group(1)
    n_rare = int(out(f"{q} -w {rare} --count"))
    n_common = int(out(f"{q} -w disconnected --count"))
    n_err = int(out(f"{q} -p err..err --count"))
    res = []
    for name, cmd in [
        (f"-w {rare} ({n_rare} rows) over everything", f"{q} -w {rare} > /dev/null"),
        (f"-w {rare} --count", f"{q} -w {rare} --count > /dev/null"),
        ("-w zzzqqqnotaword (no row)", f"{q} -w zzzqqqnotaword > /dev/null"),
        (f"-w disconnected ({n_common:,} rows) -n 50", f"{q} -w disconnected -n 50 > /dev/null"),
        ("-w disconnected | head -50", f"{q} -w disconnected | head -50 > /dev/null"),
        ("stats --by level --bucket 1h (three days)",
         f"{LOGQ} stats --db sqlite:{db} --by level --bucket 1h > /dev/null"),
        (f"-p err..err --count ({n_err:,}) over everything", f"{q} -p err..err --count > /dev/null"),
        ("--count (everything)", f"{q} --count > /dev/null"),
        ("-S -1h --count", f"{q} -S -1h --count > /dev/null"),
    ]:
        res.append((name, f"{timed(cmd, 5):.1f} ms"))
    size = os.path.getsize(db)
    tokens = out(f"sqlite3 -readonly {db} \"SELECT sum(pgsize) FROM dbstat WHERE name = 'LogTokens'\"")
    tokens = int(tokens.strip() or 0)
    res.append(("store size, of which token filters (dbstat)",
                f"{size / 1e6:,.0f} MB, {tokens / 1e6:,.1f} MB = {100 * tokens / size:.1f} %"))
    return res


def follow_latency(db):
    relay = subprocess.Popen([f"{REL}/logrelayd", "--listen", "127.0.0.1:0", "--db", f"sqlite:{db}", "--no-udp"],
                             stderr=subprocess.PIPE, text=True)
    port = None
    for line in relay.stderr:
        if "listening on " in line:
            port = int(line.split("listening on ")[1].split(",")[0].rsplit(":", 1)[1])
            break
    threading.Thread(target=lambda: [None for _ in relay.stderr], daemon=True).start()
    follow = subprocess.Popen([LOGQ, "--db", f"sqlite:{db}", "-f", "-n", "0", "-o", "cat", "-g", "^lat "],
                              stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    lat = []
    done = threading.Event()

    def reader():
        for line in follow.stdout:
            sent = int(line.split()[1])
            lat.append((time.perf_counter_ns() - sent) / 1e6)
            if len(lat) >= 1000:
                break
        done.set()

    threading.Thread(target=reader, daemon=True).start()
    s = socket.create_connection(("127.0.0.1", port))
    for _ in range(1000):
        s.sendall(json.dumps({"message": f"lat {time.perf_counter_ns()}", "source": "bench"}).encode() + b"\n")
        time.sleep(0.005)
    done.wait(60)
    s.close()
    follow.terminate()
    relay.terminate()
    follow.wait(10)
    relay.wait(30)
    if len(lat) < 1000:
        return f"only {len(lat)} of 1000 arrived"
    lat.sort()
    return f"p50 {lat[500]:.1f} ms, p99 {lat[990]:.1f} ms, max {lat[-1]:.1f} ms"


if __name__ == "__main__":
    main()
