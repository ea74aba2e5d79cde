"""What hashing a file in the upload page costs (docs/WEB.md): headless Chromium
hashes a file chosen in an <input type=file> the two ways app.js can: whole,
with File.arrayBuffer() and WebCrypto's SHA-256, and a chunk at a time with
app.js's own incremental SHA-256 (taken from app.js itself); for files of
growing size, the seconds and the browser's resident memory at its peak (all of
Chromium's processes, above what they held before), against `sha256sum` of the
same file as the baseline.
Usage: python3 bench/webcrypto.py [MiB ...]   (run with /usr/bin/python3: Debian's selenium)
"""
import http.server
import os
import subprocess
import sys
import tempfile
import threading
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

MiB = 1 << 20
HTML = b"<!doctype html><input type=file id=f>"
APP = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Sources", "SpoolWeb", "Resources", "app.js")).read()
SHA256_JS = APP.split("// sha256: begin")[1].split("// sha256: end")[0]
# The page's incremental hash, 8 MiB at a time, as app.js runs it on a large file.
INCREMENTAL = SHA256_JS + """
const done = arguments[arguments.length - 1];
const file = document.getElementById('f').files[0];
const t0 = performance.now();
(async () => {
  const hash = new Sha256();
  for (let offset = 0; offset < file.size; offset += 8 << 20) hash.update(new Uint8Array(await file.slice(offset, offset + (8 << 20)).arrayBuffer()));
  done({ms: performance.now() - t0, hex: hash.digest()});
})().catch((e) => done({error: String(e)}));
"""
SCRIPT = """
const done = arguments[arguments.length - 1];
const file = document.getElementById('f').files[0];
const t0 = performance.now();
file.arrayBuffer().then((b) => crypto.subtle.digest('SHA-256', b)).then((d) => {
  done({ms: performance.now() - t0, hex: Array.from(new Uint8Array(d), (x) => x.toString(16).padStart(2, '0')).join('')});
}).catch((e) => done({error: String(e)}));
"""


def rss_tree(root):
    """KiB resident in `root` and its descendants."""
    total = 0
    for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
        try:
            stat = open(f"/proc/{pid}/stat").read().split()
            ppid = int(stat[3])
            ancestor = int(pid)
            while ancestor not in (0, 1, root):
                ancestor = int(open(f"/proc/{ancestor}/stat").read().split()[3])
            if ancestor == root:
                for line in open(f"/proc/{pid}/status"):
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            pass
    return total


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [16, 64, 256, 512, 1024]
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage"]:
        options.add_argument(argument)
    service = Service("/usr/bin/chromedriver")
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_script_timeout(600)
    # WebCrypto exists only in a secure context: a page from 127.0.0.1 is one, a data: URL is not.
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(HTML)

        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    page = f"http://127.0.0.1:{server.server_address[1]}/"
    work = tempfile.mkdtemp(dir=os.environ.get("SPOOL_BENCH_DIR", "/var/tmp"))
    rows = []
    try:
        for size in sizes:
            path = os.path.join(work, f"{size}.bin")
            with open(path, "wb") as f:
                for _ in range(size):
                    f.write(os.urandom(MiB))
            t0 = time.monotonic()
            expected = subprocess.run(["sha256sum", path], capture_output=True, text=True).stdout.split()[0]
            baseline = time.monotonic() - t0
            cells = []
            for script in (SCRIPT, INCREMENTAL):
                driver.get(page)  # a fresh page each time: nothing kept from the last run
                driver.find_element(By.ID, "f").send_keys(path)
                time.sleep(0.5)
                idle = rss_tree(service.process.pid)
                peak = [idle]
                running = [True]

                def sample():
                    while running[0]:
                        peak[0] = max(peak[0], rss_tree(service.process.pid))
                        time.sleep(0.05)
                sampler = threading.Thread(target=sample)
                sampler.start()
                result = driver.execute_async_script(script)
                running[0] = False
                sampler.join()
                if "error" in result:
                    cells.append(f"failed: {result['error']} | -")
                elif result["hex"] != expected:
                    cells.append("WRONG DIGEST | -")
                else:
                    cells.append(f"{result['ms'] / 1000:.2f} | {(peak[0] - idle) / 1024:.0f}")
            os.unlink(path)
            rows.append(f"| {size} | {baseline:.2f} | {cells[0]} | {cells[1]} |")
    finally:
        driver.quit()
    print("| file, MiB | sha256sum, s | WebCrypto (whole file), s | its memory above idle, MiB | app.js's incremental SHA-256 (8 MiB chunks), s | its memory above idle, MiB |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
