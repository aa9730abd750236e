// brainlife archive: upload a data object from the project page, through the same resumable API
// as `bl data upload` (POST /api/warehouse/upload, PUT …/file/<n> with Content-Range, POST
// …/finalize). The sha256 of every file is declared before a byte moves and checked by the
// server when the file's last byte is in; it is computed here in 4 MiB pieces by the SHA-256
// below (Web Crypto's digest needs a whole file in memory). The API takes bearer tokens only:
// the page asks `POST /upload-token` (CSRF-checked) for a short-lived one and keeps it in memory.
// An interrupted upload resumes after a reload: localStorage keeps the session's id under a key
// made of the project, datatype, each file's name, size and mtime, and the form's metadata
// (subject, session, run, description, tags, datatype tags). A resumed upload reads no digest (the server holds
// the declared ones and checks the bytes it receives); a new one reads every file's, every time:
// a digest kept under a file's name, size and time would be another file's when two files share
// them (one name in each subject's folder, unpacked from one archive), and the server, holding
// that content already, would store the wrong file without a byte sent.
"use strict";
(function () {
  var PIECE = 4 * 1024 * 1024; // read and hash this much at a time
  var CHUNK = 8 * 1024 * 1024; // bytes a PUT carries
  var RETRIES = 5;
  // the first pause before a retry, doubled each time (0.5 + 1 + 2 + 4 + 8 s); a page may set
  // window.blUploadRetryMs before this script runs (the browser tests do, to not wait 15 s)
  var RETRY_MS = typeof window.blUploadRetryMs === "number" ? window.blUploadRetryMs : 500;

  // --- SHA-256 (FIPS 180-4), incremental -------------------------------------------------------
  var K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ]);

  function Sha256() {
    this.h = new Uint32Array([
      0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ]);
    this.w = new Uint32Array(64);
    this.block = new Uint8Array(64);
    this.used = 0; // bytes waiting in `block`
    this.length = 0; // bytes hashed in all
  }

  Sha256.prototype.compress = function (bytes, at) {
    var w = this.w, h = this.h, i, t1, t2;
    for (i = 0; i < 16; i++) {
      var j = at + i * 4;
      w[i] = (bytes[j] << 24) | (bytes[j + 1] << 16) | (bytes[j + 2] << 8) | bytes[j + 3];
    }
    for (i = 16; i < 64; i++) {
      var a15 = w[i - 15], a2 = w[i - 2];
      var s0 = ((a15 >>> 7) | (a15 << 25)) ^ ((a15 >>> 18) | (a15 << 14)) ^ (a15 >>> 3);
      var s1 = ((a2 >>> 17) | (a2 << 15)) ^ ((a2 >>> 19) | (a2 << 13)) ^ (a2 >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
    }
    var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (i = 0; i < 64; i++) {
      var S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      var ch = (e & f) ^ (~e & g);
      t1 = (k + S1 + ch + K[i] + w[i]) | 0;
      var S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      var maj = (a & b) ^ (a & c) ^ (b & c);
      t2 = (S0 + maj) | 0;
      k = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
  };

  Sha256.prototype.update = function (bytes) {
    var at = 0, n = bytes.length;
    this.length += n;
    if (this.used) {
      var take = Math.min(64 - this.used, n);
      this.block.set(bytes.subarray(0, take), this.used);
      this.used += take;
      at = take;
      if (this.used < 64) return;
      this.compress(this.block, 0);
      this.used = 0;
    }
    for (; at + 64 <= n; at += 64) this.compress(bytes, at);
    if (at < n) {
      this.block.set(bytes.subarray(at), 0);
      this.used = n - at;
    }
  };

  Sha256.prototype.hex = function () {
    var bits = this.length * 8;
    var tail = new Uint8Array(this.used + 9 <= 64 ? 64 : 128);
    tail.set(this.block.subarray(0, this.used));
    tail[this.used] = 0x80;
    var view = new DataView(tail.buffer);
    view.setUint32(tail.length - 8, Math.floor(bits / 0x100000000));
    view.setUint32(tail.length - 4, bits >>> 0);
    for (var at = 0; at < tail.length; at += 64) this.compress(tail, at);
    var out = "";
    for (var i = 0; i < 8; i++) out += ("00000000" + this.h[i].toString(16)).slice(-8);
    return out;
  };

  window.blSha256 = function (bytes) { // for tests: the digest of a byte array
    var s = new Sha256();
    s.update(bytes);
    return s.hex();
  };

  // --- tags, typed as in the list page's filters (web/filters.py) ------------------------------
  // commas separate tags, blanks around a tag are dropped, and a backslash makes the next ",",
  // "!", backslash or blank part of the tag (a\,b is the tag "a,b"); a backslash before anything
  // else is itself. A leading "!" is kept: a tag may start with one.
  function splitTags(typed) {
    var tags = [], chars = [];
    function flush() {
      var start = 0, end = chars.length;
      while (start < end && !chars[start][1] && /\s/.test(chars[start][0])) start++;
      while (end > start && !chars[end - 1][1] && /\s/.test(chars[end - 1][0])) end--;
      var tag = chars.slice(start, end).map(function (c) { return c[0]; }).join("");
      if (tag && tags.indexOf(tag) < 0) tags.push(tag);
      chars = [];
    }
    for (var i = 0; i < typed.length; i++) {
      var c = typed[i], next = typed[i + 1];
      if (c === "\\" && next !== undefined && (",!\\".indexOf(next) >= 0 || /\s/.test(next))) {
        chars.push([next, true]);
        i++;
      } else if (c === ",") {
        flush();
      } else {
        chars.push([c, false]);
      }
    }
    flush();
    return tags;
  }
  window.blSplitTags = splitTags; // for tests

  // --- the form ----------------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("upload-form");
    var data = document.getElementById("upload-datatypes");
    if (!form || !data) return;
    var datatypes = JSON.parse(data.textContent || "[]");
    var project = form.getAttribute("data-project");
    var csrf = form.getAttribute("data-csrf");
    var select = form.querySelector("#up-datatype");
    var box = form.querySelector("#up-files");
    var status = form.querySelector("#up-status");
    var bar = form.querySelector("#up-progress");
    var go = form.querySelector("#up-go");
    var token = null;
    form.hidden = false;
    document.getElementById("upload-nojs").hidden = true;

    function say(text) { status.textContent = text; }

    function byId(id) {
      for (var i = 0; i < datatypes.length; i++) if (datatypes[i].id === id) return datatypes[i];
      return null;
    }

    function showFiles() {
      var dt = byId(select.value);
      box.querySelectorAll(".field, p").forEach(function (el) { el.remove(); });
      if (!dt) return;
      if (!dt.files.length) {
        var p = document.createElement("p");
        p.textContent = "This datatype declares no files: upload its folder with `bl data upload`.";
        box.appendChild(p);
      }
      dt.files.forEach(function (spec) {
        var div = document.createElement("div");
        div.className = "field";
        var label = document.createElement("label");
        var input = document.createElement("input");
        input.type = "file";
        input.id = "up-file-" + spec.id;
        input.setAttribute("data-file-id", spec.id);
        label.setAttribute("for", input.id);
        if (spec.filename) {
          label.textContent = spec.id + " (" + spec.filename + ")" + (spec.required ? "" : ", optional");
          input.setAttribute("data-name", spec.filename);
          input.required = !!spec.required;
        } else {
          label.textContent = spec.id + " (folder " + spec.dirname + "/: use bl data upload)";
          input.disabled = true;
        }
        div.appendChild(label);
        div.appendChild(input);
        box.appendChild(div);
      });
    }
    select.addEventListener("change", showFiles);
    showFiles();
    if (Object.keys(localStorage).some(function (k) { return k.indexOf("bl-upload:" + project + ":") === 0; })) {
      say("An upload into this project was interrupted: choose the same datatype and files and press Upload to resume it.");
    }

    async function newToken() {
      var got = await fetch("/upload-token", {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json" },
        body: "csrf=" + encodeURIComponent(csrf),
        credentials: "same-origin",
      });
      var doc = await got.json().catch(function () { return {}; });
      if (!got.ok) throw new Error(doc.message || "Could not get an upload token (" + got.status + ").");
      token = doc.token;
    }

    // a call of the upload API: JSON answers, a new token once on 401, network errors retried
    async function api(method, path, body, headers) {
      for (var attempt = 0; ; attempt++) {
        if (!token) await newToken();
        var h = Object.assign({ "Authorization": "Bearer " + token, "Accept": "application/json" }, headers || {});
        var got;
        try {
          got = await fetch("/api/warehouse/upload" + path, { method: method, headers: h, body: body });
        } catch (err) {
          if (attempt >= RETRIES) throw new Error("The network failed: " + err.message);
          await new Promise(function (r) { setTimeout(r, RETRY_MS * Math.pow(2, attempt)); });
          continue;
        }
        if (got.status === 401 && attempt === 0) { token = null; continue; }
        var doc = got.status === 204 ? {} : await got.json().catch(function () { return {}; });
        if (!got.ok) {
          var e = new Error(doc.message || method + " " + path + " failed (" + got.status + ").");
          e.status = got.status;
          throw e;
        }
        return doc;
      }
    }

    // digests the page kept before (see the top of this file): never to be used again
    Object.keys(localStorage).forEach(function (k) {
      if (k.indexOf("bl-sha256:") === 0) localStorage.removeItem(k);
    });

    async function hashFile(file, done, total) {
      var s = new Sha256();
      for (var at = 0; at < file.size; at += PIECE) {
        s.update(new Uint8Array(await file.slice(at, at + PIECE).arrayBuffer()));
        bar.value = (done + Math.min(at + PIECE, file.size)) / total;
        say("Computing checksums… " + Math.round(bar.value * 100) + " %");
      }
      return s.hex();
    }

    async function send(upload, n, file, progress) {
      var entry = upload.files[n];
      var at = entry.received || 0;
      while (entry.state !== "stored" && at < file.size) {
        var end = Math.min(at + CHUNK, file.size);
        try {
          upload = await api("PUT", "/" + upload._id + "/file/" + n, file.slice(at, end), {
            "Content-Range": "bytes " + at + "-" + (end - 1) + "/" + file.size,
            "Content-Type": "application/octet-stream",
          });
        } catch (err) {
          if (err.status !== 409) throw err;
          upload = await api("GET", "/" + upload._id); // the server holds another offset
        }
        entry = upload.files[n];
        at = entry.received || 0;
        progress(at);
      }
      return upload;
    }

    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      var dt = byId(select.value);
      var chosen = [];
      form.querySelectorAll("#up-files input[type=file]").forEach(function (input) {
        if (input.files && input.files[0]) {
          chosen.push({ id: input.getAttribute("data-file-id"), name: input.getAttribute("data-name"), file: input.files[0] });
        }
      });
      if (!dt || !chosen.length) { say("Choose the datatype's files first."); return; }
      go.disabled = true;
      bar.hidden = false;
      bar.value = 0;
      say("Starting the upload…"); // not the last upload's "Uploaded" while this one starts
      var meta = { subject: form.subject.value.trim() };
      if (form.session.value.trim()) meta.session = form.session.value.trim();
      if (form.run.value.trim()) meta.run = form.run.value.trim();
      var tags = splitTags(form.tags.value);
      var datatypeTags = splitTags(form.datatype_tags.value);
      // an interrupted upload resumes only with the same files *and* the same metadata: its
      // session on the server holds the metadata first sent, so a corrected subject starts anew
      var base = "bl-upload:" + project + ":" + dt.id + ":" + JSON.stringify(chosen.map(function (c) {
        return [c.id, c.file.name, c.file.size, c.file.lastModified];
      }));
      var key = base + ":" + JSON.stringify([meta, form.desc.value, tags, datatypeTags]);
      try {
        var total = chosen.reduce(function (sum, c) { return sum + c.file.size; }, 0) || 1;
        var upload = null;
        var saved = localStorage.getItem(key);
        if (saved) {
          try {
            upload = await api("GET", "/" + saved);
            if (upload.status !== "open") upload = null;
          } catch (err) { upload = null; }
        }
        if (!upload) {
          // the same files sent before with other metadata: that upload is given up
          Object.keys(localStorage).forEach(function (k) {
            if (k.indexOf(base + ":") === 0 && k !== key) localStorage.removeItem(k);
          });
          var done = 0;
          for (var i = 0; i < chosen.length; i++) {
            chosen[i].sha256 = await hashFile(chosen[i].file, done, total);
            done += chosen[i].file.size;
          }
          upload = await api("POST", "", JSON.stringify({
            project: project, datatype: dt.id, desc: form.desc.value, meta: meta, tags: tags,
            datatype_tags: datatypeTags,
            files: chosen.map(function (c) { return { id: c.id, name: c.name, size: c.file.size, sha256: c.sha256 }; }),
          }), { "Content-Type": "application/json" });
          localStorage.setItem(key, upload._id);
        }
        var before = 0;
        for (var n = 0; n < chosen.length; n++) {
          var sent = before;
          upload = await send(upload, n, chosen[n].file, function (at) {
            bar.value = (sent + at) / total;
            say("Uploading… " + Math.round(bar.value * 100) + " %");
          });
          before += chosen[n].file.size;
        }
        bar.value = 1;
        say("Storing the data object…");
        var dataset = await api("POST", "/" + upload._id + "/finalize");
        localStorage.removeItem(key);
        // the files are forgotten (Upload pressed again would store a second, identical
        // object); the metadata stays, for the next subject's files
        form.querySelectorAll("#up-files input[type=file]").forEach(function (input) { input.value = ""; });
        status.textContent = "Uploaded: ";
        var link = document.createElement("a");
        link.href = "/object/" + dataset._id;
        link.textContent = "data object " + dataset._id;
        status.appendChild(link);
        status.appendChild(document.createTextNode(". Choose files to upload another."));
      } catch (err) {
        if (err.status === 400) {
          // refused (bytes that do not have the digest declared: another file of the same
          // name, size and time than the interrupted upload's): the next try starts anew
          localStorage.removeItem(key);
          say("The upload stopped: " + err.message + " Press Upload to send it again from the start.");
          return;
        }
        say("The upload stopped: " + err.message + " Press Upload to try again; what arrived is kept.");
      } finally {
        go.disabled = false;
      }
    });
  });
})();
