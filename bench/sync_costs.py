#!/usr/bin/env python3
"""What making many small files durable costs on this machine's disk, by method.

    python3 bench/sync_costs.py [--files N] [--dir DIR]

Creates N files of 4 KiB (in 16 directories) per method and prints files per
second for each, and as a ratio to an fsync of each file and its directory from
16 threads, which is what Spool did per small upload before it batched them.
Python adds the same per-file cost to every method, so the ratios understate
the differences.
"""
import argparse
import ctypes
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

libc = ctypes.CDLL("libc.so.6", use_errno=True)
DATA = os.urandom(4096)


def create(directory, i, sync):
    fd = os.open(f"{directory}/{i % 16}/f{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, i.to_bytes(8, "little") + DATA[8:])
    if sync:
        os.fdatasync(fd)
    os.close(fd)


def fsync_dir(directory, i):
    fd = os.open(f"{directory}/{i % 16}", os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


def methods(n):
    def serial(d):
        for i in range(n):
            create(d, i, True)
            fsync_dir(d, i)

    def threads(d):
        def one(i):
            create(d, i, True)
            fsync_dir(d, i)
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(one, range(n)))

    def syncfs_every(batch):
        def run(d):
            fd = os.open(d, os.O_RDONLY)
            try:
                for start in range(0, n, batch):
                    for i in range(start, min(n, start + batch)):
                        create(d, i, False)
                    if libc.syncfs(fd) != 0:
                        raise OSError(ctypes.get_errno(), "syncfs")
            finally:
                os.close(fd)
        return run

    def one_sync(d):
        for i in range(n):
            create(d, i, False)
        os.sync()

    return [
        ("fsync file + directory, 16 threads (baseline)", threads),
        ("fsync file + directory, one at a time", serial),
        ("syncfs per 16 files", syncfs_every(16)),
        ("syncfs per 64 files", syncfs_every(64)),
        ("syncfs per 256 files", syncfs_every(256)),
        ("no sync until one sync at the end", one_sync),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--dir", default="/var/tmp")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="spool-sync-", dir=args.dir)
    rows = []
    try:
        for name, method in methods(args.files):
            d = tempfile.mkdtemp(dir=root)
            for k in range(16):
                os.mkdir(f"{d}/{k}")
            os.sync()
            start = time.monotonic()
            method(d)
            rows.append((name, args.files / (time.monotonic() - start)))
    finally:
        # Deleting slows the next file creations on this disk (docs/BENCHMARKS.md): last.
        shutil.rmtree(root, ignore_errors=True)
    base = rows[0][1]
    print(f"### Durable small files: {args.files} files of 4 KiB per method\n")
    print("| method | files/s | vs baseline |\n|---|---|---|")
    for name, rate in rows:
        print(f"| {name} | {rate:.0f} | {rate / base:.2f} |")


if __name__ == "__main__":
    main()
