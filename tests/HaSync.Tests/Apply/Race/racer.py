#!/usr/bin/env python3
"""A local user racing the agent (run as that user by AgentRaceTests): as fast as it can, swap its own directory
CONF with a symlink to CANARY (renameat2 RENAME_EXCHANGE, so one of the two names always stands), and replace the
agent's temp files in either with symlinks to a canary file. Runs for SECONDS or until SIGTERM, then prints how often
each swap succeeded. Every error is expected (the agent or the other thread got there first) and ignored."""
import ctypes, os, signal, sys, threading, time

conf, canary, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
swap = conf + ".swap"
libc = ctypes.CDLL(None, use_errno=True)
RENAME_EXCHANGE = 2
AT_FDCWD = -100
deadline = time.monotonic() + seconds
stopping = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stopping.set())


def racing():
    return not stopping.is_set() and time.monotonic() < deadline
counts = {"exchanges": 0, "temp_swaps": 0}
canary_file = os.path.join(canary, sorted(n for n in os.listdir(canary) if os.path.isfile(os.path.join(canary, n)))[0])


def exchange():
    while racing():
        if not os.path.lexists(swap):
            try:
                os.symlink(canary, swap)
            except OSError:
                pass
        if libc.renameat2(AT_FDCWD, conf.encode(), AT_FDCWD, swap.encode(), RENAME_EXCHANGE) == 0:
            counts["exchanges"] += 1


def temps():
    n = 0
    while racing():
        for d in (conf, swap):
            try:
                names = os.listdir(d)
            except OSError:
                continue
            for name in names:
                if ".hasync-" not in name:
                    continue
                n += 1
                link = os.path.join(d, ".racer-%d" % n)
                try:
                    os.symlink(canary_file, link)
                    os.rename(link, os.path.join(d, name))
                    counts["temp_swaps"] += 1
                except OSError:
                    try:
                        os.unlink(link)
                    except OSError:
                        pass


threads = [threading.Thread(target=exchange), threading.Thread(target=temps)]
for t in threads:
    t.start()
while any(t.is_alive() for t in threads):
    for t in threads:
        t.join(0.1)
print("exchanges %d temp_swaps %d" % (counts["exchanges"], counts["temp_swaps"]), flush=True)
