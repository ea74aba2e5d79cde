#!/usr/bin/env python3
"""Spool's benchmarks, side by side with this machine's ceilings and with the
servers people would pick instead (vsftpd, nginx WebDAV PUT), in one run.

Every figure is printed next to a baseline measured in the same run, as a ratio:
timings on shared machines vary between runs, ratios much less. Run it through
bench/run, which builds Spool in release mode and installs the peers first.
"""
import argparse
import datetime
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, ".build", "release")
SPOOLD = os.path.join(RELEASE, "spoold")
SPOOL = os.path.join(RELEASE, "spool")
BENCH = os.path.join(RELEASE, "spool-bench")
MB = 1e6


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def timed(fn):
    start = time.monotonic()
    fn()
    return time.monotonic() - start


def sync():
    run(["sync"])


TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pids):
    """CPU seconds used so far by these processes and the children they have reaped."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime: stat(5)
    return total / TICK


def children_cpu():
    """CPU seconds used by this script's children that have been waited for (the clients)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def make_file(path, size, seed):
    """Pseudo-random bytes, fast: a random 16 MiB block, each copy made unique by its index."""
    block = bytearray(os.urandom(min(size, 16 << 20)) if size else b"")
    with open(path, "wb") as f:
        written, index = 0, seed << 32
        while written < size:
            block[:8] = index.to_bytes(8, "little")
            chunk = block[: min(len(block), size - written)]
            f.write(chunk)
            written += len(chunk)
            index += 1


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


# Every server started, so that a run that fails part way still stops them all.
STARTED = []


def stop_all():
    for proc in STARTED:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


class Spool:
    def __init__(self, workdir, workers, extra=(), data=None, http=False, wrapper=(), binary=SPOOLD, env=None):
        self.data = data or tempfile.mkdtemp(dir=workdir, prefix="spool-")
        self.log = os.path.join(self.data, "spoold.log")
        self.workers = workers
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [*wrapper, binary, "serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0" if http else "none", "--workers", str(workers), "--data-dir", self.data,
             "--min-free", "0", "--max-client-connections", "5000", "--max-connections", "5000", *extra],
            stdout=subprocess.DEVNULL, stderr=open(self.log, "w"), env=env)
        STARTED.append(self.proc)
        while True:
            text = open(self.log).read()
            if text.count("worker ready") >= workers and "listening" in text:
                self.ready_after = time.monotonic() - self.started
                break
            if self.proc.poll() is not None:
                raise RuntimeError("spoold exited:\n" + text)
            time.sleep(0.001)
        ports = dict(line.split() for line in open(os.path.join(self.data, "run", "spoold.ports")))
        self.port = int(ports["line"].rsplit(":", 1)[1])
        self.http_port = int(ports["http"].rsplit(":", 1)[1]) if http else None
        self.address = f"127.0.0.1:{self.port}"
        self.env = dict(os.environ, SPOOL_STATE_DIR=os.path.join(self.data, "client-state"))

    def worker_pids(self):
        out = run(["pgrep", "-P", str(self.proc.pid)]).stdout.split()
        return [int(p) for p in out]

    def pids(self):
        return [self.proc.pid, *self.worker_pids()]

    def upload(self, files, extra=()):
        return subprocess.Popen([SPOOL, "upload", "--quiet", "--retries", "0", "--server", self.address, *extra, *files],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=self.env)

    def upload_listed(self, listing, extra=()):
        """Uploads the files named in `listing` (see `file_list`)."""
        return self.upload([], extra=[*extra, "--files-from", listing])

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def file_list(workdir, files):
    """A file naming `files`, one per line, for `spool upload --files-from`: the way
    `spool upload --help` gives for many files, as curl gets its many files in one
    `-T {a,b,...}` argument. As hundreds of arguments, the argument parser's cost
    grows with their square (14 ms of a client's 22 ms for 312 files)."""
    fd, path = tempfile.mkstemp(dir=workdir, prefix="list-")
    with os.fdopen(fd, "w") as f:
        f.write("".join(name + "\n" for name in files))
    return path


class Vsftpd:
    """Anonymous upload on 127.0.0.1, configured in a temporary directory."""

    def __init__(self, workdir):
        self.dir = tempfile.mkdtemp(dir=workdir, prefix="vsftpd-")
        os.chmod(self.dir, 0o755)
        self.upload_dir = os.path.join(self.dir, "up")
        for sub in ["", *(f"{kind}{n}" for kind in "ab" for n in range(10))]:
            os.makedirs(os.path.join(self.upload_dir, sub), exist_ok=True)
            shutil.chown(os.path.join(self.upload_dir, sub), "ftp", "ftp")
        os.makedirs("/var/run/vsftpd/empty", exist_ok=True)
        self.port = free_port()
        pasv = free_port()
        conf = os.path.join(workdir, f"vsftpd-{self.port}.conf")
        with open(conf, "w") as f:
            f.write("\n".join([
                "listen=YES", "listen_address=127.0.0.1", f"listen_port={self.port}", "background=NO",
                "anonymous_enable=YES", "local_enable=NO", "write_enable=YES", "anon_upload_enable=YES",
                "anon_mkdir_write_enable=YES", "anon_other_write_enable=YES", f"anon_root={self.dir}",
                "no_anon_password=YES", "anon_umask=022", "seccomp_sandbox=NO", "pasv_enable=YES",
                f"pasv_min_port={pasv}", f"pasv_max_port={pasv + 200}", "pasv_address=127.0.0.1",
                "max_clients=200", "max_per_ip=200", "xferlog_enable=NO", "use_localtime=NO", "",
            ]))
        self.proc = subprocess.Popen(["vsftpd", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        STARTED.append(self.proc)
        wait_port(self.port)

    def pids(self):
        return [self.proc.pid]  # a session's processes count once the listener has reaped them

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


class Nginx:
    """WebDAV PUT on 127.0.0.1, configured in a temporary directory."""

    def __init__(self, workdir, wrapper=(), tls=None):
        """`tls`: (certificate, key) PEM files for a second, https listener on `tls_port`."""
        self.dir = tempfile.mkdtemp(dir=workdir, prefix="nginx-")
        os.makedirs(os.path.join(self.dir, "www", "up"))
        os.makedirs(os.path.join(self.dir, "tmp"))
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        https = (f"listen 127.0.0.1:{self.tls_port} ssl; ssl_certificate {tls[0]}; ssl_certificate_key {tls[1]}; "
                 "ssl_protocols TLSv1.2 TLSv1.3;") if tls else ""
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""
user root;
worker_processes {os.cpu_count()};
daemon off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {self.dir}/tmp;
    client_max_body_size 0;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{self.port};
        {https}
        root {self.dir}/www;
        location /up/ {{
            dav_methods PUT;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
        }}
    }}
}}
""")
        self.proc = subprocess.Popen([*wrapper, "nginx", "-c", conf, "-p", self.dir], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        STARTED.append(self.proc)
        wait_port(self.port)

    def pids(self):
        return [self.proc.pid, *(int(p) for p in run(["pgrep", "-P", str(self.proc.pid)]).stdout.split())]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def wait_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on port {port}")


def check_size(path, size):
    """A peer that answered but stored nothing (or less) must not look fast."""
    actual = os.path.getsize(path) if os.path.exists(path) else -1
    if actual != size:
        raise RuntimeError(f"{path}: {actual} bytes stored, {size} sent")


def check_uploaded(directory, count):
    found = sum(len(files) for _, _, files in os.walk(directory))
    if found < count:
        raise RuntimeError(f"{directory}: {found} files stored, {count} sent")


def ratio(value, base):
    return f"{value / base:.2f}" if base else "-"


# ---------------------------------------------------------------- scenarios

def ceilings(args, workdir):
    out = run([BENCH, "ceiling", str(args.large_mib), workdir]).stdout
    return {k: float(v) for k, v in (line.split() for line in out.splitlines())}


def in_rounds(args, path, size, seed, variants, before_round=None):
    """Runs every (name, server, fn) of `variants` once per round on a new file of
    `size` bytes at `path`, and returns each one's MB/s and CPU seconds per GiB
    (client and server) for every round.

    The disk's speed drifts by a factor of two within minutes here, so the
    systems take turns: each round runs every one of them, in a rotated order,
    each starting with nothing dirty in the page cache. Every round sends new
    content under new names: no system replaces (and frees) the previous round's
    file, and Spool stores a new object rather than one it already has. CPU: the
    client's (a waited-for child of this script) and the server's processes'
    (from /proc), whatever core they ran on."""
    rates = {name: [] for name, _, _ in variants}
    cpus = {name: [] for name, _, _ in variants}
    for round_ in range(args.repeat):
        if before_round:
            before_round(round_)
        make_file(path, size, seed + round_)
        shift = round_ % len(variants)
        for name, server, fn in variants[shift:] + variants[:shift]:
            sync()
            cpu = children_cpu() + process_cpu(server.pids())
            rates[name].append(size / timed(lambda: fn(round_)) / MB)
            time.sleep(0.1)  # for vsftpd's listener to reap the session's processes
            cpus[name].append((children_cpu() + process_cpu(server.pids()) - cpu) / (size / (1 << 30)))
            if os.environ.get("BENCH_VERBOSE"):
                print(f"round {round_ + 1}: {name}: {rates[name][-1]:.0f} MB/s, {cpus[name][-1]:.2f} CPU s/GiB", flush=True)
    return rates, cpus


def p1_large(args, workdir, ceiling):
    size = args.large_mib << 20
    path = os.path.join(workdir, "large.bin")
    spool, vs, ng = Spool(workdir, os.cpu_count(), http=True), Vsftpd(workdir), Nginx(workdir)
    ftp, http = f"ftp://127.0.0.1:{vs.port}/up/", f"http://127.0.0.1:{ng.port}/up/"

    def spool_upload(round_):
        p = spool.upload([path], extra=["--no-resume"])
        if p.wait() != 0:
            raise RuntimeError(p.stderr.read().decode())
    variants = [
        ("Spool (client hashing + upload, durable)", spool, spool_upload),
        # P1h: the same curl as for nginx, so the only difference is the server.
        ("Spool HTTP PUT (curl; server hashing, durable)", spool,
         lambda r: run(["curl", "-fsS", "-o", "/dev/null", "-T", path, f"http://127.0.0.1:{spool.http_port}/files/h{r}.bin"])),
        ("vsftpd (curl), as it is", vs, lambda r: run(["curl", "-fsS", "-T", path, ftp + f"a{r}.bin"])),
        ("vsftpd (curl) + sync", vs, lambda r: (run(["curl", "-fsS", "-T", path, ftp + f"b{r}.bin"]), sync())),
        ("nginx PUT (curl), as it is", ng, lambda r: run(["curl", "-fsS", "-T", path, http + f"a{r}.bin"])),
        ("nginx PUT (curl) + sync", ng, lambda r: (run(["curl", "-fsS", "-T", path, http + f"b{r}.bin"]), sync())),
    ]
    disk = [ceiling["disk_fsync"]]
    rates, cpus = in_rounds(args, path, size, 1, variants,
                            before_round=lambda r: r and disk.append(ceilings(args, workdir)["disk_fsync"]))
    check_size(os.path.join(vs.upload_dir, "a0.bin"), size)
    check_size(os.path.join(ng.dir, "www", "up", "a0.bin"), size)
    for server in (spool, vs, ng):
        server.stop()
    os.unlink(path)
    rows = [(name, statistics.median(values)) for name, values in rates.items()]
    ceiling = dict(ceiling, disk_fsync=statistics.median(disk))

    base = ceiling["disk_fsync"]
    lines = [f"### P1: one {args.large_mib} MiB upload, end to end",
             "", "| system | MB/s | spread of the rounds | vs disk+fsync ceiling | CPU s per GiB, client + server |",
             "|---|---|---|---|---|",
             f"| ceiling: disk write + fsync (median of the rounds) | {base:.0f} | {spread(disk)} | 1.00 | - |"]
    lines += [f"| {name} | {rate:.0f} | {spread(rates[name])} | {ratio(rate, base)} | {statistics.median(cpus[name]):.2f} |"
              for name, rate in rows]
    spool_http, nginx_sync = "Spool HTTP PUT (curl; server hashing, durable)", "nginx PUT (curl) + sync"
    rate = dict(rows)
    lines += ["", f"P1h, the same curl to both: Spool HTTP at {ratio(rate[spool_http], rate[nginx_sync])} of nginx + sync's MB/s "
              f"(target: at least 1.00), {ratio(statistics.median(cpus[spool_http]), statistics.median(cpus[nginx_sync]))} "
              "of its CPU per GiB, client included (target: at most 1.5)."]
    return lines, rows


def spread(values):
    """The lowest and highest of the rounds: how far one figure drifts."""
    return f"{min(values):.0f}–{max(values):.0f}" if len(values) > 1 else "-"


def small_files(workdir, count):
    d = tempfile.mkdtemp(dir=workdir, prefix="small-")
    for i in range(count):
        make_file(os.path.join(d, f"f{i:05d}.bin"), 4096, 1000 + i)
    return d, sorted(os.path.join(d, n) for n in os.listdir(d))


def split(items, parts):
    return [items[i::parts] for i in range(parts)]


def p2_small(args, workdir):
    d, files = small_files(workdir, args.small_files)
    groups = split(files, 16)
    vs, ng = Vsftpd(workdir), Nginx(workdir)

    listings = [file_list(workdir, g) for g in groups]

    def spool_run(workers):
        spool = Spool(workdir, workers)
        elapsed = timed(lambda: [p.wait() for p in [spool.upload_listed(g, extra=["--no-resume"]) for g in listings]])
        spool.stop()
        return elapsed

    def spool_http_run(workers):
        # P2h: 16 curl processes, each its files over one kept-alive connection, as for nginx.
        spool = Spool(workdir, workers, http=True)
        base = f"http://127.0.0.1:{spool.http_port}/files"

        def put_all():
            procs = [subprocess.Popen(["curl", "-fsS", "-o", "/dev/null", "-T", "{" + ",".join(g) + "}", f"{base}/{n}/"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for n, g in enumerate(groups)]
            failed = [p.stderr.read().decode() for p in procs if p.wait() != 0]
            if failed:
                raise RuntimeError("curl to Spool failed: " + failed[0])
        elapsed = timed(put_all)
        spool.stop()
        return elapsed

    def lftp(target):
        script = f"set net:max-retries 1; open -u anonymous, ftp://127.0.0.1:{vs.port}; cd up/{target}; mput -P 16 {d}/*.bin; quit"
        run(["lftp", "-c", script])

    def nginx_put(prefix):
        procs = [subprocess.Popen(["curl", "-fsS", "-T", "{" + ",".join(g) + "}",
                                   f"http://127.0.0.1:{ng.port}/up/{prefix}/{n}/"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for n, g in enumerate(groups)]
        for p in procs:
            p.wait()

    def ceiling_run():
        # The same count of 4 KiB files, no network, hashing or database: the kernel and disk alone.
        out = run([BENCH, "small-files", str(len(files)), workdir]).stdout.split()
        return len(files) / float(out[1])

    ceiling = f"ceiling: {len(files)} files written by {os.cpu_count()} threads, then one syncfs"
    default = f"Spool, {os.cpu_count()} workers (durable, the default)"
    names = {w: default if w == os.cpu_count() else f"Spool, {w} worker{'s' if w > 1 else ''} (durable)"
             for w in args.worker_counts}
    variants = [(ceiling, lambda r: ceiling_run())]
    variants += [(names[w], lambda r, w=w: spool_run(w)) for w in args.worker_counts]
    http_name = f"Spool HTTP PUT, {os.cpu_count()} workers (16 curl, keep-alive, durable)"
    variants += [(http_name, lambda r: spool_http_run(os.cpu_count()))]
    variants += [
        ("vsftpd (lftp mput -P 16), as it is", lambda r: timed(lambda: lftp(f"a{r}"))),
        ("vsftpd (lftp mput -P 16) + sync", lambda r: timed(lambda: (lftp(f"b{r}"), sync()))),
        ("nginx PUT (16 curl, keep-alive), as it is", lambda r: timed(lambda: nginx_put(f"a{r}"))),
        ("nginx PUT (16 curl, keep-alive) + sync", lambda r: timed(lambda: (nginx_put(f"b{r}"), sync()))),
    ]
    # Rounds in a rotated order, as for P1; every run stores into a fresh directory.
    rates = {name: [] for name, _ in variants}
    for round_ in range(args.rounds):
        shift = round_ % len(variants)
        for name, fn in variants[shift:] + variants[:shift]:
            sync()
            rates[name].append(len(files) / fn(round_))
            if os.environ.get("BENCH_VERBOSE"): print(f"round {round_ + 1}: {name}: {rates[name][-1]:.0f} files/s", flush=True)
    check_uploaded(os.path.join(vs.upload_dir, "a0"), len(files))
    check_uploaded(os.path.join(ng.dir, "www", "up", "a0"), len(files))
    vs.stop()
    ng.stop()
    results = [(name, statistics.median(values)) for name, values in rates.items()]

    rate = dict(results)
    top = rate[ceiling]
    spool_name = default if default in rate else names[args.worker_counts[0]]
    lines = [f"### P2: {len(files)} files of 4 KiB over 16 parallel connections",
             "", f"| system | files/s | spread of the rounds | vs ceiling | vs {spool_name} |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {value:.0f} | {spread(rates[name])} | {ratio(value, top)} | {ratio(value, rate[spool_name])} |"
              for name, value in results]
    nginx_sync = "nginx PUT (16 curl, keep-alive) + sync"
    lines += ["", f"P2h, the same 16 curls to both: Spool HTTP at {ratio(rate[http_name], rate[nginx_sync])} of nginx + sync's "
              "files/s (target: at least 1.2)."]
    return lines, results


def p3_memory(args, workdir):
    spool = Spool(workdir, 1)
    worker = spool.worker_pids()[0]
    idle = rss_kib(worker)
    sparse = os.path.join(workdir, "sparse.bin")
    with open(sparse, "wb") as f:
        f.truncate(args.memory_mib << 20)
    p = spool.upload([sparse])
    p.wait()
    peak = rss_kib(worker, "VmHWM")
    os.unlink(sparse)

    before = rss_kib(worker)
    sockets = []
    for _ in range(args.idle_connections):
        s = socket.create_connection(("127.0.0.1", spool.port))
        s.recv(200)  # the greeting: the worker has set the connection up
        sockets.append(s)
    time.sleep(0.2)
    after = rss_kib(worker)
    for s in sockets:
        s.close()
    spool.stop()
    per = (after - before) / args.idle_connections
    lines = [f"### P3: memory of one worker", "", "| measure | value | vs idle worker |", "|---|---|---|",
             f"| idle worker RSS (baseline) | {idle / 1024:.1f} MiB | 1.00 |",
             f"| peak RSS while receiving {args.memory_mib} MiB | {peak / 1024:.1f} MiB | {ratio(peak, idle)} |",
             f"| RSS with {args.idle_connections} idle connections | {after / 1024:.1f} MiB | {ratio(after, idle)} |",
             f"| RSS per idle connection | {per:.1f} KiB | - |"]
    return lines, {"idle": idle, "peak": peak, "per_connection_kib": per}


def status_latencies(port, upload_id, count):
    s = socket.create_connection(("127.0.0.1", port))
    f = s.makefile("rwb")
    f.readline()
    times = []
    for _ in range(count):
        start = time.perf_counter()
        f.write(f"STATUS {upload_id}\n".encode())
        f.flush()
        line = f.readline()
        times.append((time.perf_counter() - start) * 1000)
        if not line.startswith(b"211"):
            raise RuntimeError(line)
    s.close()
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.99) - 1]


def p4_status(args, workdir):
    spool = Spool(workdir, os.cpu_count())
    first = os.path.join(workdir, "status-first.bin")
    make_file(first, 1024, 7)
    spool.upload([first]).wait()
    out = subprocess.run([SPOOLD, "admin", "list", "--jsonl", "--data-dir", spool.data], stdout=subprocess.PIPE,
                         text=True).stdout
    upload_id = re.search(r'"id":"([0-9A-Z]{26})"', out).group(1)
    idle = status_latencies(spool.port, upload_id, args.status_count)

    files = []
    for i in range(16):
        path = os.path.join(workdir, f"stream-{i}.bin")
        make_file(path, args.stream_mib << 20, 100 + i)
        files.append(path)
    procs = [spool.upload([path], extra=["--limit-rate", f"{args.stream_rate_mib}M"]) for path in files]
    time.sleep(0.5)
    busy = status_latencies(spool.port, upload_id, args.status_count)
    streaming = sum(1 for p in procs if p.poll() is None)
    for p in procs:
        p.wait()
    for path in files + [first]:
        os.unlink(path)
    spool.stop()
    lines = [f"### P4: STATUS round trip while 16 uploads stream", "",
             f"| measure | p50 ms | p99 ms | p50 vs idle |", "|---|---|---|---|",
             f"| idle server (baseline) | {idle[0]:.3f} | {idle[1]:.3f} | 1.00 |",
             f"| {streaming} of 16 uploads streaming | {busy[0]:.3f} | {busy[1]:.3f} | {ratio(busy[0], idle[0])} |"]
    return lines, {"idle": idle, "busy": busy}


def p5_startup(args, workdir):
    base = statistics.median(timed(lambda: run([SPOOLD, "--version"])) for _ in range(args.repeat + 2))
    first, again = [], []
    for _ in range(args.repeat + 2):
        # A first start creates the data directory (database, 256 object
        # directories); a restart finds them, as every later start does.
        spool = Spool(workdir, os.cpu_count())
        first.append(spool.ready_after)
        spool.stop()
        spool = Spool(workdir, os.cpu_count(), data=spool.data)
        again.append(spool.ready_after)
        spool.stop()
    ready, fresh = statistics.median(again), statistics.median(first)
    lines = ["### P5: start-up, `spoold serve` to every worker accepting", "",
             "| measure | ms | vs process start |", "|---|---|---|",
             f"| `spoold --version` (process start, baseline) | {base * 1000:.1f} | 1.00 |",
             f"| {os.cpu_count()} workers ready, restart | {ready * 1000:.1f} | {ratio(ready, base)} |",
             f"| {os.cpu_count()} workers ready, first start (creates the data directory) | {fresh * 1000:.1f} "
             f"| {ratio(fresh, base)} |"]
    return lines, {"base": base, "ready": ready, "first": fresh}


def require_space(args, workdir):
    """Stops before a run that would fill the disk: nothing is deleted until the end,
    so P1 keeps every system's copy of every round, and P3 keeps its large upload."""
    chosen = set(args.only.split(",")) if args.only else {"p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8"}
    need = 2 << 30
    if "p1" in chosen:
        need += (args.repeat * 5 + 1) * (args.large_mib << 20)
    if "p3" in chosen:
        need += args.memory_mib << 20
    if "p7" in chosen:
        need += 3 * args.repeat * (args.large_mib << 20)
    if "p8" in chosen:
        need += (6 * args.repeat + 1) * (args.large_mib << 20)
    stat = os.statvfs(workdir)
    free = stat.f_bavail * stat.f_frsize
    if free < need:
        sys.exit(f"bench: needs {need / 2**30:.1f} GiB free in {workdir}, has {free / 2**30:.1f} GiB")


def machine(workdir):
    mem = open("/proc/meminfo").readline().split()[1]
    df = run(["df", "-h", workdir]).stdout.splitlines()[-1].split()
    return f"{os.cpu_count()} cores, {int(mem) / 1024 / 1024:.1f} GiB memory, disk {df[0]} ({df[1]}, {df[3]} free)"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
    parser.add_argument("--output", help="also write the report to this Markdown file")
    parser.add_argument("--only", help="comma-separated scenarios to run: p1,p2,p3,p4,p5,p6,p7,p8,p9,p10")
    args = parser.parse_args()
    if args.quick:
        args.large_mib, args.small_files, args.memory_mib, args.idle_connections = 64, 400, 128, 200
        args.status_count, args.stream_mib, args.stream_rate_mib, args.repeat, args.rounds = 200, 4, 4, 1, 1
        args.worker_counts = [1, 2]
        args.ic_files, args.ic_mib = 100, 16
    else:
        args.large_mib, args.small_files, args.memory_mib, args.idle_connections = 1024, 5000, 4096, 1000
        args.status_count, args.stream_mib, args.stream_rate_mib, args.repeat, args.rounds = 2000, 64, 16, 5, 5
        args.worker_counts = [1, 2, 4]
        args.ic_files, args.ic_mib = 500, 64

    workdir = tempfile.mkdtemp(prefix="spool-bench-", dir=os.environ.get("SPOOL_BENCH_DIR", "/var/tmp"))
    os.chmod(workdir, 0o755)
    try:
        require_space(args, workdir)
        ceiling = ceilings(args, workdir)
        report = [f"# Benchmarks", "",
                  f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC with `bench/run"
                  f"{' --quick' if args.quick else ''}` on {machine(workdir)}.", "",
                  "### Ceilings of this machine", "", "| what | MB/s |", "|---|---|"]
        report += [f"| {name} | {value:.0f} |" for name, value in
                   [("SHA-256, in memory", ceiling["sha256"]), ("loopback TCP, one connection", ceiling["loopback"]),
                    ("disk write + fsync", ceiling["disk_fsync"])]]
        report += ["", "How to read these tables, and what is fair:", "",
                   "- Spool is measured as it runs by default: every file is fsynced, renamed into place, its "
                   "directory fsynced and its row committed before the client hears `250`, and both ends hash "
                   "every byte: the client hashes a small file before declaring it, and a file of 1 MiB or more "
                   "while sending it (its SHA-256 follows the body). Neither vsftpd nor nginx calls fsync for an "
                   "upload, and neither hashes.",
                   "- So each peer is shown as it is and followed by `sync`, its nearest durable equivalent. That is "
                   "still kinder to the peers than to Spool: one `sync` at the end of a batch of 5,000 files makes "
                   "them durable all at once, where Spool makes each file durable before acknowledging it (small "
                   "files that arrive together share one `syncfs` and one commit; `spool upload` keeps up to 64 in "
                   "flight per connection).",
                   "- P1 and P2 run in rounds: every system once per round, in a rotated order, each run starting "
                   "with nothing dirty in the page cache and storing into a fresh directory; the tables show medians "
                   "over the rounds. The disk's speed here drifts by a factor of two within minutes, so a single run "
                   "per system would mostly measure when its turn came.",
                   "- Nothing is deleted until the end of the run: on this machine's file system (ext4 without a "
                   "journal) creating files soon after deleting many is slow, because the inode allocator "
                   "checks every free inode it meets and skips those freed in the last 60 s (6 minutes while "
                   "their inode table block is not yet written back; `recently_deleted` in fs/ext4/ialloc.c), "
                   "and deleting between runs slowed down whichever system came next.",
                   "- On P2 a worker stores small files in batches on one thread per stage (write, then sync and "
                   "commit), so a second worker on the second core helps; past the number of cores, more workers "
                   "add contention for SQLite's write lock rather than speed.",
                   "- A peer's `+ sync` can come out faster than the same peer as it is: the difference is within "
                   "the drift described above.",
                   "- The disk ceiling writes 1 GiB from memory as fast as it can and then fsyncs, so the disk starts "
                   "late; an upload arrives at network speed and the kernel (or Spool's `sync_file_range`) writes "
                   "it back as it comes, so a system can beat the ceiling. P1's ceiling is the median of one "
                   "measurement per round; the table above is the first of them.",
                   "- P1's CPU column adds the client's CPU time (from `getrusage`) to the server's processes' "
                   "(from /proc, a session's processes included once reaped), per GiB: both Spool ends hash "
                   "every byte, about 0.6 s per GiB each here, so when the disk is fast Spool is bound by the "
                   "two cores rather than by the disk. The kernel's writeback threads are counted for no one.",
                   "- P2's ceiling (`spool-bench small-files`) creates the same number of 4 KiB files in 16 "
                   "directories, one thread per core, then calls `syncfs` once: what the kernel and the disk "
                   "alone take to store them durably, without a network, a protocol, hashing or a database. It "
                   "runs in each round like the systems. Spool's default is one worker per core. Each of the 16 "
                   "Spool clients is given its files with `--files-from`, as each curl gets its files in one "
                   "`-T {a,b,...}` argument (as hundreds of arguments, swift-argument-parser's cost grows with "
                   "their square).",
                   ""]
        chosen = set(args.only.split(",")) if args.only else None
        from instructions import p6_instructions
        from tus import p7_tus
        from tls import p8_tls
        from hooks import p9_hooks
        from backends import p10_backends
        for scenario in (p1_large, p2_small, p3_memory, p4_status, p5_startup, p6_instructions, p7_tus, p8_tls, p9_hooks,
                         p10_backends):
            if chosen and scenario.__name__.split("_")[0] not in chosen:
                continue
            lines, _ = scenario(args, workdir, ceiling) if scenario is p1_large else scenario(args, workdir)
            report += lines + [""]
            print("\n".join(lines) + "\n", flush=True)
        text = "\n".join(report)
        print(text if not args.output else "", end="")
        if args.output:
            with open(args.output, "w") as f:
                f.write(text)
    finally:
        stop_all()
        # Only now: on this machine's file system, creating files within a minute or more of
        # deleting many is slow (the inode allocator skips recently freed inodes),
        # so deleting between runs would slow down whichever system runs next.
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
