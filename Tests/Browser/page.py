"""The upload page in a real headless Chromium, driven by Selenium (Debian's
chromium, chromium-driver and python3-selenium; scripts/setup installs them).
BrowserTests.swift starts a real spoold and runs one scenario of this script
against it; the script exits 0 when the scenario held, else prints why and exits 1.

Usage: page.py SCENARIO --base http://127.0.0.1:PORT --master PID --files DIR [--token T --other-token T]
"""
import argparse
import hashlib
import json
import os
import signal
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.common.exceptions import StaleElementReferenceException

MiB = 1 << 20


DRIVER = None


def fail(message):
    print("FAILED: " + message, flush=True)
    if DRIVER is not None:
        for entry in DRIVER.get_log("browser"):
            print("browser: " + entry["message"], flush=True)
    sys.exit(1)


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,1000"]:
        options.add_argument(argument)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def throttle(driver, bytes_per_second):
    """Chromium's own network emulation, so a large upload takes long enough to interrupt."""
    driver.set_network_conditions(offline=False, latency=0, download_throughput=500 * MiB, upload_throughput=bytes_per_second)


def make_file(directory, name, size, seed):
    path = os.path.join(directory, name)
    block = hashlib.sha256(str(seed).encode()).digest() * (MiB // 32)
    with open(path, "wb") as f:
        left = size
        counter = 0
        while left > 0:
            chunk = hashlib.sha256(block[:64] + counter.to_bytes(8, "big")).digest() + block[32:]
            f.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)
            counter += 1
    with open(path, "rb") as f:
        return path, hashlib.sha256(f.read()).hexdigest()


def until(what, condition, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except StaleElementReferenceException:
            # The page redrew what was being read (the list every second, a finished item's sums): read again.
            continue
        if value:
            return value
        time.sleep(0.1)
    fail("timed out waiting for " + what)


def items(driver):
    """The queue, as the page shows it: name, progress, message, checksums."""
    result = []
    for li in driver.find_elements(By.CSS_SELECTOR, "#queue li"):
        sums = [code.text for code in li.find_elements(By.CSS_SELECTOR, ".sums code")]
        bar = li.find_element(By.TAG_NAME, "progress")
        result.append({
            "name": li.find_element(By.CLASS_NAME, "name").text,
            "message": li.find_element(By.CLASS_NAME, "message").text,
            "classes": li.find_element(By.CLASS_NAME, "message").get_attribute("class"),
            "value": float(bar.get_attribute("value")), "max": float(bar.get_attribute("max")),
            "sums": sums,
        })
    return result


def choose(driver, paths):
    driver.find_element(By.ID, "files").send_keys("\n".join(paths))


def api(base, path, token=None):
    request = urllib.request.Request(base + path, headers={"Authorization": "Bearer " + token} if token else {})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.read().decode()


def uploads(base, token=None):
    return json.loads(api(base, "/uploads?limit=1000", token))


def received_bytes(base, token=None):
    """Body bytes the server has written over tus, from its metrics."""
    for line in api(base, "/metrics", token).splitlines():
        if line.startswith('spool_received_bytes_total{protocol="tus"}'):
            return int(line.split()[-1])
    fail("no tus bytes in /metrics")


def workers(master):
    with open(f"/proc/{master}/task/{master}/children") as f:
        pids = [int(p) for p in f.read().split()]
    return [p for p in pids if not open(f"/proc/{p}/comm").read().startswith(("spoold-chore", "spoold-hooks"))]


def all_stored(driver, count):
    found = items(driver)
    errors = [i for i in found if "error" in i["classes"]]
    if errors:
        fail("an upload failed on the page: " + json.dumps(errors))
    # Read again once all are done: a snapshot read element by element may hold sums from before the end.
    return len(found) == count and all("done" in i["classes"] for i in found) and items(driver)


def scenario_three(driver, args):
    """Three files at once, one of 64 MiB: all complete, the stored SHA-256s the files'."""
    files = [make_file(args.files, "small.txt", 1000, 1), make_file(args.files, "medium.bin", 3 * MiB, 2),
             make_file(args.files, "large.bin", 64 * MiB, 3)]
    driver.get(args.base + "/")
    throttle(driver, 16 * MiB)
    choose(driver, [path for path, _ in files])
    # Mid-upload: the picture for docs/ (BrowserTests keeps it).
    until("the large file under way", lambda: any(i["name"] == "large.bin" and 0.2 < i["value"] / i["max"] < 0.9 for i in items(driver)))
    driver.save_screenshot(os.path.join(args.files, "upload-page.png"))
    done = until("three uploads stored", lambda: all_stored(driver, 3), timeout=180)
    expected = {os.path.basename(path): sha for path, sha in files}
    for item in done:
        sha = expected[item["name"]]
        if item["sums"] != [sha, sha]:
            fail(f"{item['name']}: the page shows {item['sums']}, the file's SHA-256 is {sha}")
        if "the server's SHA-256 is the file's" not in item["message"]:
            fail(f"{item['name']}: {item['message']}")
    # The list, refreshed by itself, shows them complete with the same checksums.
    def listed():
        rows = driver.find_elements(By.CSS_SELECTOR, "#recent tbody tr")
        shown = {r.find_element(By.CLASS_NAME, "name").text: (r.find_element(By.CLASS_NAME, "state").text, r.find_element(By.CLASS_NAME, "sha").text) for r in rows}
        return all(shown.get(name) == ("complete", sha) for name, sha in expected.items()) and shown
    until("the list showing the three", listed, timeout=20)
    stored = {row["name"]: row["sha256"] for row in uploads(args.base)}
    if stored != expected:
        fail(f"the server has {stored}, expected {expected}")
    # Each complete upload's link gives its bytes back.
    links = until("the download links", lambda: [
        (row.find_element(By.CLASS_NAME, "name").text, row.find_element(By.TAG_NAME, "a").get_attribute("href"))
        for row in driver.find_elements(By.CSS_SELECTOR, "#recent tbody tr")])
    for name, href in links:
        with urllib.request.urlopen(href, timeout=30) as answer:
            if hashlib.sha256(answer.read()).hexdigest() != expected[name]:
                fail(f"{name}: its download link gives other bytes")


def scenario_kill(driver, args):
    """A worker SIGKILLed in the middle of a large upload: the page goes on by itself."""
    path, sha = make_file(args.files, "large.bin", 72 * MiB, 4)
    driver.get(args.base + "/")
    throttle(driver, 8 * MiB)
    choose(driver, [path])
    until("a third of the file sent", lambda: items(driver) and items(driver)[0]["value"] > 20 * MiB)
    killed = workers(args.master)
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    print(f"killed workers {killed}", flush=True)
    done = until("the upload stored after the kill", lambda: all_stored(driver, 1), timeout=180)
    if done[0]["sums"] != [sha, sha]:
        fail(f"the page shows {done[0]['sums']}, the file's SHA-256 is {sha}")
    rows = uploads(args.base)
    if [(r["name"], r["state"], r["sha256"]) for r in rows] != [("large.bin", "complete", sha)]:
        fail(f"the server has {rows}")


def slow_large_upload(driver, args, seed, stored):
    """A 72 MiB file (past WebCrypto's limit in app.js: hashed by its incremental SHA-256) sent at
    8 MiB/s, once the server holds `stored` bytes of it: (path, sha, size)."""
    size = 72 * MiB
    path, sha = make_file(args.files, "large.bin", size, seed)
    driver.get(args.base + "/")
    throttle(driver, 8 * MiB)
    choose(driver, [path])
    until(f"{stored} bytes stored", lambda: (uploads(args.base) or [{}])[0].get("received", 0) >= stored)
    return path, sha, size


def finished_once(args, sha, size):
    """The server holds the one upload, complete, and received no more than the file and a chunk."""
    rows = uploads(args.base)
    if [(r["name"], r["state"], r["sha256"]) for r in rows] != [("large.bin", "complete", sha)]:
        fail(f"the server has {rows}")
    total = received_bytes(args.base)
    # Started over, the server would have received the bytes before the cut twice.
    if total > size + 8 * MiB:
        fail(f"the server received {total} bytes for a file of {size}: it started over")
    return total


def scenario_reload(driver, args):
    """The page reloaded mid-upload: the same file chosen again goes on from the server's offset."""
    path, sha, size = slow_large_upload(driver, args, 5, 16 * MiB)
    driver.refresh()
    throttle(driver, 64 * MiB)
    at = uploads(args.base)[0]["received"]
    choose(driver, [path])
    until("the page going on from the server's offset", lambda: items(driver) and "going on from" in items(driver)[0]["message"] or all_stored(driver, 1), timeout=60)
    until("the upload stored", lambda: all_stored(driver, 1), timeout=180)
    total = finished_once(args, sha, size)
    print(f"reloaded with {at} bytes stored; {total} bytes received in all for {size}", flush=True)


def scenario_pause(driver, args):
    """Pause stops the bytes; Resume goes on from where the server has them."""
    _, sha, size = slow_large_upload(driver, args, 8, 8 * MiB)
    driver.find_element(By.CSS_SELECTOR, "#queue .pause").click()
    until("the page paused", lambda: "paused at" in items(driver)[0]["message"])
    time.sleep(1)  # what was in flight when the pause came settles
    held = received_bytes(args.base)
    time.sleep(2)
    if received_bytes(args.base) != held:
        fail("bytes kept arriving after the pause")
    button = driver.find_element(By.CSS_SELECTOR, "#queue .pause")
    if button.text != "Resume":
        fail("the button says " + button.text)
    throttle(driver, 64 * MiB)
    button.click()
    done = until("the upload stored", lambda: all_stored(driver, 1), timeout=120)
    if done[0]["sums"] != [sha, sha]:
        fail(f"the page shows {done[0]['sums']}")
    finished_once(args, sha, size)


def scenario_token(driver, args):
    """Wrong token refused in words, the right one works, another token's uploads not shown."""
    path, sha = make_file(args.files, "mine.txt", 5000, 6)
    driver.get(args.base + "/")
    field = driver.find_element(By.ID, "token")
    field.send_keys("not-a-token")
    driver.find_element(By.ID, "token-use").click()
    until("the wrong token refused", lambda: "wrong or missing" in driver.find_element(By.ID, "token-status").text)
    choose(driver, [path])
    until("the upload refused in words", lambda: items(driver) and "error" in items(driver)[0]["classes"] and "token" in items(driver)[0]["message"] and items(driver))
    field.clear()
    field.send_keys(args.token)
    driver.find_element(By.ID, "token-use").click()
    until("the token accepted", lambda: driver.find_element(By.ID, "token-status").text == "token accepted")
    choose(driver, [path])
    until("the upload stored", lambda: len(items(driver)) == 2 and "done" in items(driver)[1]["classes"])
    def names():
        return [r.find_element(By.CLASS_NAME, "name").text for r in driver.find_elements(By.CSS_SELECTOR, "#recent tbody tr")]
    until("the list with this token's upload only", lambda: names() == ["mine.txt"], timeout=20)
    theirs = [row["name"] for row in uploads(args.base, args.other_token)]
    if theirs != ["theirs.txt"]:
        fail(f"the other token's uploads: {theirs}")
    # This token's quota is 10,000 bytes: 5,000 are stored, 6,000 more do not fit.
    over, _ = make_file(args.files, "over.txt", 6000, 9)
    choose(driver, [over])
    item = until("the quota refusal shown", lambda: len(items(driver)) == 3 and "error" in items(driver)[2]["classes"] and items(driver)[2])
    if "over this token's quota" not in item["message"]:
        fail("the message: " + item["message"])


def scenario_folder(driver, args):
    """A folder chosen whole: every file in it, named by its path inside the folder."""
    top = os.path.join(args.files, "photos")
    os.makedirs(os.path.join(top, "2026"))
    expected = {}
    for name, size, seed in [("photos/a.jpg", 20000, 10), ("photos/2026/b.jpg", 30000, 11), ("photos/2026/c.txt", 10, 12)]:
        path, sha = make_file(args.files, name, size, seed)
        expected[name] = sha
    driver.get(args.base + "/")
    driver.find_element(By.ID, "folder").send_keys(top)
    until("the folder's files stored", lambda: all_stored(driver, 3))
    stored = {row["name"]: row["sha256"] for row in uploads(args.base)}
    if stored != expected:
        fail(f"the server has {stored}, expected {expected}")


def scenario_limit(driver, args):
    """An upload over the size limit: the message shown, nothing stored."""
    path, _ = make_file(args.files, "big.bin", 2 * MiB, 7)
    driver.get(args.base + "/")
    choose(driver, [path])
    item = until("the refusal shown", lambda: items(driver) and "error" in items(driver)[0]["classes"] and items(driver)[0])
    if "too large for this server" not in item["message"]:
        fail("the message: " + item["message"])
    if uploads(args.base):
        fail(f"something was stored: {uploads(args.base)}")


def scenario_keyboard(driver, args):
    """Labels, focus and a narrow screen: every control is reachable by Tab, and nothing overflows at a phone's width."""
    driver.set_window_size(390, 844)
    driver.get(args.base + "/")
    focused = []
    driver.find_element(By.TAG_NAME, "h1").click()
    for _ in range(8):
        # To the page, not to an element: a file input takes keys as a file's path.
        ActionChains(driver).send_keys(Keys.TAB).perform()
        element = driver.switch_to.active_element
        focused.append(element.get_attribute("id") or element.tag_name)
    for wanted in ["token", "token-use", "files", "folder"]:
        if wanted not in focused:
            fail(f"{wanted} is not reached by Tab: {focused}")
    for control in ["token", "files", "folder"]:
        labels = driver.find_elements(By.CSS_SELECTOR, f"label[for={control}]")
        if not labels:
            fail(f"{control} has no label")
    width = driver.execute_script("return document.documentElement.scrollWidth")
    if width > 390:
        fail(f"the page is {width} px wide at a 390 px screen")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario")
    parser.add_argument("--base", required=True)
    parser.add_argument("--master", type=int, default=0)
    parser.add_argument("--files", required=True)
    parser.add_argument("--token")
    parser.add_argument("--other-token")
    args = parser.parse_args()
    global DRIVER
    driver = DRIVER = browser()
    try:
        globals()["scenario_" + args.scenario](driver, args)
        logs = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE" and "Content Security Policy" in entry["message"]]
        if logs:
            fail("the page broke its own Content-Security-Policy: " + json.dumps(logs))
    finally:
        driver.quit()
    print("ok", flush=True)


if __name__ == "__main__":
    main()
