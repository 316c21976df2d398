// A job's page: progress until it finishes, then the player with its waveform (peaks
// computed by the worker), the speaker timeline (one lane per speaker), the transcript by
// speaker turn with the word being spoken highlighted, talk time, renaming, downloads.
//
// Fast for a 2-hour meeting (about 20 000 words): the transcript is built in chunks
// between frames (the first screen at once, the rest after), turns off screen are skipped
// by the browser (CSS content-visibility), and one delegated click handler per area
// serves every word and block. Data goes into the page as text only.
"use strict";

(() => {
  const {api, el, clock, overall} = Diarq;
  const $ = (x) => document.getElementById(x);
  const jobId = document.body.dataset.jobId;
  const audio = $("audio");
  const box = $("transcript");
  const timeline = $("timeline");
  const canvas = $("wave-canvas");
  const COLOURS = 10;
  const FIRST_WORDS = 1200;  // rendered before the page is interactive
  const CHUNK_WORDS = 2500;  // then this many per task
  const USER_SCROLL_PAUSE_MS = 4000;

  let duration = 0;
  let speakers = [];          // [{id, name, talk_time}], index = colour
  const speakerIndex = new Map();
  let starts = new Float64Array(0);
  let texts = [];
  let wordSpeaker = [];
  const wordEls = [];          // filled as chunks render
  let turns = [];              // [{speaker, start, from, to}]
  let peaks = null;
  let current = -1;
  let userScrolledAt = 0;

  function label(i) {
    const s = speakers[i];
    return s ? (s.name || s.id) : "Unknown";
  }

  // --- loading ---------------------------------------------------------------------

  performance.mark("diarq-scripts");
  // the transcript and the peaks are asked for with the job itself (one round trip less
  // before the page is interactive); a job not finished yet answers 409, asked again then
  let prefetched = fetchTranscript();

  function fetchTranscript() {
    return Promise.all([
      api(`/v1/jobs/${jobId}/result`),
      api(`/v1/jobs/${jobId}/waveform`).catch(() => null),
    ]);
  }

  async function watch() {
    let job;
    try {
      job = await api(`/v1/jobs/${jobId}`);
    } catch (err) {
      showError(`Could not load the job: ${err.message}`);
      return;
    }
    meta(job);
    if (job.status === "succeeded") { await show(job); return; }
    prefetched.catch(() => null);  // answered 409: not an error to report
    const progressBox = $("job-progress");
    if (job.status === "failed" || job.status === "canceled") {
      progressBox.hidden = true;
      showError(job.error ? `${job.error.message} (${job.error.code})` : `This job was ${job.status}.`);
      return;
    }
    progressBox.hidden = false;
    $("job-progress-bar").value = overall(job);
    const waiting = job.waiting ? job.waiting.message : "waiting for a worker…";
    $("job-progress-text").textContent = job.status === "queued" ? waiting
      : `${job.stage || "starting"} · ${Math.round(overall(job) * 100)}%`;
    setTimeout(watch, 1500);
  }

  function meta(job) {
    const parts = [];
    if (job.audio.duration) parts.push(clock(job.audio.duration));
    parts.push(`submitted ${Diarq.when(job.created_at)}`);
    if (job.status !== "succeeded") parts.push(job.status);
    $("job-meta").textContent = parts.join(" · ");
  }

  function showError(message) {
    const p = $("job-error");
    p.hidden = false;
    p.textContent = message;
  }

  async function show(job) {
    $("job-progress").hidden = true;
    let result;
    try {
      [result, peaks] = await prefetched.catch(fetchTranscript);
      performance.mark("diarq-data");  // for bench/web_page.py: the result has arrived
    } catch (err) {
      showError(`Could not load the transcript: ${err.message}`);
      return;
    }
    duration = result.audio.duration || job.audio.duration || 0;
    speakers = result.speakers.map((s) => ({id: s.id, name: s.name, talk_time: s.talk_time}));
    speakers.forEach((s, i) => speakerIndex.set(s.id, i));
    index(result);
    const extra = [result.language ? `language ${result.language}` : null,
                   `${speakers.length} speaker${speakers.length === 1 ? "" : "s"}`,
                   `${texts.length} words`].filter(Boolean);
    $("job-meta").textContent += " · " + extra.join(" · ");
    $("transcript-view").hidden = false;
    audio.src = `/v1/jobs/${jobId}/audio`;
    renderSpeakers();
    renderTimeline(result);
    drawWave();
    downloads(job);
    if (!turns.length) box.append(el("p", "empty-note", "No speech was found in this recording."));
    renderChunk(0, FIRST_WORDS);
    // how much was built before the page took input (the rest follows in later tasks)
    document.body.dataset.wordsAtReady = String(wordEls.length);
    document.body.dataset.ready = "interactive";
    performance.mark("diarq-interactive");
  }

  // words in time order, with the turns (runs of one speaker) they belong to
  function index(result) {
    const s = [], t = [], who = [];
    turns = [];
    for (const seg of result.segments) {
      const spk = speakerIndex.has(seg.speaker) ? speakerIndex.get(seg.speaker) : -1;
      const items = seg.words && seg.words.length ? seg.words
        : [{word: seg.text, start: seg.start}];
      let turn = turns[turns.length - 1];
      if (!turn || turn.speaker !== spk) {
        turn = {speaker: spk, start: seg.start, from: s.length, to: s.length};
        turns.push(turn);
      }
      let last = s.length ? s[s.length - 1] : 0;
      for (const w of items) {
        const text = String(w.word || "").trim();
        if (!text) continue;
        // words without a time (numbers, symbols) take the previous one: times stay sorted
        last = Math.max(last, typeof w.start === "number" ? w.start : seg.start);
        s.push(last);
        t.push(text);
        who.push(spk);
      }
      turn.to = s.length;
    }
    starts = Float64Array.from(s);
    texts = t;
    wordSpeaker = who;
    turns = turns.filter((tr) => tr.to > tr.from);
  }

  // --- transcript ------------------------------------------------------------------

  function renderTurn(turn, ti) {
    const div = el("div", "turn");
    div.dataset.turn = ti;
    const head = el("div", "turn-head");
    const who = el("span", `who c${turn.speaker % COLOURS}`, label(turn.speaker));
    who.dataset.s = turn.speaker;
    const at = el("button", "at", clock(turn.start));
    at.type = "button";
    at.dataset.t = turn.start;
    head.append(who, at);
    const p = el("p", "words");
    const frag = document.createDocumentFragment();
    for (let i = turn.from; i < turn.to; i++) {
      const span = document.createElement("span");
      span.className = "w";
      span.dataset.i = i;
      span.textContent = texts[i];
      wordEls[i] = span;
      frag.append(span, " ");
    }
    p.append(frag);
    div.append(head, p);
    return div;
  }

  // turns from ``ti`` until about ``budget`` words, then the next chunk in a later task
  function renderChunk(ti, budget) {
    const frag = document.createDocumentFragment();
    let words = 0;
    while (ti < turns.length && words < budget) {
      frag.append(renderTurn(turns[ti], ti));
      words += turns[ti].to - turns[ti].from;
      ti++;
    }
    box.append(frag);
    if (ti < turns.length) {
      setTimeout(() => renderChunk(ti, CHUNK_WORDS), 0);
    } else {
      document.body.dataset.rendered = "all";
      performance.mark("diarq-rendered");
      if (current >= 0) highlight(current, false);
    }
  }

  box.addEventListener("click", (e) => {
    const word = e.target.closest("[data-i]");
    if (word) { seek(starts[Number(word.dataset.i)]); return; }
    const at = e.target.closest("[data-t]");
    if (at) seek(Number(at.dataset.t));
  });
  for (const type of ["wheel", "touchstart", "keydown", "mousedown"]) {
    box.addEventListener(type, () => { userScrolledAt = performance.now(); }, {passive: true});
  }

  // the last word that started at or before ``t`` (-1 before the first)
  function wordAt(t) {
    let lo = 0, hi = starts.length - 1, found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid] <= t + 1e-3) { found = mid; lo = mid + 1; } else hi = mid - 1;
    }
    return found;
  }

  function highlight(i, follow) {
    if (current >= 0 && wordEls[current]) wordEls[current].classList.remove("now");
    current = i;
    const span = wordEls[i];
    if (!span) return;
    span.classList.add("now");
    if (follow && $("follow").checked && performance.now() - userScrolledAt > USER_SCROLL_PAUSE_MS) {
      const top = span.offsetTop, view = box.scrollTop;
      if (top < view + 20 || top > view + box.clientHeight - 40) box.scrollTop = top - box.clientHeight / 3;
    }
  }

  function update() {
    const t = audio.currentTime;
    const i = wordAt(t);
    if (i !== current) highlight(i, true);
    const pct = duration ? `${Math.min(100, (t / duration) * 100)}%` : "0";
    $("wave-head").style.left = pct;
    $("timeline-head").style.left = pct;
  }

  function seek(t) {
    if (!isFinite(t)) return;
    audio.currentTime = Math.max(0, t);
    update();
  }

  let looping = false;
  function loop() {
    update();
    if (!audio.paused) requestAnimationFrame(loop); else looping = false;
  }
  audio.addEventListener("play", () => { if (!looping) { looping = true; requestAnimationFrame(loop); } });
  audio.addEventListener("seeked", update);
  audio.addEventListener("timeupdate", update);
  $("speed").addEventListener("change", (e) => {
    audio.playbackRate = audio.defaultPlaybackRate = Number(e.target.value);
  });

  // --- timeline and waveform -------------------------------------------------------

  function renderTimeline(result) {
    const turnsBySpeaker = speakers.map(() => []);
    const source = result.diarization.length ? result.diarization
      : result.segments.filter((s) => s.speaker).map((s) => ({start: s.start, end: s.end, speaker: s.speaker}));
    for (const t of source) {
      const i = speakerIndex.get(t.speaker);
      if (i !== undefined) turnsBySpeaker[i].push(t);
    }
    const lanes = speakers.map((s, i) => {
      const lane = el("div", "lane");
      lane.dataset.s = i;
      const name = el("div", `lane-name c${i % COLOURS}`, label(i));
      name.dataset.s = i;
      const track = el("div", "track");
      const frag = document.createDocumentFragment();
      for (const t of turnsBySpeaker[i]) {
        const block = el("div", `block c${i % COLOURS}`);
        block.style.left = `${(t.start / duration) * 100}%`;
        // a turn running past the recording's end (rounding, a result from elsewhere)
        // stops at the lane's edge
        const end = Math.min(t.end, duration);
        block.style.width = `${Math.max(0, ((end - t.start) / duration) * 100)}%`;
        block.dataset.t = t.start;
        frag.append(block);
      }
      track.append(frag);
      lane.append(name, track);
      return lane;
    });
    timeline.append(...lanes);
  }

  timeline.addEventListener("click", (e) => {
    const block = e.target.closest("[data-t]");
    if (block) { seek(Number(block.dataset.t)); return; }
    const track = e.target.closest(".track");
    if (track && duration) {
      const r = track.getBoundingClientRect();
      seek(((e.clientX - r.left) / r.width) * duration);
    }
  });

  // audiowaveform v1: 20-byte header, then int8 (min, max) pairs (worker/waveform.py)
  function parsePeaks(buffer) {
    if (!(buffer instanceof ArrayBuffer) || buffer.byteLength < 20) return null;
    const view = new DataView(buffer);
    if (view.getInt32(0, true) !== 1 || view.getUint32(4, true) !== 1) return null;
    const n = Math.min(view.getUint32(16, true), (buffer.byteLength - 20) >> 1);
    return new Int8Array(buffer, 20, n * 2);
  }

  function drawWave() {
    const data = parsePeaks(peaks);
    const width = Math.max(1, Math.floor(canvas.clientWidth * devicePixelRatio));
    const height = Math.floor(64 * devicePixelRatio);
    canvas.width = width;
    canvas.height = height;
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, width, height);
    if (!data) { $("wave").classList.add("empty"); return; }
    const pairs = data.length / 2, mid = height / 2;
    // quiet recordings are drawn louder (at most 8x), so their shape shows
    let peak = 1;
    for (let j = 0; j < data.length; j++) peak = Math.max(peak, Math.abs(data[j]));
    const gain = Math.min(8, 127 / peak);
    ctx.fillStyle = getComputedStyle(canvas).color;
    for (let x = 0; x < width; x++) {
      const a = Math.floor((x * pairs) / width), b = Math.max(a + 1, Math.floor(((x + 1) * pairs) / width));
      let lo = 0, hi = 0;
      for (let j = a; j < b && j < pairs; j++) {
        if (data[2 * j] < lo) lo = data[2 * j];
        if (data[2 * j + 1] > hi) hi = data[2 * j + 1];
      }
      const top = mid - Math.min(1, (hi * gain) / 128) * mid;
      const bottom = mid - Math.max(-1, (lo * gain) / 128) * mid;
      ctx.fillRect(x, top, 1, Math.max(1, bottom - top));
    }
  }
  let resizeTimer = null;
  window.addEventListener("resize", () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(drawWave, 150); });
  $("wave").addEventListener("click", (e) => {
    const r = canvas.getBoundingClientRect();
    if (duration) seek(((e.clientX - r.left) / r.width) * duration);
  });

  // --- speakers: talk time and names ------------------------------------------------

  function renderSpeakers() {
    const total = speakers.reduce((sum, s) => sum + (s.talk_time || 0), 0) || 1;
    const rows = speakers.map((s, i) => {
      const row = el("div", "speaker");
      const swatch = el("span", `swatch c${i % COLOURS}`);
      const input = el("input");
      input.type = "text";
      input.maxLength = 100;
      input.value = s.name || "";
      input.placeholder = s.id;
      input.dataset.id = s.id;
      input.setAttribute("aria-label", `Name of ${s.id}`);
      const id = el("span", "speaker-id muted", s.id);
      const bar = el("div", "talk");
      const fill = el("div", `talk-fill c${i % COLOURS}`);
      fill.style.width = `${((s.talk_time || 0) / total) * 100}%`;
      bar.append(fill);
      const talk = el("span", "talk-time", `${clock(s.talk_time)} · ${Math.round(((s.talk_time || 0) / total) * 100)}%`);
      row.append(swatch, input, id, bar, talk);
      return row;
    });
    $("speakers").replaceChildren(...rows);
  }

  $("speakers-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const status = $("speakers-status");
    const changes = {};
    for (const input of $("speakers").querySelectorAll("input[data-id]")) {
      const s = speakers[speakerIndex.get(input.dataset.id)];
      const name = input.value.trim() || null;
      if (name !== (s.name || null)) changes[s.id] = name;
    }
    if (!Object.keys(changes).length) { status.textContent = "No changes."; return; }
    status.textContent = "Saving…";
    try {
      const answer = await api(`/v1/jobs/${jobId}/speakers`, {method: "PATCH", json: changes});
      for (const s of answer.speakers) {
        const i = speakerIndex.get(s.id);
        if (i !== undefined) speakers[i].name = s.name;
      }
      renameEverywhere();
      status.textContent = "Saved: downloads use the new names.";
    } catch (err) {
      status.textContent = `Not saved: ${err.message}`;
    }
  });

  function renameEverywhere() {
    for (const node of document.querySelectorAll(".who[data-s], .lane-name[data-s]")) {
      node.textContent = label(Number(node.dataset.s));
    }
    for (const input of $("speakers").querySelectorAll("input[data-id]")) {
      input.value = speakers[speakerIndex.get(input.dataset.id)].name || "";
    }
  }

  // --- downloads and delete ---------------------------------------------------------

  function downloads(job) {
    const stem = (job.audio.filename || jobId).replace(/\.[^.]+$/, "") || jobId;
    for (const a of $("downloads").querySelectorAll("a[data-format]")) {
      a.download = `${stem}.${a.dataset.format}`;
    }
  }

  $("delete-job").addEventListener("click", async () => {
    if (!confirm("Delete this recording, its transcript and its audio? This cannot be undone.")) return;
    try {
      await api(`/v1/jobs/${jobId}`, {method: "DELETE"});
      location.assign("/");
    } catch (err) {
      showError(`Not deleted: ${err.message}`);
    }
  });

  watch();
})();
