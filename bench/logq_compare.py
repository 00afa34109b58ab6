#!/usr/bin/env python3
"""Compares logq builds, each on its own store (e.g. a schema change: the old build on a
copy at the old schema, the new one on a migrated copy), alternating the builds query by
query and reversing their order every round, so that a loaded machine's drift hits all
alike. Prints per query the median wall time and CPU time (user + system of the logq
process) of each build, and whether all printed the same output (digest and lines).

    python3 bench/logq_compare.py ROUNDS NAME=LOGQ@DB [NAME=LOGQ@DB ...] -- QUERY ...

A QUERY is logq's arguments after `--db`, e.g. "-n 100"; "stats ARGS" runs `logq stats`.
"""
import hashlib, os, statistics, subprocess, sys, time


def one(logq, db, query):
    if query.startswith("stats "):
        cmd = f"{logq} stats --db sqlite:{db} {query[6:]}"
    else:
        cmd = f"{logq} --db sqlite:{db} {query}"
    started = time.perf_counter()
    p = subprocess.Popen(cmd, shell=True, stdout=subprocess.PIPE)
    out = p.stdout.read()
    _, _, usage = os.wait4(p.pid, 0)
    wall = (time.perf_counter() - started) * 1000
    cpu = (usage.ru_utime + usage.ru_stime) * 1000
    return wall, cpu, (hashlib.md5(out).hexdigest(), out.count(b"\n"))


def main():
    if "--" not in sys.argv or len(sys.argv) < 5:
        sys.exit(__doc__)
    rounds = int(sys.argv[1])
    cut = sys.argv.index("--")
    builds = [a.split("=", 1) for a in sys.argv[2:cut]]
    for query in sys.argv[cut + 1:]:
        times = {name: ([], []) for name, _ in builds}
        outputs = {}
        for r in range(rounds):
            for name, spec in builds if r % 2 == 0 else builds[::-1]:
                logq, db = spec.split("@", 1)
                wall, cpu, outputs[name] = one(logq, db, query)
                times[name][0].append(wall)
                times[name][1].append(cpu)
        same = len(set(outputs.values())) == 1
        lines = next(iter(outputs.values()))[1]
        print(f"`{query}`: {lines} lines, {'same output' if same else 'DIFFERENT OUTPUT'}")
        for name, _ in builds:
            walls, cpus = times[name]
            print(f"    {name:12s} wall {statistics.median(walls):8.1f} ms   "
                  f"cpu {statistics.median(cpus):8.1f} ms   "
                  f"(walls {' '.join('%.0f' % w for w in walls)})")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
