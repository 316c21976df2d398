"""How fast the web app's transcript page is for a 2-hour meeting (about 20 000 words), in
headless Chromium (Debian's, driven by Playwright) on this machine.

A synthetic result (2 h, 4 speakers, 20 000 words with times, 1 500 segments), a 2-hour
Opus recording and 2-hour waveform peaks are put into a throwaway embedded deployment
(SQLite, local storage, auth off) served by the real app. Each run opens the page in a
fresh browser context and measures:

- scripts, data: navigation start -> the page's scripts running (``diarq-scripts``),
  the result and peaks arrived (``diarq-data``);
- interactive: navigation start -> the page's ``diarq-interactive`` mark (player,
  timeline, speakers and the first screen of words built, handlers attached), and when
  a click on a word, sent by Playwright right after (its own checks and round trips
  included), had moved the audio element;
- rendered: -> ``diarq-rendered`` (every word in the page);
- long tasks (> 50 ms) on the main thread during load: count, longest, total blocking;
- scrolling: the transcript scrolled top to bottom, one step per frame, after the full
  render: frame times (median, 95th percentile, max) and frames over 50 ms.

    .venv/bin/python bench/web_page.py [--runs 5] [--words 20000] [--no-audio]

Prints one JSON object (also written to bench/out/web_page.json, with a screenshot).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the synthetic result is shared with tests/browser

from tests.browser.synthetic import synthetic_result  # noqa: E402

OUT = ROOT / "bench" / "out"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
def make_deployment(folder: Path, words: int, with_audio: bool) -> tuple[object, str]:
    from diarq.shared.db import session_scope, upgrade
    from diarq.shared.orm import SUCCEEDED, Job, JobResult, utcnow
    from diarq.shared.settings import load_settings
    from diarq.shared.storage import audio_key, media_key
    from diarq.shared.storage_backend import open_storage
    from diarq.worker.waveform import encode

    settings = load_settings(data_dir=folder, auth="off", log_level="WARNING")
    upgrade(settings)
    storage = open_storage(settings)
    job_id = str(uuid.uuid4())
    duration = 7200.0
    rng = np.random.default_rng(0)
    envelope = (np.abs(np.sin(np.arange(720_000) / 900.0)) * 90 + 10).astype(np.int16)
    lows = -(envelope * rng.uniform(0.5, 1, 720_000)).astype(np.int8)
    pairs = np.stack([lows, -lows], axis=1).astype(np.int8)
    waveform = media_key(job_id, "bench", ".peaks")
    storage.put_bytes(waveform, encode(pairs))
    audio = None
    if with_audio:
        tmp = folder / "two-hour-meeting.webm"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                        f"sine=frequency=220:duration={duration:.0f}", "-ac", "1",
                        "-c:a", "libopus", "-b:a", "6k", str(tmp)], check=True, timeout=600)
        audio = audio_key(job_id)
        storage.put_file(audio, tmp)
        tmp.unlink()
    now = utcnow()
    with session_scope(settings) as s:
        s.add(Job(id=job_id, status=SUCCEEDED, progress=1.0, options={}, queue="cpu",
                  audio_filename="two-hour-meeting.webm", audio_duration=duration,
                  audio_path=audio, playback_type="audio/webm" if audio else None,
                  waveform_path=waveform, created_at=now, updated_at=now, finished_at=now))
        s.flush()
        s.add(JobResult(job_id=job_id, created_at=now,
                        data=synthetic_result(job_id, words, duration, speakers=4)))
    return settings, job_id


def serve(settings) -> tuple[str, object]:  # noqa: ANN001
    from werkzeug.serving import make_server

    from diarq.api import create_app

    app = create_app({"DIARQ_SETTINGS": settings})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", server


LONG_TASKS = """() => { window.__long = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__long.push(e.duration);
  }).observe({type: "longtask", buffered: true}); }"""

SCROLL = """async () => {
  const box = document.getElementById("transcript");
  const times = []; let last = performance.now();
  const step = Math.max(400, box.clientHeight);
  await new Promise((done) => {
    function frame(now) {
      times.push(now - last); last = now;
      if (box.scrollTop + box.clientHeight >= box.scrollHeight - 1) { done(); return; }
      box.scrollTop += step; requestAnimationFrame(frame);
    }
    requestAnimationFrame(frame);
  });
  return {frames: times.slice(1), height: box.scrollHeight};
}"""


def measure(browser, url: str, job_id: str, shot: Path | None) -> dict:  # noqa: ANN001
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.add_init_script(script=LONG_TASKS.replace("() => {", "(() => {", 1) + ")();")
    page.goto(f"{url}/jobs/{job_id}", wait_until="commit")
    page.wait_for_selector("body[data-ready=interactive]", timeout=60_000)
    first = page.locator('#transcript .w[data-i="3"]')
    first.click()
    clicked = page.evaluate("() => performance.now()")
    moved = page.evaluate("() => document.getElementById('audio').currentTime")
    page.wait_for_selector("body[data-rendered=all]", timeout=60_000)
    marks = page.evaluate("""() => Object.fromEntries(performance.getEntriesByType('mark')
        .map(m => [m.name, m.startTime]))""")
    long_tasks = page.evaluate("() => window.__long")
    words = page.locator("#transcript .w").count()
    scroll = page.evaluate(SCROLL)
    if shot is not None:
        page.evaluate("() => { document.getElementById('transcript').scrollTop = 0; }")
        page.screenshot(path=str(shot))
    ctx.close()
    frames = sorted(scroll["frames"])
    return {
        "scripts_ms": round(marks["diarq-scripts"], 1),
        "data_ms": round(marks["diarq-data"], 1),
        "interactive_ms": round(marks["diarq-interactive"], 1),
        "word_click_done_ms": round(clicked, 1),
        "click_moved_audio": moved > 0,
        "rendered_ms": round(marks["diarq-rendered"], 1),
        "words_in_page": words,
        "long_tasks": len(long_tasks),
        "longest_task_ms": round(max(long_tasks, default=0), 1),
        "total_blocking_ms": round(sum(max(0, d - 50) for d in long_tasks), 1),
        "scroll_frames": len(frames),
        "scroll_frame_median_ms": round(statistics.median(frames), 1),
        "scroll_frame_p95_ms": round(frames[int(0.95 * (len(frames) - 1))], 1),
        "scroll_frame_max_ms": round(frames[-1], 1),
        "scroll_frames_over_50ms": sum(f > 50 for f in frames),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--words", type=int, default=20_000)
    parser.add_argument("--no-audio", action="store_true",
                        help="skip making the 2-hour Opus file (about 30 s of ffmpeg)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        settings, job_id = make_deployment(Path(tmp), args.words, not args.no_audio)
        url, server = serve(settings)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                            args=CHROMIUM_ARGS)
                measure(browser, url, job_id, None)  # warm-up: server imports, caches
                runs = [measure(browser, url, job_id,
                                OUT / "web_page.png" if i == 0 else None)
                        for i in range(args.runs)]
                version = browser.version
                browser.close()
        finally:
            server.shutdown()

    def med(key: str) -> float:
        return round(statistics.median(r[key] for r in runs), 1)

    summary = {
        "words": args.words, "audio": not args.no_audio, "runs": args.runs,
        "chromium": version, "machine": f"{__import__('os').cpu_count()} cores",
        "scripts_ms_median": med("scripts_ms"),
        "data_ms_median": med("data_ms"),
        "interactive_ms_median": med("interactive_ms"),
        "interactive_ms_max": max(r["interactive_ms"] for r in runs),
        "rendered_ms_median": med("rendered_ms"),
        "longest_task_ms_max": max(r["longest_task_ms"] for r in runs),
        "total_blocking_ms_median": med("total_blocking_ms"),
        "scroll_frame_p95_ms_median": med("scroll_frame_p95_ms"),
        "scroll_frame_max_ms_max": max(r["scroll_frame_max_ms"] for r in runs),
        "scroll_frames_over_50ms_max": max(r["scroll_frames_over_50ms"] for r in runs),
        "per_run": runs,
    }
    (OUT / "web_page.json").write_text(json.dumps(summary, indent=1))
    json.dump(summary, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    t0 = time.monotonic()
    main()
    print(f"bench took {time.monotonic() - t0:.0f} s", file=sys.stderr)
