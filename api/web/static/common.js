// Helpers shared by the pages: calls to the /v1 API (same origin: the session cookie
// rides along; changes carry the page's CSRF token), building elements with text only
// (never markup from data), and formatting times.
"use strict";

const Diarq = (() => {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function errorOf(resp) {
    try {
      const body = await resp.json();
      if (body && body.error) return new ApiError(resp.status, body.error.code, body.error.message);
    } catch (_) { /* not JSON */ }
    return new ApiError(resp.status, "http_error", `the server answered ${resp.status}`);
  }

  function headers(extra) {
    const h = Object.assign({Accept: "application/json"}, extra || {});
    if (csrf) h["X-CSRF-Token"] = csrf;
    return h;
  }

  async function api(path, {method = "GET", json, headers: extra} = {}) {
    const init = {method, credentials: "same-origin", headers: headers(extra)};
    if (json !== undefined) {
      init.body = JSON.stringify(json);
      init.headers["Content-Type"] = "application/json";
    }
    const resp = await fetch(path, init);
    if (resp.status === 401) {  // the session ended: sign in again, then come back
      location.assign("/login?next=" + encodeURIComponent(location.pathname));
      throw new ApiError(401, "unauthorized", "signed out");
    }
    if (!resp.ok) throw await errorOf(resp);
    if (resp.status === 204) return null;
    const type = resp.headers.get("Content-Type") || "";
    return type.startsWith("application/json") ? resp.json() : resp.arrayBuffer();
  }

  // multipart upload with progress (fetch reports none): resolves with the JSON answer
  function upload(path, form, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", path);
      xhr.withCredentials = true;
      xhr.responseType = "json";
      for (const [k, v] of Object.entries(headers())) xhr.setRequestHeader(k, v);
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
      xhr.onload = () => {
        const body = xhr.response;
        if (xhr.status >= 200 && xhr.status < 300) resolve(body);
        else if (body && body.error) reject(new ApiError(xhr.status, body.error.code, body.error.message));
        else reject(new ApiError(xhr.status, "http_error", `the server answered ${xhr.status}`));
      };
      xhr.onerror = () => reject(new ApiError(0, "network", "the upload was interrupted; check the connection and try again"));
      xhr.send(form);
    });
  }

  // an element whose content is text (textContent: markup in data stays text)
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clock(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    const mm = String(m).padStart(h ? 2 : 1, "0"), ss = String(sec).padStart(2, "0");
    return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
  }

  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return d.toLocaleString(undefined, {dateStyle: "medium", timeStyle: "short"});
  }

  const STAGES = ["decode", "diarize", "transcribe", "align", "assign"];
  const ACTIVE = new Set(["queued", "running"]);

  // 0..1 across the stages, each counted equally (as shared/serialize.py does)
  function overall(job) {
    if (job.status === "succeeded") return 1;
    const i = STAGES.indexOf(job.stage);
    return i < 0 ? 0 : (i + (job.progress || 0)) / STAGES.length;
  }

  function statusBadge(status) {
    return el("span", `badge ${status}`, status);
  }

  // ``fraction``: the job's progress when the caller knows it (a batch says it per job)
  function progressCell(job, fraction = overall(job)) {
    const wrap = el("div", "progress-cell");
    const bar = el("progress");
    bar.max = 1;
    bar.value = fraction;
    wrap.append(bar);
    let label = "";
    if (job.status === "running") label = `${job.stage || "starting"} ${Math.round(fraction * 100)}%`;
    else if (job.status === "queued") {
      // why it waits (GET /v1/jobs says it: no worker, workers loading, queue position)
      const why = job.waiting;
      label = why && why.code === "queue_busy" ? `waiting (#${why.position})` : "waiting";
      if (why) wrap.title = why.message;
    }
    else if (job.status === "failed" && job.error) label = job.error.code;
    wrap.append(el("span", "muted", label));
    return wrap;
  }

  // a table row of one job: its name linking to its page, its status and progress, then
  // the caller's further cells
  function jobRow(id, name, status, progress, ...cells) {
    const tr = el("tr");
    tr.dataset.jobId = id;
    tr.dataset.status = status;
    const nameCell = el("td", "name");
    const link = el("a", "", name);
    link.href = `/jobs/${id}`;
    nameCell.append(link);
    const state = el("td");
    state.append(statusBadge(status));
    const progressTd = el("td");
    progressTd.append(progress);
    tr.append(nameCell, state, progressTd, ...cells);
    return tr;
  }

  return {api, upload, el, clock, when, overall, statusBadge, progressCell, jobRow, ACTIVE,
          ApiError, csrf};
})();
