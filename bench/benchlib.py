"""Small helpers the bench scripts share (ports on 127.0.0.1, a process's CPU time, rows in
a SQLite store)."""

import os
import socket
import sqlite3
import time

TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_seconds(pid):
    """utime + stime of `pid`, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def wait_port(port, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def rows(db, timeout=1):
    """Rows in the SQLite store `db` (0 while it does not exist yet or is locked)."""
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=timeout)
        n = c.execute("SELECT count(*) FROM Logs").fetchone()[0]
        c.close()
        return n
    except sqlite3.Error:
        return 0


def wait_until(count, n, timeout=300):
    """The time at which `count()` first reaches `n` (polled every 50 ms)."""
    end = time.time() + timeout
    while time.time() < end:
        if count() >= n:
            return time.time()
        time.sleep(0.05)
    raise RuntimeError(f"only {count()} of {n} arrived")
