#!/usr/bin/env python3
"""Change-to-replica latency: make an edit on the active, wait until the replica holds the new content (read again
  each time inotify reports a write or rename there).

  latency-probe.py edits MODE SRC DST COUNT   -> prints "p50 p99 max" in milliseconds; DST may list several replicas
                                                 separated by ":" (an edit counts once every one holds it)
  latency-probe.py burst SRC DST COUNT        -> prints the seconds until DST holds all COUNT files, counted from
                                                 the first write and from the last one
  latency-probe.py log FILE REGEX             -> returns once a line of FILE matches REGEX (2 min at most)
MODE: inplace (open, truncate, write, close) or rename (write a temp file, rename it over).
"""
import ctypes
import ctypes.util
import os
import select
import struct
import sys
import time

TIMEOUT = 120.0
RECHECK = 0.05  # every replica is read again this often, however quiet its directory: a missed event costs 50 ms, not a hang
IN_MODIFY, IN_CLOSE_WRITE, IN_MOVED_TO = 0x2, 0x8, 0x80


def holds(path, content):
    try:
        with open(path, "rb") as f:
            return f.read() == content
    except OSError:
        return False


class Replicas:
    """Wakes the probe when a file in a replica directory is closed after a write or renamed into place (the kernel's
    inotify, not the tool under test), so waiting costs no CPU: polling 16 replicas every 0.5 ms took more CPU on this
    2-core machine than the agents being measured, and slowed them. With another mask: a file that grows (a log)."""

    def __init__(self, dirs, mask=IN_CLOSE_WRITE | IN_MOVED_TO):
        self.libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
        if self.fd < 0:
            sys.exit(f"latency-probe: inotify_init1: {os.strerror(ctypes.get_errno())}")
        self.dirs = {}
        for d in dirs:
            wd = self.libc.inotify_add_watch(self.fd, os.fsencode(d), mask)
            if wd < 0:
                sys.exit(f"latency-probe: cannot watch {d}: {os.strerror(ctypes.get_errno())}")
            self.dirs[wd] = d

    def changed(self, timeout):
        """The paths written or renamed into place within TIMEOUT seconds (empty if none)."""
        if not select.select([self.fd], [], [], timeout)[0]:
            return set()
        paths = set()
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return paths
            at = 0
            while at < len(data):
                wd, _, _, size = struct.unpack_from("iIII", data, at)
                name = data[at + 16:at + 16 + size].rstrip(b"\0")
                at += 16 + size
                if wd in self.dirs:
                    paths.add(os.path.join(self.dirs[wd], os.fsdecode(name)))


def wait_for(replicas, paths, content, start, give_up=None):
    """Seconds from START until every path holds CONTENT. After GIVE_UP seconds (a peer's row: see edits), None."""
    pending = [p for p in paths if not holds(p, content)]
    checked = time.perf_counter()
    while pending:
        changed = replicas.changed(RECHECK)
        if time.perf_counter() - checked >= RECHECK:
            changed, checked = set(pending), time.perf_counter()
        pending = [p for p in pending if p not in changed or not holds(p, content)]
        if pending and give_up is not None and time.perf_counter() - start > give_up:
            return None
        if pending and time.perf_counter() - start > TIMEOUT:
            sys.exit(f"latency-probe: {pending[0]} did not get the new content within {TIMEOUT:.0f} s")
    return time.perf_counter() - start


def edits(mode, src, dsts, count):
    """With LATENCY_PROBE_LOST_AFTER=S (for a peer, never for hasync), an edit not on the replica S seconds after it was
    made is counted as lost, said on stderr, and left out of the percentiles; the next edit goes on."""
    files = [f"edit-{i}.conf" for i in range(10)]
    replicas = Replicas(dsts.split(":"))
    give_up = float(os.environ["LATENCY_PROBE_LOST_AFTER"]) if os.environ.get("LATENCY_PROBE_LOST_AFTER") else None
    latencies, lost = [], 0
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
        latency = wait_for(replicas, [os.path.join(dst, name) for dst in dsts.split(":")], content, start, give_up)
        if latency is None:
            lost += 1
        else:
            latencies.append(latency)
        time.sleep(0.02)  # edits apart, as an admin makes them
    if lost:
        print(f"latency-probe: {lost} of {count} {mode} edits never reached {dsts} within {give_up:.0f} s (lost: left out of the percentiles)", file=sys.stderr)
    if not latencies:
        print("lost lost lost")
        return
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
    print(f"{pick(0.5):.1f} {pick(0.99):.1f} {latencies[-1] * 1000:.1f}")


def burst(src, dst, count):
    """Writes COUNT files into SRC, then waits until DST holds them all. Waiting takes next to no CPU from the tools being
    timed: inotify wakes the probe as names are renamed or written into place, and a listing of DST every RECHECK catches
    a missed event (reading each pending file every 10 ms took half a core). The contents are compared once every name
    stands there, after the time is taken; if one does not hold what was written yet, it is waited for, and counts."""
    contents = {f"f{i:05d}.conf": f"burst file {i} {time.time_ns()}\n".encode() for i in range(count)}
    replicas = Replicas([dst])
    start = time.perf_counter()
    for name, content in contents.items():
        with open(os.path.join(src, name), "wb") as f:
            f.write(content)
    written = time.perf_counter()
    pending = set(contents)
    checked = time.perf_counter()
    while pending:
        arrived = {os.path.basename(p) for p in replicas.changed(RECHECK)}
        if time.perf_counter() - checked >= RECHECK:
            arrived, checked = set(os.listdir(dst)), time.perf_counter()
        pending -= arrived
        if pending and time.perf_counter() - start > TIMEOUT:
            sys.exit(f"latency-probe: {len(pending)} burst files missing in {dst} after {TIMEOUT:.0f} s")
    done = time.perf_counter()
    wrong = [os.path.join(dst, name) for name, content in contents.items() if not holds(os.path.join(dst, name), content)]
    for path in wrong:
        wait_for(replicas, [path], contents[os.path.basename(path)], start)
    if wrong:  # a name stood there before its content was whole: the time is when the last one was
        done = time.perf_counter()
    print(f"{done - start:.3f} {done - written:.3f}")


def wait_log(path, pattern):
    """Returns once a line of PATH matches PATTERN, woken by inotify as the file grows (and every RECHECK all the same):
    a shell loop of grep and sleep every 20 ms took a tenth of a core from the daemon whose start-up it was timing."""
    import re
    regex = re.compile(pattern)
    start = time.perf_counter()
    while not os.path.exists(path):  # a tool that opens its log itself, later
        if time.perf_counter() - start > TIMEOUT:
            sys.exit(f"latency-probe: {path} never appeared in {TIMEOUT:.0f} s")
        time.sleep(RECHECK)
    grown = Replicas([path], mask=IN_MODIFY)
    text, offset = "", 0
    with open(path, "rb") as log:
        while True:
            log.seek(offset)
            chunk = log.read()
            offset += len(chunk)
            text += chunk.decode(errors="replace")
            lines = text.split("\n")
            text = lines.pop()  # a line not yet ended
            if any(regex.search(line) for line in lines):
                return
            if time.perf_counter() - start > TIMEOUT:
                sys.exit(f"latency-probe: {path} never held \"{pattern}\" in {TIMEOUT:.0f} s")
            grown.changed(RECHECK)


if __name__ == "__main__":
    if sys.argv[1] == "log":
        wait_log(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "edits":
        edits(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        burst(sys.argv[2], sys.argv[3], int(sys.argv[4]))
