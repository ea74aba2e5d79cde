// Spool's upload page: a small tus 1.0 client (docs/HTTP.md) on XMLHttpRequest,
// for upload progress, and fetch. No library, no build step (docs/WEB.md).
"use strict";

const CHUNK = 8 * 1024 * 1024;         // bytes per PATCH: what a cut can cost
const WHOLE_HASH_LIMIT = 64 * 1024 * 1024;  // up to this, WebCrypto hashes the file in one buffer
const HASH_LIMIT = 1024 * 1024 * 1024;      // up to this, the page hashes the file before sending it
const RETRY_MAX = 30000;               // ms between tries, at most, while the server is away
const RECENT_EVERY = 1000;             // ms between refreshes of the recent uploads

const $ = (id) => document.getElementById(id);

// ---- The token: kept for this tab only (sessionStorage), sent as a bearer token.

function token() { return sessionStorage.getItem("spool-token") || ""; }

function authorized(headers) {
  const all = Object.assign({}, headers || {});
  if (token()) all["Authorization"] = "Bearer " + token();
  return all;
}

// ---- Words for numbers and answers.

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? String(n) : n.toFixed(n < 10 ? 1 : 0)) + " " + units[i];
}

function duration(seconds) {
  if (!isFinite(seconds)) return "";
  if (seconds < 60) return Math.ceil(seconds) + " s";
  if (seconds < 3600) return Math.floor(seconds / 60) + " min " + Math.round(seconds % 60) + " s";
  return Math.floor(seconds / 3600) + " h " + Math.round((seconds % 3600) / 60) + " min";
}

/// What an answer means to a person; `said` is the server's own message, if any.
function meaning(status, said) {
  said = (said || "").trim();
  switch (status) {
    case 0: return "the server does not answer (gone, or the network is down)";
    case 401: return "this server needs a token, and the one given is wrong or missing";
    case 403: return said || "the server refused this file";
    case 404: case 410: return "the server no longer has this upload";
    case 413: return (/quota/.test(said) ? "over this token's quota" : "too large for this server") + (said ? ": " + said : "");
    case 460: return "the bytes did not arrive intact (checksum mismatch)";
    case 507: return "not enough space on the server now" + (said ? ": " + said : "");
    default: return "the server answered " + status + (said ? ": " + said : "");
  }
}

/// Worth trying again by itself: the server is away, busy or restarting.
function transient(status) { return status === 0 || status === 423 || status === 503 || status === 502 || status === 504; }

function base64(text) {
  let binary = "";
  for (const b of new TextEncoder().encode(text)) binary += String.fromCharCode(b);
  return btoa(binary);
}

function hex(buffer) { return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join(""); }

/// `sha-256=:<base64>:` (Repr-Digest) as hex.
function digestHex(header) {
  const found = /sha-256=:([A-Za-z0-9+/=]+):/.exec(header || "");
  if (!found) return "";
  return Array.from(atob(found[1]), (c) => c.charCodeAt(0).toString(16).padStart(2, "0")).join("");
}

function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

async function send(method, url, headers, body) {
  try {
    const answer = await fetch(url, { method, headers: authorized(Object.assign({ "Tus-Resumable": "1.0.0" }, headers)), body, cache: "no-store" });
    return { status: answer.status, header: (name) => answer.headers.get(name), text: await answer.text() };
  } catch (error) {
    return { status: 0, header: () => null, text: String(error) };
  }
}

// ---- The file's SHA-256 (docs/WEB.md, "What hashing in the page costs").

// sha256: begin
/// SHA-256 fed in pieces (FIPS 180-4), so a file is hashed a chunk at a time
/// instead of whole in one buffer as WebCrypto needs it.
class Sha256 {
  constructor() {
    this.h = new Int32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
    this.w = new Int32Array(64);
    this.tail = new Uint8Array(64);
    this.tailLength = 0;
    this.length = 0;
  }

  update(bytes) {
    this.length += bytes.length;
    let i = 0;
    if (this.tailLength > 0) {
      const take = Math.min(64 - this.tailLength, bytes.length);
      this.tail.set(bytes.subarray(0, take), this.tailLength);
      this.tailLength += take;
      i = take;
      if (this.tailLength < 64) return;
      this.block(this.tail, 0);
      this.tailLength = 0;
    }
    for (; i + 64 <= bytes.length; i += 64) this.block(bytes, i);
    this.tail.set(bytes.subarray(i), 0);
    this.tailLength = bytes.length - i;
  }

  digest() {
    const bits = this.length * 8;
    const pad = new Uint8Array((this.tailLength < 56 ? 64 : 128) - this.tailLength);
    pad[0] = 0x80;
    const view = new DataView(pad.buffer);
    view.setUint32(pad.length - 8, Math.floor(bits / 0x100000000));
    view.setUint32(pad.length - 4, bits >>> 0);
    this.update(pad);
    return Array.from(this.h, (x) => (x >>> 0).toString(16).padStart(8, "0")).join("");
  }

  block(p, o) {
    const w = this.w, k = Sha256.K;
    for (let t = 0; t < 16; t++, o += 4) w[t] = (p[o] << 24) | (p[o + 1] << 16) | (p[o + 2] << 8) | p[o + 3];
    for (let t = 16; t < 64; t++) {
      const a = w[t - 15], b = w[t - 2];
      const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
      const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
      w[t] = (w[t - 16] + s0 + w[t - 7] + s1) | 0;
    }
    const h = this.h;
    let a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (let t = 0; t < 64; t++) {
      const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (hh + s1 + ((e & f) ^ (~e & g)) + k[t] + w[t]) | 0;
      const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      hh = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
  }
}
Sha256.K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
// sha256: end

/// WebCrypto for a small file (it takes the file in one buffer, and Chromium then
/// holds it twice); the incremental hash above, a chunk at a time, for a larger one.
async function fileSHA256(file, progress) {
  if (file.size <= WHOLE_HASH_LIMIT && window.crypto && crypto.subtle) {
    return hex(await crypto.subtle.digest("SHA-256", await file.arrayBuffer()));
  }
  const hash = new Sha256();
  for (let offset = 0; offset < file.size; offset += CHUNK) {
    hash.update(new Uint8Array(await file.slice(offset, offset + CHUNK).arrayBuffer()));
    progress(Math.min(offset + CHUNK, file.size));
  }
  return hash.digest();
}

// ---- One file on its way.

class Upload {
  constructor(file, name) {
    this.file = file;
    this.name = name;
    this.offset = 0;
    this.paused = false;
    this.done = false;
    this.xhr = null;
    this.key = "spool-upload:" + JSON.stringify([name, file.size, file.lastModified]);
    this.render();
  }

  render() {
    const li = document.createElement("li");
    li.className = "item";
    li.innerHTML = '<div class="name"></div><progress max="1" value="0"></progress>' +
      '<div class="row"><span class="figures"></span><button type="button" class="quiet pause">Pause</button></div>' +
      '<div class="message" role="status"></div><div class="sums"></div>';
    li.querySelector(".name").textContent = this.name;
    li.querySelector("progress").setAttribute("aria-label", "Progress of " + this.name);
    this.button = li.querySelector(".pause");
    this.button.addEventListener("click", () => (this.paused ? this.resume() : this.pause()));
    this.el = li;
    $("queue").append(li);
    this.show(0);
  }

  show(offset, rate) {
    const size = this.file.size;
    const bar = this.el.querySelector("progress");
    bar.max = Math.max(size, 1);
    bar.value = size === 0 && this.done ? 1 : offset;
    let text = bytes(offset) + " of " + bytes(size);
    if (rate > 0 && !this.done) text += " · " + bytes(rate) + "/s · " + duration((size - offset) / rate) + " left";
    this.el.querySelector(".figures").textContent = text;
  }

  say(text, kind) {
    const message = this.el.querySelector(".message");
    message.textContent = text;
    message.className = "message" + (kind ? " " + kind : "");
  }

  sums(local, stored) {
    const sums = this.el.querySelector(".sums");
    sums.textContent = "";
    const line = (label, value) => {
      const div = document.createElement("div");
      div.append(label + " ");
      const code = document.createElement("code");
      code.textContent = value;
      div.append(code);
      sums.append(div);
    };
    if (local) line("SHA-256 here:", local);
    if (stored) line("SHA-256 the server stored:", stored);
  }

  async start() {
    try {
      if (this.file.size <= HASH_LIMIT) {
        this.say("computing the SHA-256 of the file…");
        this.sha256 = await fileSHA256(this.file, (done) => this.say("computing the SHA-256 of the file… " + Math.floor((100 * done) / this.file.size) + " %"));
        this.sums(this.sha256);
      }
      await this.open();
      await this.run();
    } catch (error) {
      this.fail(String(error.message || error));
    }
  }

  /// Finds the upload this file began (kept against its name, size and time), or creates one.
  async open() {
    const known = localStorage.getItem(this.key);
    if (known) {
      const head = await this.ask("HEAD", known);
      if (head.status === 200) {
        this.url = known;
        this.offset = Number(head.header("Upload-Offset"));
        this.show(this.offset);
        this.say("going on from " + bytes(this.offset) + ", where the server has it");
        return;
      }
      localStorage.removeItem(this.key);
    }
    let metadata = "filename " + base64(this.name);
    if (this.sha256) metadata += ",sha256 " + base64(this.sha256);
    const created = await this.ask("POST", "/files/", { "Upload-Length": String(this.file.size), "Upload-Metadata": metadata });
    if (created.status !== 201) throw new Error(meaning(created.status, created.text));
    this.url = created.header("Location");
    localStorage.setItem(this.key, this.url);
  }

  /// A request that waits out a server that is away, as long as the upload is not paused.
  async ask(method, url, headers) {
    for (let wait = 1000; ; wait = Math.min(wait * 2, RETRY_MAX)) {
      const answer = await send(method, url, headers);
      if (!transient(answer.status) || this.paused) return answer;
      this.say(meaning(answer.status) + "; trying again in " + duration(wait / 1000));
      await sleep(wait);
    }
  }

  async run() {
    this.say("sending…");
    let wait = 1000;
    while (!this.paused) {
      const answer = await this.patch();
      if (this.paused) return;
      if (answer.status === 204) {
        wait = 1000;
        this.offset = Number(answer.header("Upload-Offset"));
        this.show(this.offset);
        if (this.offset === this.file.size) return this.finish(answer);
        continue;
      }
      if (answer.status === 409 || transient(answer.status)) {
        // Cut off, or out of step: ask the server where it is, then go on from there.
        this.say(meaning(answer.status, answer.text) + "; going on in " + duration(wait / 1000));
        await sleep(wait);
        wait = Math.min(wait * 2, RETRY_MAX);
        const head = await this.ask("HEAD", this.url);
        if (head.status !== 200) return this.fail(meaning(head.status, head.text));
        // At the end too: the PATCH of no bytes that follows finishes an upload cut just
        // before it was stored, and answers at once for one that was.
        this.offset = Number(head.header("Upload-Offset"));
        this.show(this.offset);
        this.say("sending…");
        continue;
      }
      return this.fail(meaning(answer.status, answer.text));
    }
  }

  /// One chunk, by XMLHttpRequest for its upload progress.
  patch() {
    const start = this.offset;
    const chunk = this.file.slice(start, Math.min(start + CHUNK, this.file.size));
    const began = performance.now();
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      this.xhr = xhr;
      xhr.open("PATCH", this.url);
      const headers = authorized({ "Tus-Resumable": "1.0.0", "Upload-Offset": String(start), "Content-Type": "application/offset+octet-stream" });
      for (const name in headers) xhr.setRequestHeader(name, headers[name]);
      xhr.upload.onprogress = (event) => {
        const seconds = (performance.now() - began) / 1000;
        this.show(start + event.loaded, seconds > 0.2 ? event.loaded / seconds : 0);
      };
      const settle = (status) => {
        this.xhr = null;
        resolve({ status, header: (name) => (status ? xhr.getResponseHeader(name) : null), text: status ? xhr.responseText : "" });
      };
      xhr.onload = () => settle(xhr.status);
      xhr.onerror = () => settle(0);
      xhr.onabort = () => settle(0);
      xhr.send(chunk);
    });
  }

  async finish(answer) {
    this.done = true;
    let stored = digestHex(answer.header("Repr-Digest"));
    if (!stored) {
      // Stored by an earlier request whose answer was lost: the record says so, and has the digest.
      const record = await send("GET", "/uploads/" + this.url.split("/").pop());
      let row = {};
      try { row = JSON.parse(record.text); } catch (error) { row = {}; }
      if (row.state !== "complete") return this.fail("the server did not store this upload (" + (row.state || meaning(record.status, record.text)) + ")");
      stored = row.sha256 || "";
    }
    localStorage.removeItem(this.key);
    this.sums(this.sha256, stored);
    const same = this.sha256 && stored === this.sha256;
    this.say(same ? "stored, and the server's SHA-256 is the file's" : "stored", "done");
    this.show(this.file.size);
    this.button.remove();
    refreshRecent();
  }

  fail(text) {
    this.done = true;
    this.say(text, "error");
    this.button.remove();
    if (/no longer has/.test(text)) localStorage.removeItem(this.key);
  }

  pause() {
    this.paused = true;
    if (this.xhr) this.xhr.abort();
    this.button.textContent = "Resume";
    this.say("paused at " + bytes(this.offset));
  }

  async resume() {
    this.paused = false;
    this.button.textContent = "Pause";
    const head = await this.ask("HEAD", this.url);
    if (head.status !== 200) return this.fail(meaning(head.status, head.text));
    this.offset = Number(head.header("Upload-Offset"));
    this.show(this.offset);
    await this.run();
  }
}

// ---- Choosing files: pickers and drops (folders where the browser gives their entries).

function take(files) {
  for (const [file, name] of files) new Upload(file, name).start();
}

function pick(input) {
  input.addEventListener("change", () => {
    take(Array.from(input.files, (file) => [file, file.webkitRelativePath || file.name]));
    input.value = "";
  });
}

async function entries(entry, path, out) {
  if (entry.isFile) {
    out.push([await new Promise((resolve, reject) => entry.file(resolve, reject)), path + entry.name]);
  } else if (entry.isDirectory) {
    const reader = entry.createReader();
    for (;;) {
      const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
      if (batch.length === 0) break;
      for (const child of batch) await entries(child, path + entry.name + "/", out);
    }
  }
}

function dropping() {
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const items = Array.from(event.dataTransfer.items || []).map((item) => item.webkitGetAsEntry && item.webkitGetAsEntry());
    if (items.length && items.every(Boolean)) {
      const out = [];
      for (const entry of items) await entries(entry, "", out);
      take(out);
    } else {
      take(Array.from(event.dataTransfer.files, (file) => [file, file.name]));
    }
  });
}

// ---- Recent uploads, from any client or protocol: the token's own when one is given.

let recentTimer = null;

async function refreshRecent() {
  clearTimeout(recentTimer);
  recentTimer = setTimeout(refreshRecent, RECENT_EVERY);
  if (document.hidden) return;
  const answer = await send("GET", "/uploads?limit=25");
  const status = $("recent-status");
  if (answer.status !== 200) {
    status.textContent = meaning(answer.status, answer.text);
    if (answer.status === 401) $("token-status").textContent = meaning(401);
    return;
  }
  status.textContent = "";
  let rows;
  try { rows = JSON.parse(answer.text); } catch (error) { return; }
  const body = $("recent").tBodies[0];
  body.textContent = "";
  for (const row of rows) {
    const tr = body.insertRow();
    tr.dataset.id = row.id;
    const cell = (text, className) => {
      const td = tr.insertCell();
      if (className) td.className = className;
      td.textContent = text;
      return td;
    };
    cell(row.name, "name");
    const arriving = row.state === "receiving" || row.state === "interrupted";
    cell(row.state + (arriving && row.size > 0 ? " " + Math.floor((100 * row.received) / row.size) + " %" : ""), "state");
    cell(bytes(row.size), "size");
    const sha = cell("", "sha");
    if (row.sha256) {
      const code = document.createElement("code");
      code.textContent = row.sha256;
      sha.append(code);
    }
    const link = tr.insertCell();
    if (row.state === "complete") {
      const a = document.createElement("a");
      a.href = "/uploads/" + row.id + "/content";
      a.textContent = "Download";
      a.setAttribute("aria-label", "Download " + row.name);
      if (token()) a.addEventListener("click", (event) => { event.preventDefault(); download(row); });
      link.append(a);
    }
  }
}

/// With a token, a link cannot carry it: the bytes come by fetch and are saved from memory.
async function download(row) {
  try {
    const answer = await fetch("/uploads/" + row.id + "/content", { headers: authorized() });
    if (!answer.ok) throw new Error(meaning(answer.status, await answer.text()));
    const url = URL.createObjectURL(await answer.blob());
    const a = document.createElement("a");
    a.href = url;
    a.download = row.name.split("/").pop();
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (error) {
    $("recent-status").textContent = "cannot download " + row.name + ": " + (error.message || error);
  }
}

// ---- The token field.

function tokenField() {
  const input = $("token");
  input.value = token();
  const use = async () => {
    sessionStorage.setItem("spool-token", input.value.trim());
    const answer = await send("GET", "/uploads?limit=1");
    $("token-status").textContent = answer.status === 200 ? (token() ? "token accepted" : "no token needed") : meaning(answer.status, answer.text);
    refreshRecent();
  };
  $("token-use").addEventListener("click", use);
  input.addEventListener("keydown", (event) => { if (event.key === "Enter") use(); });
  $("token-forget").addEventListener("click", () => {
    sessionStorage.removeItem("spool-token");
    input.value = "";
    $("token-status").textContent = "token forgotten";
    refreshRecent();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  pick($("files"));
  pick($("folder"));
  dropping();
  tokenField();
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refreshRecent(); });
  refreshRecent();
});
