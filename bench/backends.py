"""P10: the backends for more than one host (docs/SCALING.md) on this one: a
PostgreSQL catalog and an S3 object store (Ceph RGW), both real servers started
here by scripts/pg and scripts/s3, next to the embedded default (SQLite and the
spool directory) and to RGW's own PUT of the same bytes (curl, the ceiling of
that store).

- One large upload (`spool upload`) per system, in rounds.
- Small files (4 KiB) over 16 clients: SQLite + directory, PostgreSQL + directory
  (what the catalog alone costs: group commit on PostgreSQL against SQLite's),
  PostgreSQL + RGW, two hosts (two masters, 8 clients each) on PostgreSQL + RGW,
  and RGW's PUT by 16 curl processes with keep-alive.

Every Spool run gets a new PostgreSQL database and a new bucket prefix, so no
run finds another's objects. RGW's PUT is sent with UNSIGNED-PAYLOAD (curl);
Spool signs each part's real SHA-256, which RGW then checks. PostgreSQL runs
with fsync on, as SQLite here: a commit waits for the disk on both.
"""
import os
import statistics
import subprocess
import tempfile
import uuid

import bench as b


class Backends:
    def __init__(self, workdir):
        self.s3_dir, self.pg_dir = os.path.join(workdir, "s3"), os.path.join(workdir, "pg")
        self.env = dict(os.environ)
        for script, directory in (("s3", self.s3_dir), ("pg", self.pg_dir)):
            out = b.run(["bash", os.path.join(b.ROOT, "scripts", script), "up", directory]).stdout
            line = [l for l in out.splitlines() if l.startswith("export ")][-1]
            self.env.update(pair.split("=", 1) for pair in line[7:].split())
        self.database = self.env.pop("SPOOL_DATABASE")
        self.bucket = "spool-bench"
        self.curl(["-X", "PUT", f"{self.env['AWS_ENDPOINT_URL']}/{self.bucket}"])

    def curl(self, arguments):
        """curl signing for RGW (SigV4, UNSIGNED-PAYLOAD: the body is not hashed by the client)."""
        return b.run(["curl", "-fsS", "-o", "/dev/null", "--aws-sigv4", f"aws:amz:{self.env['AWS_REGION']}:s3",
                      "--user", f"{self.env['AWS_ACCESS_KEY_ID']}:{self.env['AWS_SECRET_ACCESS_KEY']}",
                      "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", *arguments])

    def fresh(self, objects=True):
        """Settings for one Spool run: a new database, a new prefix in the bucket."""
        name = "bench_" + uuid.uuid4().hex[:10]
        base, _ = self.database.rsplit("/", 1)
        user_password_host = base.split("//", 1)[1]
        password = user_password_host.split("@")[0].split(":")[1]
        host, port = user_password_host.split("@")[1].split(":")
        b.run(["psql", "-q", "-h", host, "-p", port, "-U", "spool", "-d", "spool", "-c", f"CREATE DATABASE {name}"],
              env=dict(os.environ, PGPASSWORD=password))
        extra = ["--objects", f"s3://{self.bucket}/{name}", "--part-size", "8M"] if objects else []
        return dict(self.env, SPOOL_DATABASE=f"{base}/{name}"), extra

    def stop(self):
        for script, directory in (("pg", self.pg_dir), ("s3", self.s3_dir)):
            subprocess.run(["bash", os.path.join(b.ROOT, "scripts", script), "down", directory])


def p10_backends(args, workdir):
    backends = Backends(workdir)
    try:
        return large(args, workdir, backends) + [""] + small(args, workdir, backends), None
    finally:
        b.stop_all()
        backends.stop()


def spool_run(workdir, backends, kind, upload, workers=None, hosts=1):
    """Starts Spool on `kind` ("sqlite", "postgres", "postgres+s3"), runs `upload(servers)`, returns its seconds."""
    if kind == "sqlite":
        env, extra = None, []
    else:
        env, extra = backends.fresh(objects=kind == "postgres+s3")
    servers = [b.Spool(workdir, workers or os.cpu_count(), extra=extra, env=env) for _ in range(hosts)]
    try:
        return b.timed(lambda: upload(servers))
    finally:
        for server in servers:
            server.stop()


def wait_all(procs):
    failed = [p.stderr.read().decode() for p in procs if p.wait() != 0]
    if failed:
        raise RuntimeError("an upload failed: " + failed[0])


def large(args, workdir, backends):
    size = min(args.large_mib, 256) << 20
    path = os.path.join(workdir, "backends-large.bin")
    variants = [
        ("Spool, SQLite + spool directory (the default)",
         lambda r: spool_run(workdir, backends, "sqlite", lambda s: wait_all([s[0].upload([path], extra=["--no-resume"])]))),
        ("Spool, PostgreSQL + RGW",
         lambda r: spool_run(workdir, backends, "postgres+s3", lambda s: wait_all([s[0].upload([path], extra=["--no-resume"])]))),
        ("RGW's own PUT (curl), the ceiling",
         lambda r: b.timed(lambda: backends.curl(["-T", path, f"{backends.env['AWS_ENDPOINT_URL']}/{backends.bucket}/large-{r}.bin"]))),
    ]
    rates = {name: [] for name, _ in variants}
    for round_ in range(args.repeat):
        b.make_file(path, size, 7000 + round_)
        shift = round_ % len(variants)
        for name, fn in variants[shift:] + variants[:shift]:
            b.sync()
            rates[name].append(size / fn(round_) / b.MB)
    os.unlink(path)
    ceiling = statistics.median(rates[variants[-1][0]])
    lines = [f"### P10: the PostgreSQL + S3 backends on one host, one {size >> 20} MiB upload", "",
             "| system | MB/s | spread of the rounds | vs RGW's own PUT |", "|---|---|---|---|"]
    lines += [f"| {name} | {statistics.median(v):.0f} | {b.spread(v)} | {b.ratio(statistics.median(v), ceiling)} |"
              for name, v in rates.items()]
    return lines


def small(args, workdir, backends):
    d, files = b.small_files(workdir, args.small_files)
    groups = b.split(files, 16)
    listings = [b.file_list(workdir, g) for g in groups]

    def spread_over(servers):
        wait_all([servers[n % len(servers)].upload_listed(listing, extra=["--no-resume"]) for n, listing in enumerate(listings)])

    def rgw_put(round_):
        base = f"{backends.env['AWS_ENDPOINT_URL']}/{backends.bucket}/small-{round_}"
        procs = [subprocess.Popen(
            ["curl", "-fsS", "-o", "/dev/null", "--aws-sigv4", f"aws:amz:{backends.env['AWS_REGION']}:s3",
             "--user", f"{backends.env['AWS_ACCESS_KEY_ID']}:{backends.env['AWS_SECRET_ACCESS_KEY']}",
             "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "-T", "{" + ",".join(g) + "}", f"{base}/{n}/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for n, g in enumerate(groups)]
        return b.timed(lambda: wait_all(procs))

    variants = [
        ("Spool, SQLite + spool directory (the default)", lambda r: spool_run(workdir, backends, "sqlite", spread_over)),
        ("Spool, PostgreSQL + spool directory", lambda r: spool_run(workdir, backends, "postgres", spread_over)),
        ("Spool, PostgreSQL + RGW", lambda r: spool_run(workdir, backends, "postgres+s3", spread_over)),
        ("Spool, two hosts on PostgreSQL + RGW (8 clients each)",
         lambda r: spool_run(workdir, backends, "postgres+s3", spread_over, hosts=2)),
        ("RGW's own PUT (16 curl, keep-alive), the ceiling", rgw_put),
    ]
    rates = {name: [] for name, _ in variants}
    for round_ in range(args.rounds):
        shift = round_ % len(variants)
        for name, fn in variants[shift:] + variants[:shift]:
            b.sync()
            rates[name].append(len(files) / fn(round_))
    ceiling = statistics.median(rates[variants[-1][0]])
    default = statistics.median(rates[variants[0][0]])
    lines = [f"### P10: the PostgreSQL + S3 backends on one host, {len(files)} files of 4 KiB over 16 connections", "",
             "| system | files/s | spread of the rounds | vs RGW's own PUT | vs the default |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {statistics.median(v):.0f} | {b.spread(v)} | {b.ratio(statistics.median(v), ceiling)} | "
              f"{b.ratio(statistics.median(v), default)} |" for name, v in rates.items()]
    return lines
