// Spool's upload page: a small tus 1.0 client (docs/HTTP.md) on XMLHttpRequest,
// for upload progress, and fetch. No library, no build step (docs/WEB.md).
"use strict";

const CHUNK = 8 * 1024 * 1024;         // bytes per PATCH: what a cut can cost
const HASH_LIMIT = 256 * 1024 * 1024;  // files up to this are hashed in the page first
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
      if (this.file.size <= HASH_LIMIT && window.crypto && crypto.subtle) {
        this.say("computing the SHA-256 of the file…");
        this.sha256 = hex(await crypto.subtle.digest("SHA-256", await this.file.arrayBuffer()));
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
