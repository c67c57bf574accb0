#!/usr/bin/env python3
"""Change-to-replica latency: make an edit on the active, poll the replica until it holds the new content.

  latency-probe.py edits MODE SRC DST COUNT   -> prints "p50 p99 max" in milliseconds; DST may list several replicas
                                                 separated by ":" (an edit counts once every one holds it)
  latency-probe.py burst SRC DST COUNT        -> prints the seconds until DST holds all COUNT files, counted from
                                                 the first write and from the last one
MODE: inplace (open, truncate, write, close) or rename (write a temp file, rename it over).
"""
import os
import sys
import time

POLL = 0.0005
TIMEOUT = 120.0


def holds(path, content):
    try:
        with open(path, "rb") as f:
            return f.read() == content
    except OSError:
        return False


def wait_for(paths, content, start):
    pending = list(paths)
    while True:
        pending = [p for p in pending if not holds(p, content)]
        if not pending:
            return time.perf_counter() - start
        if time.perf_counter() - start > TIMEOUT:
            sys.exit(f"latency-probe: {pending[0]} did not get the new content within {TIMEOUT:.0f} s")
        time.sleep(POLL)


def edits(mode, src, dsts, count):
    files = [f"edit-{i}.conf" for i in range(10)]
    latencies = []
    for i in range(count):
        name = files[i % len(files)]
        content = (f"# edit {i} at {time.time_ns()}\n" + "option = value\n" * 20).encode()
        start = time.perf_counter()
        if mode == "inplace":
            with open(os.path.join(src, name), "wb") as f:
                f.write(content)
        else:
            tmp = os.path.join(src, name + ".tmp")
            with open(tmp, "wb") as f:
                f.write(content)
            os.rename(tmp, os.path.join(src, name))
        latencies.append(wait_for([os.path.join(dst, name) for dst in dsts.split(":")], content, start))
        time.sleep(0.02)  # edits apart, as an admin makes them
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
    print(f"{pick(0.5):.1f} {pick(0.99):.1f} {latencies[-1] * 1000:.1f}")


def burst(src, dst, count):
    contents = {f"f{i:05d}.conf": f"burst file {i} {time.time_ns()}\n".encode() for i in range(count)}
    start = time.perf_counter()
    for name, content in contents.items():
        with open(os.path.join(src, name), "wb") as f:
            f.write(content)
    written = time.perf_counter()
    pending = dict(contents)
    while pending:
        for name in list(pending)[:2000]:
            try:
                with open(os.path.join(dst, name), "rb") as f:
                    if f.read() == pending[name]:
                        del pending[name]
            except OSError:
                pass
        if time.perf_counter() - start > TIMEOUT:
            sys.exit(f"latency-probe: {len(pending)} burst files missing in {dst} after {TIMEOUT:.0f} s")
        if pending:
            time.sleep(0.01)
    done = time.perf_counter()
    print(f"{done - start:.3f} {done - written:.3f}")


if __name__ == "__main__":
    if sys.argv[1] == "edits":
        edits(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        burst(sys.argv[2], sys.argv[3], int(sys.argv[4]))
