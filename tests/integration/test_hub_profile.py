"""The hub profile's production path in real workers, on real jobs, with no network: pipelines
shaped like pyannote/speaker-diarization-3.1 and -community-1 (tests/hub_shaped.py: real
architectures, real segmentation-3.0 weights, seeded random embedding/PLDA), WhisperX's
batched ASR on a local CTranslate2 model, and a seeded random wav2vec2 aligner loaded
through WhisperX's ``load_align_model(model_name=<dir>)``.

Random weights make speaker labels and aligned word times meaningless, so the checks are
about the code path: the job succeeds, the result names the pipeline, speaker counts asked
for are honoured, and word times come from the aligner (their CTC scores sit at the
random model's near-uniform level) or, for a language without one, from the ASR model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import hub_shaped
from tests.integration.services import ROOT, WorkerProcess, check_spec
from tests.integration.test_jobs import submit, wait_done

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MODELS = ROOT / "models"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hub-models")
    # a longer chunk step than pyannote's 0.1 keeps CI on 2 shared cores fast (same code)
    return {
        "3.1": hub_shaped.pipeline_31(root, segmentation_step=0.5),
        "community-1": hub_shaped.pipeline_community_1(root / "speaker-diarization-community-1",
                                                       segmentation_step=0.5),
        "wav2vec2": hub_shaped.wav2vec2_ctc(root / "wav2vec2-en-random"),
    }


def _hub_env(service_env: dict[str, str], pipeline: Path, aligner: Path) -> dict[str, str]:
    env = {k: v for k, v in service_env.items() if k not in ("HF_TOKEN", "HUGGINGFACE_HUB_TOKEN")}
    env.update({
        "DIARQ_PROFILE": "hub",
        "DIARQ_DEVICE": "cpu",
        "DIARQ_HUB_DIARIZATION_MODEL": str(pipeline),
        "DIARQ_ASR_MODEL": str(MODELS / "whisper-tiny.en"),  # a local CTranslate2 directory
        "DIARQ_ALIGN_MODELS": f"en={aligner}",
        "DIARQ_MODEL_DIR": str(MODELS),
        "HF_HUB_OFFLINE": "1",  # nothing may come from the hub
    })
    return env


@pytest.fixture(scope="module")
def worker_31(built, service_env, log_dir) -> Iterator[WorkerProcess]:  # noqa: ANN001
    if not (MODELS / "whisper-tiny.en").is_dir():
        pytest.fail("offline models missing: run `make models` (diarq models prepare) first")
    worker = WorkerProcess("hub31", _hub_env(service_env, built["3.1"], built["wav2vec2"]),
                           log_dir, queues="hub31")
    try:
        worker.wait_ready(timeout=300, marker="models loaded")
        yield worker
    finally:
        worker.stop()


def _result(client, job: dict, worker: WorkerProcess, timeout: float = 600) -> dict:  # noqa: ANN001
    done = wait_done(client, job["id"], timeout=timeout)
    assert done["status"] == "succeeded", (done, worker.log()[-3000:])
    return check_spec(client.get(f"/v1/jobs/{job['id']}/result"), "/v1/jobs/{id}/result",
                      "GET")


def test_31_shaped_pipeline_with_whisperx_and_wav2vec2_alignment(app_for_queue, worker_31,
                                                                 data_dir) -> None:  # noqa: ANN001
    client = app_for_queue("hub31").test_client()
    job = check_spec(submit(client, data_dir / "sample.wav", num_speakers="3"), "/v1/jobs",
                     "POST")
    result = _result(client, job, worker_31)
    models = result["models"]
    assert models["profile"] == "hub"
    dia = models["diarization"]
    assert dia["pipeline"] == "speaker-diarization-3.1" and dia["source"] == "local directory"
    assert dia["clustering"] == "AgglomerativeClustering" and dia["plda"].startswith("none")
    assert dia["segmentation"] == "pyannote/segmentation-3.0"
    assert len(result["speakers"]) == 3  # num_speakers passed through to pyannote
    assert models["asr"]["backend"] == "whisperx" and models["asr"]["name"] == "whisper-tiny.en"
    assert models["alignment"] == {"method": "wav2vec2", "language": "en",
                                   "model": "wav2vec2-en-random", "type": "huggingface"}
    words = [w for s in result["segments"] for w in s["words"]]
    assert len(words) > 30
    # the random CTC model's scores (near 1/vocabulary), not Whisper's word probabilities
    bound = hub_shaped.random_ctc_score_bound()
    assert all(w["score"] is not None and w["score"] < bound for w in words), words[:5]
    assert all(s["start"] <= w["start"] <= w["end"] <= s["end"] + 0.05
               for s in result["segments"] for w in s["words"] if w["start"] is not None)


def test_language_without_aligner_gets_asr_word_times(app_for_queue, worker_31,
                                                      data_dir) -> None:  # noqa: ANN001
    client = app_for_queue("hub31").test_client()
    # Welsh: WhisperX has no default aligner for it and DIARQ_ALIGN_MODELS names none;
    # base (multilingual) from the local model directory, through WhisperX's loader
    job = check_spec(submit(client, data_dir / "jfk.wav", language="cy", asr_model="base",
                            diarize="false"), "/v1/jobs", "POST")
    result = _result(client, job, worker_31)
    alignment = result["models"]["alignment"]
    assert alignment["method"] == "faster-whisper word timestamps"
    assert alignment["code"] == "align_model_missing"
    assert "DIARQ_ALIGN_MODELS" in alignment["note"] and "ASR model" in alignment["note"]
    words = [w for s in result["segments"] for w in s["words"]]
    assert words and all(w["start"] is not None for w in words)
    # Whisper's word probabilities, not the random aligner's (all below the bound): on
    # English audio forced to Welsh they spread widely and their median moves with the
    # CPU (0.21 on one machine, 0.03 on another), so the test asks for several words
    # above the bound rather than for a median
    bound = hub_shaped.random_ctc_score_bound()
    assert sum(w["score"] > bound for w in words) >= 3, [w["score"] for w in words]


def test_community_1_shaped_pipeline_with_its_plda(app_for_queue, built, service_env,
                                                   log_dir, data_dir) -> None:  # noqa: ANN001
    env = _hub_env(service_env, built["community-1"], built["wav2vec2"])
    worker = WorkerProcess("hubc1", env, log_dir, queues="hubc1")
    try:
        worker.wait_ready(timeout=300, marker="models loaded")
        client = app_for_queue("hubc1").test_client()
        job = check_spec(submit(client, data_dir / "sample.wav", min_speakers="4",
                                max_speakers="4", align="false"), "/v1/jobs", "POST")
        result = _result(client, job, worker)
    finally:
        worker.stop()
    dia = result["models"]["diarization"]
    assert dia["pipeline"] == "speaker-diarization-community-1"
    assert dia["clustering"] == "VBxClustering" and dia["plda"] == "$model/plda"
    assert len(result["speakers"]) == 4  # min/max_speakers passed through to pyannote
    assert "Traceback" not in worker.log()
