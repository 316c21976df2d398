"""The offline model directory: pinned hashes, idempotency, atomic rebuild."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from diarq.shared.errors import ModelError
from diarq.worker import offline_models as om


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    om.prepare_offline_models(root)
    return root


def test_layout_and_checks(prepared: Path) -> None:
    paths = om.offline_model_paths(prepared)
    assert (paths.whisper("base") / "model.bin").stat().st_size > 100_000_000
    assert (paths.whisper("tiny.en") / "model.bin").is_file()
    assert paths.diarization_config.is_file() and paths.segmentation.is_file()
    assert paths.embedding.is_file() and paths.speaker_embedding.is_file()
    assert (paths.nltk_data / "tokenizers/punkt_tab/english/abbrev_types.txt").is_file()
    checks = om.check_offline_models(prepared)
    assert [c.name for c in checks] == [c.name for c in om.COMPONENTS]
    assert all(c.ok for c in checks), checks


def test_second_run_does_not_copy_again(prepared: Path) -> None:
    model = om.offline_model_paths(prepared).whisper("base") / "model.bin"
    before = model.stat()
    calls: list[str] = []
    om.prepare_offline_models(prepared, progress=lambda label, done, total: calls.append(label))
    after = model.stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    assert calls == ["all components verified"]


def test_corrupted_file_is_caught_and_repaired(prepared: Path) -> None:
    seg = om.offline_model_paths(prepared).segmentation
    data = bytearray(seg.read_bytes())
    data[1000] ^= 0xFF
    seg.write_bytes(bytes(data))
    failing = [c for c in om.check_offline_models(prepared) if not c.ok]
    assert [c.name for c in failing] == ["diarization"]
    assert "SHA-256 mismatch" in failing[0].detail and "diarq models prepare" in failing[0].fix
    with pytest.raises(ModelError) as info:
        om.require_offline_models(prepared, ["diarization"])
    assert info.value.code == "offline_model_corrupt"
    om.prepare_offline_models(prepared)  # rebuilds only the damaged component
    assert all(c.ok for c in om.check_offline_models(prepared))
    assert not list(prepared.glob(".partial-*")) and not list(prepared.glob(".old-*"))


def test_missing_component_reported(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as info:
        om.require_offline_models(tmp_path, ["whisper-tiny.en"])
    assert info.value.code == "offline_model_missing"
    assert "diarq models prepare" in info.value.message


def test_missing_package_and_wrong_pin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = om.COMPONENTS[1]  # whisper-tiny.en
    first = real.outputs[0]
    absent = dataclasses.replace(first.sources[0], package="diarq_no_such_weights_pkg")
    comp = om.Component(real.name, (dataclasses.replace(first, sources=(absent,)),))
    monkeypatch.setattr(om, "COMPONENTS", (comp,))
    with pytest.raises(ModelError) as info:
        om.prepare_offline_models(tmp_path)
    assert info.value.code == "offline_model_missing" and "make install" in info.value.message

    # a package file whose content is not the pinned one is refused, nothing is left behind
    wrong = dataclasses.replace(first.sources[0], sha256="0" * 64)
    comp = om.Component(real.name, (om.Output(first.relpath, (wrong,), "0" * 64),))
    monkeypatch.setattr(om, "COMPONENTS", (comp,))
    with pytest.raises(ModelError) as info:
        om.prepare_offline_models(tmp_path)
    assert info.value.code == "offline_model_corrupt"
    assert not (tmp_path / real.name).exists()
    assert not list(tmp_path.glob(".partial-*"))
