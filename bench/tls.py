"""P8: what TLS costs. One large upload over each door with and without TLS, on
two Spool servers alike but for `--tls-cert`, against nginx PUT over http and
https with the same certificate (followed by `sync`, its nearest durable
equivalent, as in P1), in rounds; and a worker's memory per idle connection
with and without TLS.

The certificates are made here with openssl, as the tests make theirs: a CA and
a P-256 server certificate for 127.0.0.1 that it signed. Every client checks the
server's certificate against that CA (`--cacert`), as a real one would.
"""
import os
import socket
import ssl
import statistics
import subprocess
import tempfile
import time

import bench as b


def certificates(workdir):
    """A CA and a server certificate and key it signed for 127.0.0.1; returns (ca, cert, key)."""
    d = tempfile.mkdtemp(dir=workdir, prefix="certs-")

    def openssl(*arguments):
        b.run(["openssl", *arguments], cwd=d)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
            "-out", "ca.pem", "-days", "2", "-subj", "/CN=Spool bench CA")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "server.key",
            "-out", "server.csr", "-subj", "/CN=localhost")
    with open(os.path.join(d, "names.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "names.ext")
    return tuple(os.path.join(d, name) for name in ("ca.pem", "server.pem", "server.key"))


def idle_rss_per_connection(spool, count, context):
    """A worker's RSS growth per connection that has finished its handshake (if
    `context`) and read the greeting, in KiB."""
    worker = spool.worker_pids()[0]
    before = b.rss_kib(worker)
    sockets = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", spool.port))
        if context:
            s = context.wrap_socket(s, server_hostname="127.0.0.1")
        s.recv(200)  # the greeting: the worker has set the connection up
        sockets.append(s)
    time.sleep(0.2)
    after = b.rss_kib(worker)
    for s in sockets:
        s.close()
    return (after - before) / count


def negotiated(port, ca):
    """The protocol version and cipher a client of today gets from this port."""
    context = ssl.create_default_context(cafile=ca)
    with context.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="127.0.0.1") as s:
        return f"{s.version()} {s.cipher()[0]}"


def p8_tls(args, workdir):
    ca, cert, key = certificates(workdir)
    size = args.large_mib << 20
    path = os.path.join(workdir, "tls.bin")
    workers = os.cpu_count()
    plain = b.Spool(workdir, workers, http=True)
    secure = b.Spool(workdir, workers, http=True, extra=["--tls-cert", cert, "--tls-key", key])
    ng = b.Nginx(workdir, tls=(cert, key))

    def spool_upload(server, extra):
        def fn(round_):
            p = server.upload([path], extra=["--no-resume", *extra])
            if p.wait() != 0:
                raise RuntimeError(p.stderr.read().decode())
        return fn

    def curl(url, extra=()):
        return lambda r: b.run(["curl", "-fsS", "-o", "/dev/null", *extra, "-T", path, url.format(r=r)])

    def curl_sync(url, extra=()):
        put = curl(url, extra)
        return lambda r: (put(r), b.sync())

    https = ["--cacert", ca]
    names = {
        "line": "Spool line protocol (`spool upload`), plain",
        "line-tls": "Spool line protocol (`spool upload --cacert`), TLS",
        "http": "Spool HTTP PUT (curl), plain",
        "https": "Spool HTTPS PUT (curl --cacert)",
        "nginx": "nginx PUT (curl) + sync, plain",
        "nginx-tls": "nginx PUT (curl --cacert) + sync, TLS",
    }
    variants = [
        (names["line"], plain, spool_upload(plain, [])),
        (names["line-tls"], secure, spool_upload(secure, ["--cacert", ca])),
        (names["http"], plain, curl(f"http://127.0.0.1:{plain.http_port}/files/p8-{{r}}.bin")),
        (names["https"], secure, curl(f"https://127.0.0.1:{secure.http_port}/files/p8-{{r}}.bin", https)),
        (names["nginx"], ng, curl_sync(f"http://127.0.0.1:{ng.port}/up/p{{r}}.bin")),
        (names["nginx-tls"], ng, curl_sync(f"https://127.0.0.1:{ng.tls_port}/up/t{{r}}.bin", https)),
    ]
    rates, cpus = b.in_rounds(args, path, size, 400, variants)
    b.check_size(os.path.join(ng.dir, "www", "up", "t0.bin"), size)
    ciphers = {"Spool": negotiated(secure.port, ca), "nginx": negotiated(ng.tls_port, ca)}
    for server in (plain, secure, ng):
        server.stop()
    os.unlink(path)

    one_plain = b.Spool(workdir, 1)
    one_secure = b.Spool(workdir, 1, extra=["--tls-cert", cert, "--tls-key", key])
    context = ssl.create_default_context(cafile=ca)
    per_plain = idle_rss_per_connection(one_plain, args.idle_connections, None)
    per_tls = idle_rss_per_connection(one_secure, args.idle_connections, context)
    one_plain.stop()
    one_secure.stop()

    rate = {key: statistics.median(rates[name]) for key, name in names.items()}
    cpu = {key: statistics.median(cpus[name]) for key, name in names.items()}
    pairs = [("line", "line-tls"), ("http", "https"), ("nginx", "nginx-tls")]
    lines = [f"### P8: TLS, one {args.large_mib} MiB upload with and without it", "",
             "| upload | MB/s | spread of the rounds | TLS vs plain, same door | CPU s per GiB, client + server |",
             "|---|---|---|---|---|"]
    for plain_key, tls_key in pairs:
        for key in (plain_key, tls_key):
            vs = b.ratio(rate[key], rate[plain_key]) if key == tls_key else "1.00"
            lines.append(f"| {names[key]} | {rate[key]:.0f} | {b.spread(rates[names[key]])} | {vs} | {cpu[key]:.2f} |")
    lines += ["", f"Spool HTTPS at {b.ratio(rate['https'], rate['nginx-tls'])} of nginx + sync over TLS "
              f"(target: at least 1.00); the line protocol over TLS at {b.ratio(rate['line-tls'], rate['line'])} "
              "of plain (target: at least 0.85). Negotiated with a Python client: "
              f"Spool {ciphers['Spool']}, nginx {ciphers['nginx']}.", "",
              f"| one worker, {args.idle_connections} idle connections (greeting read) | KiB per connection | vs plain |",
              "|---|---|---|",
              f"| plain (baseline) | {per_plain:.1f} | 1.00 |",
              f"| TLS, handshake done | {per_tls:.1f} | {b.ratio(per_tls, per_plain)} |"]
    return lines, rates
