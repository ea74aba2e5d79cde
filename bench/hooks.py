"""P9: what hooks cost. Small files (4 KiB, 16 parallel clients, as P2) to a
server without hooks, the baseline, and to the same server with a pre-create
hook that admits everything (`/bin/true`, run for each upload before it is
admitted); and how fast the dispatcher delivers finished uploads to a
post-finish hook that does nothing (`/bin/true`): events per second from the
first upload's start until the cursor reaches the end of the log, and how long
after the last upload it got there.

Both hooks are the cheapest possible (`/bin/true` linked into a hook
directory, spawned without a shell), so what is measured is Spool's cost of
running a hook: a `posix_spawn`, pipes, a wait; any real hook adds its own run time.
"""
import json
import os
import statistics
import subprocess
import tempfile
import time

import bench as b


def hook_dir(workdir, name):
    d = tempfile.mkdtemp(dir=workdir, prefix="hooks-")
    os.symlink("/bin/true", os.path.join(d, name))
    return d


def ledger(spool):
    out = b.run([b.SPOOLD, "admin", "hooks", "--json", "--data-dir", spool.data]).stdout
    return json.loads(out)


def p9_hooks(args, workdir):
    _, files = b.small_files(workdir, args.small_files)
    listings = [b.file_list(workdir, g) for g in b.split(files, 16)]
    pre = hook_dir(workdir, "pre-create")
    post = hook_dir(workdir, "post-finish")

    def upload_all(spool):
        procs = [spool.upload_listed(listing, extra=["--no-resume"]) for listing in listings]
        failed = [p.stderr.read().decode() for p in procs if p.wait() != 0]
        if failed:
            raise RuntimeError("spool upload failed: " + failed[0])

    def plain(_):
        spool = b.Spool(workdir, os.cpu_count())
        elapsed = b.timed(lambda: upload_all(spool))
        spool.stop()
        return elapsed, None

    def gated(_):
        spool = b.Spool(workdir, os.cpu_count(), extra=["--hook-dir", pre])
        elapsed = b.timed(lambda: upload_all(spool))
        spool.stop()
        if spool_log_count(spool, "upload refused") > 0:
            raise RuntimeError("the pre-create hook refused an upload")
        return elapsed, None

    def notified(_):
        spool = b.Spool(workdir, os.cpu_count(), extra=["--hook-dir", post])
        # The dispatcher starts its cursor at the end of the log: wait until it has one.
        while ledger(spool)["cursor"] is None:
            time.sleep(0.01)
        start = time.monotonic()
        upload_all(spool)
        uploaded = time.monotonic() - start
        while True:
            state = ledger(spool)
            if state["pending"] == 0 and state["cursor"] == state["last_event"] and state["last_event"] > 0:
                break
            time.sleep(0.01)
        caught_up = time.monotonic() - start
        spool.stop()
        return uploaded, caught_up

    def spool_log_count(spool, text):
        with open(spool.log) as f:
            return f.read().count(text)

    variants = [("no hooks (baseline)", plain), ("pre-create hook `/bin/true`", gated),
                ("post-finish hook `/bin/true`", notified)]
    rates = {name: [] for name, _ in variants}
    delivery = []
    behind = []
    for round_ in range(args.rounds):
        shift = round_ % len(variants)
        for name, fn in variants[shift:] + variants[:shift]:
            b.sync()
            elapsed, caught_up = fn(round_)
            rates[name].append(len(files) / elapsed)
            if caught_up is not None:
                # Each upload writes two events (created, completed): the dispatcher reads
                # both and runs the hook for one.
                delivery.append(len(files) / caught_up)
                behind.append(caught_up - elapsed)
    base = statistics.median(rates[variants[0][0]])
    lines = [f"### P9: what hooks cost, {len(files)} files of 4 KiB over 16 parallel connections", "",
             "| server | uploads/s | spread of the rounds | vs no hooks |", "|---|---|---|---|"]
    lines += [f"| {name} | {statistics.median(v):.0f} | {b.spread(v)} | {b.ratio(statistics.median(v), base)} |"
              for name, v in rates.items()]
    lines += ["", f"The post-finish hook ran {len(files)} times per round, one at a time: "
              f"{statistics.median(delivery):.0f} deliveries/s from the first upload's start until the cursor "
              f"reached the end of the log (spread {b.spread(delivery)}), "
              f"{statistics.median(behind):.2f} s after the last upload was stored."]
    return lines, rates
