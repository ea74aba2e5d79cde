#!/usr/bin/env python3
"""Power loss, not only a killed process: crash images of a running Spool.

A SIGKILL (Tests/IntegrationTests/CrashPointTests.swift) leaves the page cache
intact; a power cut does not. Here the data directory lives on a file system
(XFS or ext4) on a loop device whose backing file sits on an outer XFS with
reflinks. While 16 clients upload (HTTP PUTs, small and streamed, and the
`spool` client over the line protocol; some contents repeat, so objects are
shared), the backing file is cloned (`cp --reflink=always`, FICLONE) at random
moments. A clone is atomic with respect to the loop device's writes, and it
holds exactly what the inner file system had sent to its device: what sat only
in the inner page cache (written, not synced) is gone, as after a power cut.

Each clone is then mounted (the journal or log replayed), `spoold serve` started
on it, and every upload acknowledged (201 or 250) before the clone began must be
`complete` with exactly its bytes (downloaded and hashed); `admin audit` must be
clean after `--repair`, SQLite's integrity check ok, and the file system clean
(`xfs_repair -n`, `e2fsck -fn`).

Not modelled: a device that loses writes it completed but never flushed
(dm-log-writes would, and device-mapper is not available here); a clone is the
state "every completed write persisted", the most a disk could have kept.

--lying-disk runs the server with SPOOL_FAULT=sync:skip (debug builds: every
fsync, fdatasync and syncfs reports success without syncing) and succeeds only
if the check finds a lost upload: the proof that the check can fail.

Needs root, losetup, mkfs.xfs (xfsprogs) and mkfs.ext4. Exit 0: all images good.
"""
import argparse
import hashlib
import http.client
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time


def sh(*cmd, check=True):
    result = subprocess.run(cmd, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {result.returncode}: {result.stderr.strip()}")
    return result


class Rig:
    """An outer XFS with reflinks (on a loop device), holding the image of the
    inner file system under test, loop-mounted at `mnt`."""

    def __init__(self, work, fs, megabytes):
        self.work, self.fs = work, fs
        self.outer = os.path.join(work, "outer")
        self.image = os.path.join(self.outer, "disk.img")
        self.mnt = os.path.join(work, "mnt")
        os.makedirs(self.outer)
        os.makedirs(self.mnt)
        outer_image = os.path.join(work, "outer.img")
        with open(outer_image, "wb") as f:
            f.truncate(16 << 30)
        sh("mkfs.xfs", "-q", "-m", "reflink=1", outer_image)
        sh("mount", "-o", "loop", outer_image, self.outer)
        with open(self.image, "wb") as f:
            f.truncate(megabytes << 20)
        make_fs(fs, self.image)
        sh("mount", "-o", "loop", self.image, self.mnt)

    def clone(self, n):
        copy = os.path.join(self.outer, f"crash-{n}.img")
        sh("cp", "--reflink=always", self.image, copy)
        return copy

    def close(self):
        unmount(self.mnt)
        sh("umount", self.outer, check=False)


def unmount(path):
    """umount, waiting out processes of a killed server that still hold files there."""
    for _ in range(100):
        result = sh("umount", path, check=False)
        if result.returncode == 0 or "not mounted" in result.stderr:
            return
        time.sleep(0.1)
    raise RuntimeError(f"umount {path}: {result.stderr.strip()}")


def make_fs(fs, image):
    if fs == "xfs":
        sh("mkfs.xfs", "-q", "-f", image)
    else:
        sh("mkfs.ext4", "-q", "-F", image)


def check_fs(fs, image):
    """The file system's own check, read-only, after its journal was replayed by a mount."""
    if fs == "xfs":
        result = sh("xfs_repair", "-n", image, check=False)
    else:
        result = sh("e2fsck", "-fn", image, check=False)
    return None if result.returncode == 0 else f"{fs} check exit {result.returncode}: {result.stdout[-400:]}"


class Server:
    def __init__(self, spoold, data, env=None, log=None):
        self.data = data
        os.makedirs(data, exist_ok=True)
        ports_file = os.path.join(data, "run", "spoold.ports")
        if os.path.exists(ports_file):
            os.unlink(ports_file)  # a crash image's, naming ports of a server long gone
        self.log = open(log or os.path.join(os.path.dirname(data), "spoold.log"), "ab")
        environment = dict(os.environ, **(env or {}))
        self.process = subprocess.Popen(
            [spoold, "serve", "--data-dir", data, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
             "--workers", "2", "--min-free", "16M"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log, env=environment,
            start_new_session=True)
        self.ports = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(self.ports) < 2:
            if self.process.poll() is not None:
                raise RuntimeError(f"spoold exited {self.process.returncode} at start")
            try:
                with open(ports_file) as f:
                    self.ports = {k: int(v.rsplit(":", 1)[1]) for k, v in (line.split() for line in f if line.strip())}
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        if len(self.ports) < 2:
            self.stop(signal.SIGKILL)
            raise RuntimeError("spoold did not write its ports")

    def stop(self, sig=signal.SIGQUIT):
        """QUIT drains; KILL goes to the whole process group, workers too, as a power cut would."""
        if sig == signal.SIGKILL:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


class Load:
    """16 clients uploading until stopped; `acks` is (time heard, id, sha256)."""

    def __init__(self, server, spool, work, http_clients=12, line_clients=4, seed=1):
        self.server, self.spool, self.work = server, spool, work
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.acks, self.errors = [], []
        rnd = random.Random(seed)
        # Contents several clients send again and again: shared objects, linked
        # to existing names in batches and in streams.
        self.pool = [rnd.randbytes(size) for size in (4096, 4096, 30_000, 60_000, 200_000, 700_000)]
        self.threads = [threading.Thread(target=self.http_client, args=(i, seed * 100 + i)) for i in range(http_clients)]
        self.threads += [threading.Thread(target=self.line_client, args=(i, seed * 100 + 50 + i)) for i in range(line_clients)]
        for t in self.threads:
            t.start()

    def body(self, rnd):
        roll = rnd.random()
        if roll < 0.25:
            return rnd.choice(self.pool)
        if roll < 0.75:
            return rnd.randbytes(rnd.randint(1, 64 << 10))  # collected whole, stored in batches
        return rnd.randbytes(rnd.randint(65 << 10, 1 << 20))  # streamed

    def record(self, upload_id, sha, expected):
        heard = time.monotonic()
        with self.lock:
            if sha != expected:
                self.errors.append(f"{upload_id}: server said {sha}, sent {expected}")
            self.acks.append((heard, upload_id, sha))

    def http_client(self, i, seed):
        rnd = random.Random(seed)
        conn, n = None, 0
        while not self.stop_flag.is_set():
            body = self.body(rnd)
            n += 1
            try:
                conn = conn or http.client.HTTPConnection("127.0.0.1", self.server.ports["http"], timeout=60)
                conn.request("PUT", f"/files/h{i}-{n}", body=body)
                response = conn.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException) as e:
                conn = None
                with self.lock:
                    self.errors.append(f"h{i}-{n}: {e}")
                continue
            if response.status == 201:
                reply = json.loads(answer)
                self.record(reply["id"], reply["sha256"], hashlib.sha256(body).hexdigest())
            else:
                with self.lock:
                    self.errors.append(f"h{i}-{n}: {response.status} {answer[:200]!r}")
                conn = None

    def line_client(self, i, seed):
        rnd = random.Random(seed)
        folder = os.path.join(self.work, f"line-{i}")
        os.makedirs(folder)
        env = dict(os.environ, SPOOL_STATE_DIR=os.path.join(folder, "state"))
        n = 0
        while not self.stop_flag.is_set():
            files = {}
            for _ in range(3):
                n += 1
                path = os.path.join(folder, f"l{i}-{n}")
                body = self.body(rnd)
                with open(path, "wb") as f:
                    f.write(body)
                files[path] = hashlib.sha256(body).hexdigest()
            result = subprocess.run(
                [self.spool, "upload", "--quiet", "--no-resume", "--server", f"127.0.0.1:{self.server.ports['line']}", *files],
                capture_output=True, text=True, env=env)
            # The process's end is later than each 250: an upload counts from
            # then, which can only make the check ask for fewer, never wrongly.
            for line in result.stdout.splitlines():
                fields = line.split(" ", 2)
                if len(fields) == 3 and len(fields[1]) == 64:
                    self.record(fields[0], fields[1], files.get(fields[2], "?"))
            if result.returncode != 0:
                with self.lock:
                    self.errors.append(f"spool upload exit {result.returncode}: {result.stderr[-300:]}")
            for path in files:
                os.unlink(path)

    def finish(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join()


def verify_image(args, fs, image, acked, scratch):
    """Mounts a crash image, starts Spool on it, checks every upload acknowledged
    before the image was taken. Returns a list of problems."""
    problems = []
    if fs == "ext4":
        # Replays the journal; 1 means it had to (or fixed something), which the read-only check below judges.
        replay = sh("e2fsck", "-p", image, check=False)
        if replay.returncode > 1:
            return [f"e2fsck -p exit {replay.returncode}: {replay.stdout[-300:]}"]
    mnt = os.path.join(scratch, "crash")
    os.makedirs(mnt, exist_ok=True)
    mounted = sh("mount", "-o", "loop", image, mnt, check=False)
    if mounted.returncode != 0:
        return [f"mount failed: {mounted.stderr.strip()}"]
    try:
        data = os.path.join(mnt, "data")
        server = Server(args.spoold, data, log=os.path.join(scratch, "verify.log"))
        try:
            conn = http.client.HTTPConnection("127.0.0.1", server.ports["http"], timeout=30)
            for upload_id, sha in acked:
                conn.request("GET", f"/uploads/{upload_id}")
                response = conn.getresponse()
                record = response.read()
                state = json.loads(record).get("state") if response.status == 200 else f"HTTP {response.status}"
                if state != "complete":
                    problems.append(f"{upload_id}: acknowledged, now {state}")
                    continue
                conn.request("GET", f"/uploads/{upload_id}/content")
                response = conn.getresponse()
                content = response.read()
                got = hashlib.sha256(content).hexdigest()
                if response.status != 200 or got != sha:
                    problems.append(f"{upload_id}: acknowledged {sha}, now {response.status}, {len(content)} bytes, {got}")
            conn.close()
        finally:
            server.stop()
        sh(args.spoold, "admin", "audit", "--repair", "--data-dir", data, check=False)
        audit = sh(args.spoold, "admin", "audit", "--data-dir", data, check=False)
        if audit.returncode != 0:
            problems.append(f"audit after --repair: {audit.stdout.strip()[-500:]}")
        db = sqlite3.connect(os.path.join(data, "spool.db"))
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        db.close()
        if integrity != "ok":
            problems.append(f"integrity_check: {integrity}")
    finally:
        unmount(mnt)
    fs_problem = check_fs(fs, image)
    if fs_problem:
        problems.append(fs_problem)
    return problems


def run_fs(args, fs, work):
    rig = Rig(os.path.join(work, fs), fs, args.megabytes)
    images, checked_uploads, problems, errors = 0, 0, [], []
    server = load = None
    try:
        env = {"SPOOL_FAULT": "sync:skip"} if args.lying_disk else {}
        server = Server(args.spoold, os.path.join(rig.mnt, "data"), env=env, log=os.path.join(work, f"{fs}-spoold.log"))
        load = Load(server, args.spool, os.path.join(work, fs), seed=args.seed)
        rnd = random.Random(args.seed)
        clones = []
        for n in range(args.images):
            time.sleep(rnd.uniform(0.3, args.interval))
            began = time.monotonic()
            clone = rig.clone(n)
            with load.lock:
                acked = [(i, s) for (t, i, s) in load.acks if t < began]
            clones.append((clone, acked))
        load.finish()
        errors = load.errors
        server.stop(signal.SIGKILL)
        server = None
        unmount(rig.mnt)  # the clones carry its UUID, which XFS will not mount twice
        for n, (clone, acked) in enumerate(clones):
            found = verify_image(args, fs, clone, acked, os.path.join(work, fs, f"verify-{n}"))
            images += 1
            checked_uploads += len(acked)
            print(f"  {fs} image {n}: {len(acked)} acknowledged uploads checked, {len(found)} problems", flush=True)
            problems += [f"{fs} image {n}: {p}" for p in found]
            os.unlink(clone)
    finally:
        if load:
            load.finish()
        if server:
            server.stop(signal.SIGKILL)
        rig.close()
    return images, checked_uploads, problems, errors


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spoold", required=True)
    parser.add_argument("--spool", required=True)
    parser.add_argument("--fs", default="xfs,ext4", help="file systems to test, comma-separated")
    parser.add_argument("--images", type=int, default=4, help="crash images per file system")
    parser.add_argument("--interval", type=float, default=1.5, help="most seconds between two images")
    parser.add_argument("--megabytes", type=int, default=3072, help="size of the file system under test")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lying-disk", action="store_true", help="syncs skipped: succeed only if a loss is found")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("powerloss: needs root (loop devices, mount)")
    with tempfile.TemporaryDirectory(prefix="spool-powerloss-") as work:
        total_images, total_uploads, all_problems, all_errors = 0, 0, [], []
        for fs in args.fs.split(","):
            images, uploads, problems, errors = run_fs(args, fs, work)
            total_images += images
            total_uploads += uploads
            all_problems += problems
            all_errors += errors
    for p in all_problems[:20]:
        print(f"  problem: {p}")
    for e in all_errors[:10]:
        print(f"  client error: {e}")
    print(f"powerloss: {total_images} crash images, {total_uploads} acknowledged uploads checked, "
          f"{len(all_problems)} problems, {len(all_errors)} client errors")
    if args.lying_disk:
        sys.exit(0 if all_problems else "powerloss: syncs were skipped and no loss was found: the check cannot fail")
    sys.exit(1 if all_problems or all_errors else 0)


if __name__ == "__main__":
    main()
