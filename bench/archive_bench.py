#!/usr/bin/env python3
"""Archive size, archiving time and queries from archives, builds alternating in one run.

    python3 bench/archive_bench.py --lf W.lf [--n 1000000] [--runs 2]
        [--build new=target/release] [--build old=/path/to/other/release] [--work /tmp]

W.lf is ../shared/bench/gen_rfc5424.py output (--framing lf). One store of N rows spread
over the last 24 h is filled once (examples/fill_store of the first build); then, per
round and build (alternating), a copy of it is archived and emptied with
`logq vacuum --max-age 1s --archive DIR` (wall and CPU time), the archives are measured
(bytes per archived row, data files and manifests), and these queries are timed with
the store left nearly empty, so they read the archives:

    logq --archive DIR -S -25h -o json            (the whole day)
    logq --archive DIR -S -3h -U -2h -o json      (an hour)
    logq --archive DIR -S -25h -p err --count     (a severity over the day)
    logq --archive DIR -S -25h -s sshd --count    (a name: scratch store)

A build is a directory holding logq (and, for the first, examples/fill_store).
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time


def run(cmd, out=subprocess.DEVNULL):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    p = subprocess.run(cmd, stdout=out, stderr=subprocess.PIPE, check=False)
    wall = time.time() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {p.stderr.decode(errors='replace')}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, p


def du(path):
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))


QUERIES = [
    ("day -o json", ["-S", "-25h", "-o", "json"]),
    ("hour -o json", ["-S", "-3h", "-U", "-2h", "-o", "json"]),
    ("day -p err --count", ["-S", "-25h", "-p", "err", "--count"]),
    ("day -s sshd --count", ["-S", "-25h", "-s", "sshd", "--count"]),
]


def one(build, store, work):
    d = tempfile.mkdtemp(prefix="arch-", dir=work)
    db, arch = f"{d}/logs.db", f"{d}/arch"
    shutil.copy(store, db)
    os.mkdir(arch)
    logq = os.path.join(build, "logq")
    env_db = f"sqlite:{db}"
    wall, cpu, _ = run([logq, "vacuum", "--db", env_db, "--max-age", "1s", "--archive", arch])
    files = os.listdir(arch)
    total = du(arch)
    rows = 0
    for f in files:
        if f.endswith(".manifest.json"):
            rows += json.load(open(os.path.join(arch, f)))["rows"]
    res = {"archive_s": wall, "archive_cpu_s": cpu, "archive_bytes": total,
           "rows_archived": rows, "b_per_msg": total / max(rows, 1),
           "files": sum(1 for f in files if not f.endswith(".manifest.json"))}
    for name, args in QUERIES:
        qwall, qcpu, qp = run([logq, "--db", env_db, "--archive", arch, *args],
                              out=subprocess.PIPE)
        out = qp.stdout
        res[name] = qwall
        res[name + " cpu"] = qcpu
        res[name + " rows"] = (int(out.strip()) if b"count" in " ".join(args).encode()
                               else out.count(b"\n"))
    shutil.rmtree(d, ignore_errors=True)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lf", required=True)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--build", action="append", default=[],
                    help="NAME=DIR (repeatable); default new=target/release")
    ap.add_argument("--work", default="/tmp")
    args = ap.parse_args()
    builds = [b.split("=", 1) for b in (args.build or ["new=target/release"])]
    work = tempfile.mkdtemp(prefix="archbench-", dir=args.work)
    store = f"{work}/full.db"
    fill = os.path.join(builds[0][1], "examples", "fill_store")
    run([fill, args.lf, store, str(args.n), "24"])
    results = {name: [] for name, _ in builds}
    for r in range(args.runs):
        for name, path in builds:
            res = one(path, store, work)
            res["build"], res["round"] = name, r
            results[name].append(res)
            print(json.dumps(res), flush=True)
    shutil.rmtree(work, ignore_errors=True)
    med = lambda xs, k: statistics.median(x[k] for x in xs)  # noqa: E731
    print("\n| build | bytes/msg | archiving wall / CPU | "
          + " | ".join(q for q, _ in QUERIES) + " |")
    print("|---|---|---|" + "---|" * len(QUERIES))
    for name, _ in builds:
        xs = results[name]
        qs = " | ".join(f"{med(xs, q):.1f} s ({med(xs, q + ' rows'):,.0f} rows)"
                        for q, _ in QUERIES)
        print(f"| {name} | {med(xs, 'b_per_msg'):.1f} B | {med(xs, 'archive_s'):.1f} s / "
              f"{med(xs, 'archive_cpu_s'):.1f} s | {qs} |")


if __name__ == "__main__":
    main()
