"""P7: one large upload over tus in many PATCHes, against the same file in one
PATCH and against `curl -T` to the same server, in alternating rounds. Every
PATCH is a resume; what it must not cost is hashing the bytes before it again
(1,000 PATCHes would then hash the file 500 times over). The server's log says
how many bytes each resume read back (`upload resumed ... reread=N`): the table
reports the bytes hashed per byte of the file.

The tus client here is Python's http.client on one kept-alive connection, as a
tus library would send it: POST, then PATCH after PATCH, each chunk read from
the file and sent with its offset.
"""
import base64
import http.client
import os
import re
import statistics

import bench as b


def tus_upload(port, path, size, chunks, name):
    """Creates a tus upload and sends `path` in `chunks` PATCHes; returns its id."""
    conn = http.client.HTTPConnection("127.0.0.1", port, blocksize=1 << 20)
    meta = "filename " + base64.b64encode(name.encode()).decode()
    conn.request("POST", "/files/", headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(size), "Upload-Metadata": meta})
    created = conn.getresponse()
    created.read()
    if created.status != 201:
        raise RuntimeError(f"tus POST: {created.status}")
    location = created.getheader("Location")
    step = -(-size // chunks)
    offset = 0
    with open(path, "rb") as f:
        while offset < size:
            n = min(step, size - offset)
            body = f if chunks == 1 else f.read(n)
            conn.request("PATCH", location, body=body, headers={
                "Tus-Resumable": "1.0.0", "Upload-Offset": str(offset), "Content-Length": str(n),
                "Content-Type": "application/offset+octet-stream"})
            answer = conn.getresponse()
            answer.read()
            if answer.status != 204:
                raise RuntimeError(f"tus PATCH at {offset}: {answer.status}")
            offset = int(answer.getheader("Upload-Offset"))
    conn.close()
    return location.rsplit("/", 1)[1]


def reread(log_path, upload_id):
    """Bytes the server read back from disk to resume this upload, over all its PATCHes."""
    total = 0
    with open(log_path) as f:
        for line in f:
            if "upload resumed" in line and f"id={upload_id}" in line:
                found = re.search(r"reread=(\d+)", line)
                total += int(found.group(1)) if found else 0
    return total


def p7_tus(args, workdir):
    size = args.large_mib << 20
    path = os.path.join(workdir, "tus.bin")
    spool = b.Spool(workdir, os.cpu_count(), http=True)
    patches = 1000
    names = {
        "curl": "`curl -T` (HTTP PUT, one request), the baseline",
        "one": "tus, one PATCH",
        "many": f"tus, {patches} PATCHes of {size // patches >> 10} KiB",
    }
    rates = {key: [] for key in names}
    hashed = {key: [] for key in names}

    def curl(round_):
        b.run(["curl", "-fsS", "-o", "/dev/null", "-T", path, f"http://127.0.0.1:{spool.http_port}/files/p7-{round_}.bin"])
        return 0

    def tus(chunks, round_):
        upload_id = tus_upload(spool.http_port, path, size, chunks, f"p7-{chunks}-{round_}.bin")
        return reread(spool.log, upload_id)

    runs = {"curl": curl, "one": lambda r: tus(1, r), "many": lambda r: tus(patches, r)}
    order = list(runs)
    for round_ in range(args.repeat if not args.quick else 1):
        b.make_file(path, size, 300 + round_)  # new content each round: nothing is deduplicated
        shift = round_ % len(order)
        for key in order[shift:] + order[:shift]:
            b.sync()
            extra = [0]
            rates[key].append(size / b.timed(lambda: extra.__setitem__(0, runs[key](round_))) / b.MB)
            hashed[key].append((size + extra[0]) / size)
    spool.stop()
    os.unlink(path)
    base = statistics.median(rates["curl"])
    naive = (patches - 1) / 2 + 1
    lines = [f"### P7: one {args.large_mib} MiB upload over tus, in one PATCH and in {patches}", "",
             "| upload | MB/s | spread of the rounds | vs curl -T | bytes hashed per byte of the file |", "|---|---|---|---|---|"]
    lines += [f"| {names[key]} | {statistics.median(rates[key]):.0f} | {b.spread(rates[key])} | "
              f"{b.ratio(statistics.median(rates[key]), base)} | {max(hashed[key]):.2f} |" for key in order]
    lines += ["", f"Each PATCH is answered only once its bytes are fsynced and recorded. Reading the bytes before "
              f"each PATCH back to hash them again would hash the file {naive:.0f} times over in {patches} PATCHes; "
              "the worker keeps each PATCH's hash state instead."]
    return lines, rates
