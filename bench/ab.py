#!/usr/bin/env python3
"""A/B two builds of Spool on one scenario, alternating them in rounds.

    python3 bench/ab.py BEFORE_DIR AFTER_DIR [--scenario p1|p2] [--workers 1,2] [--rounds 3] [--fresh-fs | --dir DIR]
                        [--neighbour MIB]

Each directory holds a release `spoold` and `spool` (copy them out of
.build/release before and after a change). With --fresh-fs (root only), every
run gets a newly made ext4 file system on a loop device, so that no run
inherits the previous one's deleted inodes or fragmentation: on this machine
that was the only way to tell a 10 % change from the drift.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

IMAGE, MOUNT = "/var/tmp/spool-ab.img", "/mnt/spool-ab"


def fresh_fs():
    os.makedirs(MOUNT, exist_ok=True)
    subprocess.run(["umount", MOUNT], stderr=subprocess.DEVNULL)
    subprocess.run(["truncate", "-s", "3G", IMAGE], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", IMAGE], check=True)
    subprocess.run(["mount", "-o", "loop", IMAGE, MOUNT], check=True)
    return MOUNT


def p1(workdir, workers):
    # One source file for every run; each run's 1 GiB object is deleted after it
    # (one large file: no cost to the next run's file creation).
    path = os.path.join(os.path.dirname(workdir), "spool-ab-large.bin")
    if not os.path.exists(path):
        bench.make_file(path, 1 << 30, 1)
    spool = bench.Spool(workdir, workers)
    try:
        def upload():
            p = spool.upload([path], extra=["--no-resume"])
            if p.wait() != 0:
                raise RuntimeError(p.stderr.read().decode())
        bench.sync()
        return (1 << 30) / bench.timed(upload) / bench.MB, "MB/s"
    finally:
        spool.stop()
        shutil.rmtree(spool.data, ignore_errors=True)


NEIGHBOUR = "import os, sys\nb = os.urandom(1 << 20)\nwith open(sys.argv[1], 'wb') as f:\n    for _ in range(int(sys.argv[2])): f.write(b)\n"


def p2(workdir, workers, neighbour_mib=0):
    _, files = bench.small_files(workdir, 5000)
    listings = [bench.file_list(workdir, g) for g in bench.split(files, 16)]
    spool = bench.Spool(workdir, workers)
    writer, dirty = None, os.path.join(workdir, "neighbour.bin")
    try:
        bench.sync()
        if neighbour_mib:
            # Another program writing to the same file system, never syncing: what a
            # batch's syncfs must also write back.
            writer = subprocess.Popen([sys.executable, "-c", NEIGHBOUR, dirty, str(neighbour_mib)])
        elapsed = bench.timed(lambda: [p.wait() for p in [spool.upload_listed(g, extra=["--no-resume"]) for g in listings]])
        return len(files) / elapsed, "files/s"
    finally:
        if writer:
            writer.wait()
            os.unlink(dirty)
        spool.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--scenario", choices=["p1", "p2"], default="p2")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fresh-fs", action="store_true")
    parser.add_argument("--dir", default="/var/tmp", help="where runs keep their files (a tmpfs takes the disk out)")
    parser.add_argument("--neighbour", type=int, default=0, metavar="MIB",
                        help="p2: another program writes this many MiB to the same file system during each run")
    args = parser.parse_args()
    scenario = {"p1": p1, "p2": p2}[args.scenario]
    results, unit, leftovers = {}, "", []
    for round_ in range(args.rounds):
        for label, build in (("before", args.before), ("after", args.after)):
            bench.SPOOLD, bench.SPOOL = os.path.join(build, "spoold"), os.path.join(build, "spool")
            for workers in map(int, args.workers.split(",")):
                workdir = fresh_fs() if args.fresh_fs else tempfile.mkdtemp(prefix="spool-ab-", dir=args.dir)
                leftovers.append(workdir)
                value, unit = scenario(workdir, workers, args.neighbour) if scenario is p2 else scenario(workdir, workers)
                results.setdefault((workers, label), []).append(value)
                print(f"round {round_ + 1}: {label}, {workers} worker(s): {value:.0f} {unit}", flush=True)
    print(f"\n| workers | before ({unit}) | after ({unit}) | ratio |\n|---|---|---|---|")
    for workers in map(int, args.workers.split(",")):
        before = statistics.median(results[(workers, "before")])
        after = statistics.median(results[(workers, "after")])
        print(f"| {workers} | {before:.0f} | {after:.0f} | {after / before:.2f} |")
    if args.fresh_fs:
        subprocess.run(["umount", MOUNT], stderr=subprocess.DEVNULL)
        os.unlink(IMAGE)
    else:
        for workdir in leftovers:  # only now: see "Nothing is deleted" in docs/BENCHMARKS.md
            shutil.rmtree(workdir, ignore_errors=True)
        if args.scenario == "p1":
            os.unlink(os.path.join(args.dir, "spool-ab-large.bin"))


if __name__ == "__main__":
    main()
