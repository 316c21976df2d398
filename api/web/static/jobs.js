// The jobs page: upload (drag and drop, progress bar, the options of POST /v1/jobs) and
// the caller's jobs, newest first, a page at a time, refreshed while any is running.
"use strict";

(() => {
  const {api, upload, el, clock, when, progressCell, jobRow, ACTIVE} = Diarq;
  const form = document.getElementById("upload-form");
  const input = document.getElementById("files");
  const zone = document.getElementById("dropzone");
  const chosen = document.getElementById("chosen");
  const bar = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  const button = document.getElementById("upload-button");
  const body = document.getElementById("jobs-body");
  const newer = document.getElementById("newer");
  const older = document.getElementById("older");
  const maxBytes = Number(document.body.dataset.maxUploadMb) * 1024 * 1024;
  const ARCHIVE = /\.(zip|tar|tgz|tar\.gz)$/i;
  const OPTIONS = ["num_speakers", "min_speakers", "max_speakers", "language", "participants", "prompt"];

  let files = [];
  const cursors = [null];  // cursors of the pages seen; the last is the one shown
  let next = null;
  let timer = null;

  function choose(list) {
    files = Array.from(list);
    chosen.textContent = files.length ? files.map((f) => f.name).join(", ") : "";
  }

  input.addEventListener("change", () => { choose(input.files); status.textContent = ""; });
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    zone.addEventListener(type, () => zone.classList.remove("over"));
  }
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    if (e.dataTransfer && e.dataTransfer.files.length) {
      choose(e.dataTransfer.files);
      status.textContent = "";
    }
  });

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!files.length) { status.textContent = "Choose a recording first."; return; }
    const big = files.find((f) => f.size > maxBytes);
    if (big) {
      status.textContent = `${big.name} is larger than ${document.body.dataset.maxUploadMb} MB, the limit of this server.`;
      return;
    }
    const batch = files.length > 1 || ARCHIVE.test(files[0].name);
    const data = new FormData();
    for (const f of files) data.append(batch ? "files" : "file", f, f.name);
    for (const name of OPTIONS) {
      const value = form.elements[name].value.trim();
      if (value) data.append(name, value);
    }
    button.disabled = true;
    bar.hidden = false;
    bar.value = 0;
    status.textContent = "Uploading…";
    try {
      const made = await upload(batch ? "/v1/batches" : "/v1/jobs", data, (f) => {
        bar.value = Math.round(f * 100);
        status.textContent = f < 1 ? `Uploading… ${Math.round(f * 100)}%` : "Checking the recording…";
      });
      bar.value = 100;
      if (batch) { location.assign(`/batches/${made.id}`); return; }
      status.textContent = made.deduplicated_from ? "Uploaded: the same recording was done before, its result is reused." : "Uploaded.";
      choose([]);
      input.value = "";
      cursors.length = 1;
      load();
    } catch (err) {
      status.textContent = `Not uploaded: ${err.message}`;
    } finally {
      button.disabled = false;
      setTimeout(() => { bar.hidden = true; }, 800);
    }
  });

  function row(job) {
    const extra = el("td");
    if (job.batch_id) {
      const b = el("a", "muted", "batch");
      b.href = `/batches/${job.batch_id}`;
      extra.append(b);
    }
    return jobRow(job.id, job.audio.filename || job.source_name || job.id, job.status,
                  progressCell(job), el("td", "num", clock(job.audio.duration)),
                  el("td", "muted", when(job.created_at)), extra);
  }

  async function load() {
    clearTimeout(timer);
    const cursor = cursors[cursors.length - 1];
    const query = new URLSearchParams({limit: "20"});
    if (cursor) query.set("cursor", cursor);
    let page;
    try {
      page = await api(`/v1/jobs?${query}`);
    } catch (err) {
      body.replaceChildren(el("tr", "", ""));
      body.firstChild.append(el("td", "error", `Could not load the jobs: ${err.message}`));
      timer = setTimeout(load, 5000);
      return;
    }
    next = page.next_cursor;
    if (!page.jobs.length) {
      const tr = el("tr");
      const td = el("td", "muted", "No recordings yet: upload one above.");
      td.colSpan = 6;
      tr.append(td);
      body.replaceChildren(tr);
    } else {
      body.replaceChildren(...page.jobs.map(row));
    }
    newer.disabled = cursors.length <= 1;
    older.disabled = !next;
    if (page.jobs.some((j) => ACTIVE.has(j.status))) timer = setTimeout(load, 1500);
  }

  older.addEventListener("click", () => { if (next) { cursors.push(next); load(); } });
  newer.addEventListener("click", () => { if (cursors.length > 1) { cursors.pop(); load(); } });
  load();
})();
