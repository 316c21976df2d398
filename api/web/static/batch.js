// A batch: per-file status and progress (refreshed until all finished), the rejected
// entries, and results.zip in the chosen formats.
"use strict";

(() => {
  const {api, el, clock, progressCell, jobRow} = Diarq;
  const id = document.body.dataset.batchId;
  const rows = document.getElementById("batch-jobs");
  const bar = document.getElementById("batch-progress");
  const counts = document.getElementById("batch-counts");
  const rejected = document.getElementById("batch-rejected");
  const zipForm = document.getElementById("zip-form");
  const zipLink = document.getElementById("zip-link");

  function zipFormats() {
    const picked = Array.from(zipForm.querySelectorAll("input[name=f]:checked")).map((c) => c.value);
    zipLink.href = `/v1/batches/${id}/results.zip?formats=${(picked.length ? picked : ["json"]).join(",")}`;
  }
  zipForm.addEventListener("change", zipFormats);
  zipForm.addEventListener("submit", (e) => e.preventDefault());

  async function load() {
    let batch;
    try {
      batch = await api(`/v1/batches/${id}`);
    } catch (err) {
      counts.textContent = `Could not load the batch: ${err.message}`;
      setTimeout(load, 5000);
      return;
    }
    bar.value = batch.progress;
    const c = batch.counts;
    counts.textContent = `${c.succeeded} done, ${c.running} running, ${c.queued} waiting, ` +
      `${c.failed} failed, ${c.canceled} canceled` + (batch.finished ? " · finished" : "");
    if (batch.rejected.length) {
      rejected.hidden = false;
      rejected.textContent = "Not audio, left out: " + batch.rejected.map((r) => `${r.name} (${r.reason})`).join("; ");
    }
    rows.replaceChildren(...batch.jobs.map((job) => jobRow(
      job.id, job.source_name || job.id, job.status, progressCell(job, job.progress),
      el("td", "num", clock(job.duration)))));
    if (!batch.finished) setTimeout(load, 1500);
  }
  zipFormats();
  load();
})();
