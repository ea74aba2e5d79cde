"""P6: the figure that repeats. Instructions each server executes per file and
per GiB, counted by valgrind (callgrind) on a fixed small run, Spool against
nginx with the same curls. Wall-clock and CPU time drift by 2x here within an
hour; an instruction count does not depend on the disk or on the neighbours,
so a change can be judged by it without waiting for a quiet machine.

What is counted: user-space instructions of every process of the server
(master and workers; valgrind follows fork), for a run with the load minus a
run without it, both after the same warm-up. Not counted: the kernel (system
calls, the file system, writeback), and the clients. Under valgrind a server
runs some 50x slower, so its batches of small files grow larger than at full
speed: the count is a yardstick for comparing builds, not a prediction of
the CPU time of a real run.
"""
import glob
import os
import shutil
import subprocess
import tempfile

import bench as b


def callgrind(out_dir):
    # --cache-sim=no: instructions only. The %p makes one file per process.
    return ["valgrind", "--tool=callgrind", "--cache-sim=no", "--dump-instr=no", "--compress-strings=no",
            f"--callgrind-out-file={out_dir}/cg.%p"]


def stripped_spoold(workdir):
    """valgrind 3.19 gives up on the DWARF 5 debug information Swift writes; the
    instructions are the same without it."""
    path = os.path.join(workdir, "spoold-stripped")
    if not os.path.exists(path):
        shutil.copy(b.SPOOLD, path)
        b.run(["strip", "--strip-debug", path])
    return path


def total(out_dir):
    """Instructions of every process that wrote a profile. A forked child's count
    starts from its parent's at the fork, so only differences between two runs
    of the same server with the same processes mean anything."""
    count = 0
    for path in glob.glob(os.path.join(out_dir, "cg.*")):
        with open(path) as f:
            lines = [line for line in f if line.startswith("summary:") or line.startswith("totals:")]
        if not lines:
            raise RuntimeError(f"{path}: no instruction count (did the process die by SIGKILL?)")
        count += int(lines[-1].split()[1])
    return count


def curls(url_for, groups):
    procs = [subprocess.Popen(["curl", "-fsS", "-o", "/dev/null", "-T", "{" + ",".join(g) + "}", url_for(n)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for n, g in enumerate(groups) if g]
    failed = [p.stderr.read().decode() for p in procs if p.wait() != 0]
    if failed:
        raise RuntimeError("curl failed: " + failed[0])


def spool_clients(server, workdir, groups):
    """One `spool upload` per group, all at once, as P2 runs them."""
    procs = [server.upload_listed(b.file_list(workdir, g), extra=["--no-resume"]) for g in groups if g]
    failed = [p.stderr.read().decode() for p in procs if p.wait() != 0]
    if failed:
        raise RuntimeError("spool upload failed: " + failed[0])


def counted(workdir, start, send, warmup, load):
    """Instructions the server spent on `load` (a list of groups of files, one client
    each): a run of warm-up + load minus a run of warm-up alone."""
    runs = []
    for with_load in (False, True):
        out_dir = tempfile.mkdtemp(dir=workdir, prefix="callgrind-")
        server, stop = start(callgrind(out_dir))
        send(server, "w", warmup)
        if with_load:
            send(server, "l", load)
        stop(server)
        runs.append(total(out_dir))
    return runs[1] - runs[0]


def p6_instructions(args, workdir):
    count, large_mib = args.ic_files, args.ic_mib
    d, files = b.small_files(workdir, count + 16)
    warmup, small = b.split(files[:16], 16), b.split(files[16:], 16)
    large = os.path.join(workdir, "ic-large.bin")
    b.make_file(large, large_mib << 20, 77)
    binary = stripped_spoold(workdir)

    def spool_start(wrapper):
        s = b.Spool(workdir, os.cpu_count(), http=True, wrapper=wrapper, binary=binary)
        return s, lambda s: s.stop()

    def nginx_start(wrapper):
        n = b.Nginx(workdir, wrapper=wrapper)
        return n, lambda n: n.stop()

    def curl_to(url):
        return lambda server, prefix, groups: curls(lambda n: f"{url(server)}{prefix}{n}/", groups)

    servers = [
        ("Spool, line protocol (`spool upload`; durable, hashing)", spool_start,
         lambda server, prefix, groups: spool_clients(server, workdir, groups)),
        ("Spool HTTP PUT (curl; durable, hashing)", spool_start,
         curl_to(lambda s: f"http://127.0.0.1:{s.http_port}/files/")),
        ("nginx PUT (curl; as it is: no fsync, no hash)", nginx_start, curl_to(lambda n: f"http://127.0.0.1:{n.port}/up/")),
    ]
    rows = []
    for name, start, send in servers:
        per_file = counted(workdir, start, send, warmup, small) / count
        per_gib = counted(workdir, start, send, warmup, [[large]]) / (large_mib / 1024)
        rows.append((name, per_file, per_gib))
    os.unlink(large)
    base_file, base_gib = rows[-1][1], rows[-1][2]
    lines = [f"### P6: instructions per file and per GiB (valgrind), {count} files of 4 KiB over 16 clients, "
             f"one upload of {large_mib} MiB", "",
             "User-space instructions of every server process; the kernel and the clients are not counted "
             "(see bench/instructions.py).", "",
             "| server | instructions per 4 KiB file | vs nginx | instructions per GiB | vs nginx |",
             "|---|---|---|---|---|"]
    lines += [f"| {name} | {f:,.0f} | {b.ratio(f, base_file)} | {g:,.0f} | {b.ratio(g, base_gib)} |"
              for name, f, g in rows]
    return lines, rows
