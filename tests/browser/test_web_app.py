"""The web app in a real browser (Debian's Chromium), against gunicorn, PostgreSQL, Redis
and a real worker running the offline models on a real two-speaker recording.

One recording is uploaded through the page (participants include a hostile name) and
the tests after it read its page: the timeline has one lane per speaker, a click on a
word moves the audio element there, playback highlights the words, a rename reaches
the downloaded SRT, the hostile name stays text, another key gets a 404 page. A batch is
dropped onto the page last. Screenshots are kept (conftest.py).
"""

from __future__ import annotations

import base64
import time
import uuid
import zipfile
from pathlib import Path

import pytest

from diarq.shared.db import session_scope
from diarq.shared.keystore import authenticate
from diarq.shared.orm import SUCCEEDED, Job, JobResult, utcnow
from tests.browser.synthetic import synthetic_result
from tests.integration.services import ROOT

DATA = ROOT / "tests" / "data"
HOSTILE = "<img src=x onerror=window.__pwned=1>"
FINISHED_S = 420  # the real pipeline on 30 s of audio, on 2 busy cores, with margin


def wait_js(page, expression: str, timeout: float = 30_000) -> None:  # noqa: ANN001
    """Wait until ``expression`` (a function's source) is true in the page, polled with
    page.evaluate: Playwright's wait_for_function evaluates strings with eval, which the
    page's CSP forbids."""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout / 1000:.0f} s: {expression}")
        time.sleep(0.1)


def sign_in(page, server: str, key: str) -> None:  # noqa: ANN001
    page.goto(f"{server}/login")
    page.fill("input[name=api_key]", key)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/")


@pytest.fixture(scope="module")
def context(browser, server: str, api_key: str):  # noqa: ANN001, ANN201
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = ctx.new_page()
    sign_in(page, server, api_key)
    page.close()
    yield ctx
    ctx.close()


@pytest.fixture(scope="module")
def dialogs() -> list[str]:
    return []


@pytest.fixture(scope="module")
def job_id(context, server: str, shots, dialogs) -> str:  # noqa: ANN001
    """sample.wav (two speakers, 30 s) uploaded through the page; returns its id once
    the list shows it succeeded."""
    page = context.new_page()
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{server}/")
    shots.take(page, "login-done-empty-list")
    page.set_input_files("#files", str(DATA / "sample.wav"))
    page.fill("input[name=num_speakers]", "2")
    page.fill("input[name=participants]", f"{HOSTILE}, Boris")
    page.click("#upload-button")
    wait_js(page, "() => document.getElementById('upload-status').textContent === 'Uploaded.'",
            timeout=60_000)
    assert page.eval_on_selector("#upload-progress", "p => p.value") == 100
    row = page.wait_for_selector("tr[data-job-id]")
    new_id = row.get_attribute("data-job-id")
    live = context.new_page()
    live.goto(f"{server}/jobs/{new_id}")
    live.wait_for_selector("#job-progress:not([hidden]), #transcript-view:not([hidden])")
    shots.take(live, "job-progress")
    # live progress: the row changes status without a reload
    page.wait_for_selector(f'tr[data-job-id="{new_id}"][data-status="succeeded"]',
                           timeout=FINISHED_S * 1000)
    shots.take(page, "jobs")
    # and the job's page turned from progress into the transcript by itself
    live.wait_for_selector("#transcript-view:not([hidden])", timeout=30_000)
    assert live.locator("#job-progress").is_hidden()
    live.close()
    page.close()
    return new_id


@pytest.fixture
def job_page(context, server: str, job_id: str, dialogs):  # noqa: ANN001, ANN201
    page = context.new_page()
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{server}/jobs/{job_id}")
    page.wait_for_selector("body[data-rendered=all]", timeout=30_000)
    wait_js(page, "() => document.getElementById('audio').readyState >= 1", timeout=30_000)
    yield page
    page.close()


def _result(page, job_id: str) -> dict:  # noqa: ANN001
    return page.evaluate("id => fetch(`/v1/jobs/${id}/result`).then(r => r.json())", job_id)


def test_upload_finishes_and_the_page_shows_it(job_page, job_id: str, shots) -> None:  # noqa: ANN001
    assert job_page.locator("#transcript .w").count() > 30
    assert job_page.locator("#transcript-view").is_visible()
    # the waveform came from the worker's peaks (the canvas is not blank)
    drawn = job_page.evaluate("""() => { const c = document.getElementById('wave-canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }""")
    assert drawn > 1000
    assert not job_page.locator("#wave.empty").count()
    shots.take(job_page, "job")


def test_timeline_has_one_lane_per_speaker(job_page, job_id: str) -> None:  # noqa: ANN001
    result = _result(job_page, job_id)
    assert len(result["speakers"]) == 2
    lanes = job_page.locator("#timeline .lane")
    assert lanes.count() == len(result["speakers"])
    for i, speaker in enumerate(result["speakers"]):
        blocks = lanes.nth(i).locator(".block").count()
        assert blocks == sum(t["speaker"] == speaker["id"] for t in result["diarization"])
    # clicking a block seeks to its turn
    turn = next(t for t in result["diarization"] if t["start"] > 5)
    lane = [s["id"] for s in result["speakers"]].index(turn["speaker"])
    block = lanes.nth(lane).locator(f'.block[data-t="{turn["start"]}"]')
    block.click()
    assert abs(job_page.evaluate("document.getElementById('audio').currentTime")
               - turn["start"]) < 0.05


def _word_starts(result: dict) -> list[tuple[str, float | None]]:
    return [(w["word"].strip(), w["start"]) for s in result["segments"] for w in s["words"]
            if w["word"].strip()]


def test_clicking_a_word_seeks_the_audio_there(job_page, job_id: str) -> None:  # noqa: ANN001
    words = _word_starts(_result(job_page, job_id))
    k = next(i for i, (_, start) in enumerate(words) if start and start > 12)
    span = job_page.locator(f'#transcript .w[data-i="{k}"]')
    assert span.inner_text() == words[k][0]
    span.click()
    now = job_page.evaluate("document.getElementById('audio').currentTime")
    assert abs(now - words[k][1]) < 0.05, (now, words[k])
    assert "now" in (span.get_attribute("class") or "")


def test_playback_highlights_words_and_changes_speed(job_page, shots) -> None:  # noqa: ANN001
    job_page.locator('#transcript .w[data-i="5"]').click()
    job_page.select_option("#speed", "1.5")
    assert job_page.evaluate("document.getElementById('audio').playbackRate") == 1.5
    job_page.evaluate("document.getElementById('audio').play()")
    wait_js(job_page, "() => Number(document.querySelector('#transcript .w.now')?.dataset.i) > 8",
            timeout=15_000)
    job_page.evaluate("document.getElementById('audio').pause()")
    assert job_page.locator("#transcript .w.now").count() == 1
    shots.take(job_page, "job-playing", full_page=False)


def test_hostile_participant_name_is_text(job_page, job_id: str, dialogs) -> None:  # noqa: ANN001
    names = {s["id"]: s["name"] for s in _result(job_page, job_id)["speakers"]}
    hostile_id = next(k for k, v in names.items() if v == HOSTILE)
    i = ["SPEAKER_00", "SPEAKER_01"].index(hostile_id)
    assert job_page.locator(f'.lane-name[data-s="{i}"]').inner_text() == HOSTILE
    assert job_page.locator(f'#transcript .who[data-s="{i}"]').first.inner_text() == HOSTILE
    assert job_page.locator('img[src="x"]').count() == 0
    assert job_page.evaluate("window.__pwned") is None
    assert dialogs == []


def test_rename_reaches_the_downloaded_srt(job_page, job_id: str, shots, tmp_path: Path) -> None:  # noqa: ANN001
    job_page.fill('input[data-id="SPEAKER_00"]', "Boris")
    job_page.fill('input[data-id="SPEAKER_01"]', "Anna")
    job_page.click("#save-speakers")
    wait_js(job_page,
            "() => document.getElementById('speakers-status').textContent.startsWith('Saved')")
    assert job_page.locator('.lane-name[data-s="1"]').inner_text() == "Anna"
    with job_page.expect_download() as info:
        job_page.click('#downloads a[data-format="srt"]')
    srt = Path(info.value.path()).read_text()
    assert "[Anna]" in srt and "[Boris]" in srt and "[SPEAKER_" not in srt
    assert HOSTILE not in srt
    assert info.value.suggested_filename == "sample.srt"
    result = _result(job_page, job_id)
    assert {s["id"]: s["name"] for s in result["speakers"]} == {"SPEAKER_00": "Boris",
                                                                "SPEAKER_01": "Anna"}
    job_page.reload()
    job_page.wait_for_selector("body[data-rendered=all]")
    assert job_page.locator('input[data-id="SPEAKER_01"]').input_value() == "Anna"
    wait_js(job_page, "() => document.getElementById('audio').readyState >= 1")
    job_page.locator('#transcript .w[data-i="20"]').click()  # a highlighted word in the shot
    shots.take(job_page, "job-renamed", full_page=False)


def test_transcript_text_with_html_is_text(context, server: str, settings, api_key: str,  # noqa: ANN001
                                           dialogs) -> None:
    job_id = str(uuid.uuid4())
    text = '<script>window.__pwned=2</script><b onmouseover="window.__pwned=3">bold</b>'
    now = utcnow()
    with session_scope(settings) as s:
        s.add(Job(id=job_id, status=SUCCEEDED, progress=1.0, options={}, queue="cpu",
                  api_key_id=authenticate(settings, api_key), audio_filename="x.wav",
                  created_at=now, updated_at=now, finished_at=now))
        s.flush()
        s.add(JobResult(job_id=job_id, created_at=now, data={
            "schema_version": 1, "job_id": job_id, "language": "en",
            "audio": {"duration": 3.0, "sample_rate": 16000},
            "speakers": [{"id": "SPEAKER_00", "name": None, "talk_time": 2.0}],
            "segments": [{"start": 0.5, "end": 2.5, "speaker": "SPEAKER_00", "text": text,
                          "words": [{"word": w, "start": 0.5 + i, "end": 1.0 + i,
                                     "score": 1.0, "speaker": "SPEAKER_00"}
                                    for i, w in enumerate(text.split(" "))]}],
            "diarization": [{"start": 0.5, "end": 2.5, "speaker": "SPEAKER_00"}],
            "models": {}, "timings": {}}))
    page = context.new_page()
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{server}/jobs/{job_id}")
    page.wait_for_selector("body[data-rendered=all]")
    shown = page.locator("#transcript .words").inner_text()
    assert "<script>" in shown and "<b" in shown
    assert page.locator("#transcript b, #transcript script").count() == 0
    page.hover("#transcript .w >> nth=1")
    assert page.evaluate("window.__pwned") is None and dialogs == []
    page.close()


def test_another_key_gets_a_404_page(browser, server: str, other_key: str, job_id: str,  # noqa: ANN001
                                     shots) -> None:
    ctx = browser.new_context()
    page = ctx.new_page()
    sign_in(page, server, other_key)
    assert page.locator("tr[data-job-id]").count() == 0  # their list does not show it
    resp = page.goto(f"{server}/jobs/{job_id}")
    assert resp.status == 404
    assert "Not found" in page.inner_text("h1")
    shots.take(page, "not-found")
    audio = page.evaluate("id => fetch(`/v1/jobs/${id}/audio`).then(r => r.status)", job_id)
    assert audio == 404
    ctx.close()


def test_a_file_over_the_limit_is_refused_before_upload(context, server: str,  # noqa: ANN001
                                                        tmp_path: Path) -> None:
    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * (3 << 20))  # DIARQ_MAX_UPLOAD_MB=2 in the tests
    page = context.new_page()
    page.goto(f"{server}/")
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.method))
    page.set_input_files("#files", str(big))
    page.click("#upload-button")
    assert "larger than 2 MB" in page.inner_text("#upload-status")
    assert "POST" not in requests
    page.close()


def test_dropped_files_make_a_batch_with_its_page(context, server: str, shots) -> None:  # noqa: ANN001
    page = context.new_page()
    page.goto(f"{server}/")
    wav = base64.b64encode((DATA / "jfk.wav").read_bytes()).decode()
    # a real drop event carrying two files, as dragging them from a file manager does
    page.evaluate("""async (b64) => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], "monday.wav", {type: "audio/wav"}));
        dt.items.add(new File([bytes], "tuesday.wav", {type: "audio/wav"}));
        const zone = document.getElementById("dropzone");
        const init = {dataTransfer: dt, bubbles: true, cancelable: true};
        zone.dispatchEvent(new DragEvent("dragover", init));
        zone.dispatchEvent(new DragEvent("drop", init));
    }""", wav)
    assert page.inner_text("#chosen") == "monday.wav, tuesday.wav"
    page.click("#upload-button")
    page.wait_for_url(f"{server}/batches/*", timeout=60_000)
    wait_js(page, "() => document.querySelectorAll('#batch-jobs tr').length === 2")
    wait_js(page, "() => document.querySelectorAll('#batch-jobs tr[data-status=succeeded]')"
            ".length === 2", timeout=FINISHED_S * 1000)
    assert "2 done" in page.inner_text("#batch-counts")
    shots.take(page, "batch")
    page.uncheck("#zip-form input[value=json]")
    page.check("#zip-form input[value=vtt]")
    with page.expect_download() as info:
        page.click("#zip-link")
    with zipfile.ZipFile(info.value.path()) as zf:
        assert sorted(zf.namelist()) == ["monday.srt", "monday.vtt", "tuesday.srt",
                                         "tuesday.vtt"]
    page.close()


def test_a_two_hour_transcript_renders_with_one_click_handler(context, server: str,  # noqa: ANN001
                                                              settings, api_key: str) -> None:
    """20 000 words: all in the page (in chunks), words clickable through one handler on
    the transcript, not one per word. Speed is measured in bench/web_page.py; the bound
    here only catches a page that stopped being incremental."""
    job_id = str(uuid.uuid4())
    now = utcnow()
    with session_scope(settings) as s:
        s.add(Job(id=job_id, status=SUCCEEDED, progress=1.0, options={}, queue="cpu",
                  api_key_id=authenticate(settings, api_key), audio_filename="long.wav",
                  audio_duration=7200.0, created_at=now, updated_at=now, finished_at=now))
        s.flush()
        s.add(JobResult(job_id=job_id, created_at=now,
                        data=synthetic_result(job_id, 20_000, 7200.0, speakers=4)))
    page = context.new_page()
    page.goto(f"{server}/jobs/{job_id}")
    page.wait_for_selector("body[data-ready=interactive]", timeout=20_000)
    # interactive before everything is built: the rest comes in later tasks
    assert 0 < int(page.get_attribute("body", "data-words-at-ready")) < 5_000
    page.wait_for_selector("body[data-rendered=all]", timeout=30_000)
    assert page.locator("#transcript .w").count() == 20_000
    assert page.locator("#timeline .lane").count() == 4
    cdp = context.new_cdp_session(page)

    def listeners(selector: str) -> list[str]:
        node = cdp.send("Runtime.evaluate",
                        {"expression": f"document.querySelector('{selector}')"})
        found = cdp.send("DOMDebugger.getEventListeners",
                         {"objectId": node["result"]["objectId"]})
        return [entry["type"] for entry in found["listeners"]]

    assert "click" in listeners("#transcript")
    assert listeners('#transcript .w[data-i="19999"]') == []
    assert listeners('#timeline .block') == []
    page.close()


def test_delete_from_the_job_page(context, server: str, settings) -> None:  # noqa: ANN001
    page = context.new_page()
    page.goto(f"{server}/")
    row = page.locator("tr[data-job-id]", has=page.locator("a", has_text="monday.wav"))
    job_id = row.get_attribute("data-job-id")  # a recording of the batch test
    with session_scope(settings) as s:
        audio = s.get(Job, job_id).audio_path
    page.goto(f"{server}/jobs/{job_id}")
    page.wait_for_selector("body[data-ready=interactive]")
    asked: list[str] = []
    page.on("dialog", lambda d: (asked.append(d.type), d.accept()))
    page.click("#delete-job")
    page.wait_for_url(f"{server}/")
    assert asked == ["confirm"]
    assert page.goto(f"{server}/jobs/{job_id}").status == 404
    with session_scope(settings) as s:
        assert s.get(Job, job_id).deleted_at is not None
    storage_dir = Path(settings.storage_dir)
    assert audio and not (storage_dir / audio).exists()
    page.close()
