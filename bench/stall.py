#!/usr/bin/env python3
"""How long a worker's event loop stalls in write(2) when the disk falls behind.

    python3 bench/stall.py [--bin .build/release] [--seconds 20] [--filler-gib 8]

One worker, so that every connection shares one event loop: 16 `spool upload`
clients stream a 64 MiB file again and again while a probe connection on the
same worker sends `PING` every 10 ms and times each `200 pong`. The run is done
twice: alone, then with another process (`dd`) writing to the same file system
without syncing, which fills the page cache with dirty pages until the kernel
throttles every writer on it (balance_dirty_pages), the worker's event loop
among them. Prints the probe's round trips, the uploads' throughput and the
longest gap between the worker's heartbeats, each with its ratio to the run
without the writer.
"""
import argparse
import os
import re
import socket
import subprocess
import tempfile
import threading
import time


def start_server(spoold, data, log):
    process = subprocess.Popen(
        [spoold, "serve", "--data-dir", data, "--listen", "127.0.0.1:0", "--http", "none", "--workers", "1",
         "--min-free", "1G", "--log-level", "notice"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(log, "ab"))
    ports_file = os.path.join(data, "run", "spoold.ports")
    for _ in range(600):
        if os.path.exists(ports_file):
            text = open(ports_file).read()
            match = re.search(r"line \S+:(\d+)", text)
            if match:
                return process, int(match.group(1))
        time.sleep(0.05)
    process.kill()
    raise SystemExit("stall: spoold did not start")


def probe(port, stop, rtts):
    s = socket.create_connection(("127.0.0.1", port))
    f = s.makefile("rb")
    f.readline()  # greeting
    while not stop.is_set():
        began = time.monotonic()
        s.sendall(b"PING\n")
        f.readline()
        rtts.append(time.monotonic() - began)
        time.sleep(0.01)
    s.close()


def uploader(spool, port, path, stop, sent, state_dir):
    env = dict(os.environ, SPOOL_STATE_DIR=state_dir)
    while not stop.is_set():
        done = subprocess.run([spool, "upload", "--quiet", "--no-resume", "--server", f"127.0.0.1:{port}", path],
                              capture_output=True, env=env)
        if done.returncode == 0:
            sent.append(os.path.getsize(path))


def watchdog(log):
    """What the master's watchdog did: workers aborted, and silent workers it spared
    because a thread of theirs was waiting on the disk (D state)."""
    text = open(log, errors="replace").read()
    return len(re.findall(r"worker timed out; aborting it", text)), len(re.findall(r"waiting on the disk", text))


def run(args, work, with_filler):
    data = os.path.join(work, "data-filler" if with_filler else "data-alone")
    log = data + ".log"
    process, port = start_server(os.path.join(args.bin, "spoold"), data, log)
    stop = threading.Event()
    rtts, sent = [], []
    threads = [threading.Thread(target=probe, args=(port, stop, rtts))]
    threads += [threading.Thread(target=uploader, args=(os.path.join(args.bin, "spool"), port, args.file, stop, sent,
                                                        os.path.join(work, f"state-{i}"))) for i in range(16)]
    filler = None
    filler_path = os.path.join(work, "filler")
    if with_filler:
        filler = subprocess.Popen(["dd", "if=/dev/zero", f"of={filler_path}", "bs=1M", f"count={args.filler_gib * 1024}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    began = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(args.seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    if filler:
        filler.kill()
        filler.wait()
    process.terminate()
    process.wait()
    if os.path.exists(filler_path):
        os.unlink(filler_path)
    subprocess.run(["rm", "-rf", data])
    subprocess.run(["sync"])
    rtts.sort()
    pick = lambda q: rtts[min(len(rtts) - 1, int(q * len(rtts)))] * 1000 if rtts else float("nan")
    return {"p50": pick(0.5), "p99": pick(0.99), "max": rtts[-1] * 1000 if rtts else float("nan"),
            "mbs": sum(sent) / elapsed / 1e6, "watchdog": watchdog(log)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=".build/release")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--filler-gib", type=int, default=8)
    parser.add_argument("--dir", default="/var/tmp", help="a directory on the disk to measure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="spool-stall-") as work:
        args.file = os.path.join(work, "upload.bin")
        with open(args.file, "wb") as f:
            f.write(os.urandom(64 << 20))
        alone = run(args, work, with_filler=False)
        filled = run(args, work, with_filler=True)
    print("| run | PING p50 ms | PING p99 ms | PING max ms | uploads MB/s | workers aborted / spared |")
    print("|---|---|---|---|---|---|")
    for name, r in (("16 uploads", alone), ("16 uploads + dd filling the page cache", filled)):
        print(f"| {name} | {r['p50']:.1f} | {r['p99']:.1f} | {r['max']:.0f} | {r['mbs']:.0f} | "
              f"{r['watchdog'][0]} / {r['watchdog'][1]} |")
    print(f"| ratio (with dd / without) | {filled['p50'] / alone['p50']:.2f}× | {filled['p99'] / alone['p99']:.2f}× | "
          f"{filled['max'] / alone['max']:.2f}× | {filled['mbs'] / alone['mbs']:.2f}× | |")


if __name__ == "__main__":
    main()
