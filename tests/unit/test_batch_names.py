"""Names in batches: display names of uploaded entries, results.zip names, CLI output
names, and the streamed zip itself (no services needed)."""

from __future__ import annotations

import io
import zipfile

from diarq.api.batch_entries import source_name
from diarq.api.results_zip import result_stem, stream_results
from diarq.cli.batch import chunks, output_stems


def test_source_names_keep_folders_but_never_escape() -> None:
    assert source_name("team/mon/a.wav", "x") == "team/mon/a.wav"
    assert source_name("team\\win\\a.wav", "x") == "team/win/a.wav"
    assert source_name("../../etc/a.wav", "x") == "a.wav"
    assert source_name("/abs/a.wav", "x") == "a.wav"
    assert source_name("a\x00b.wav", "x") == "ab.wav"
    assert source_name("", "file-3") == "file-3"
    assert source_name("..", "file-3") == "file-3"


def test_result_stems_replace_the_extension_and_are_unique() -> None:
    used: set[str] = set()
    assert result_stem("team/a.wav", "id1", used) == "team/a"
    assert result_stem("team/a.mp3", "id2", used) == "team/a (2)"
    assert result_stem("TEAM/A.ogg", "id3", used) == "TEAM/A (3)"  # case-insensitive clash
    assert result_stem("noext", "id4", used) == "noext"
    assert result_stem(".hidden", "id5", used) == ".hidden"
    assert result_stem("../x.wav", "id6", used) == "id6"  # unsafe names fall back to the id
    assert result_stem(None, "id7", used) == "id7"


def test_stream_results_is_a_valid_zip_written_in_pieces() -> None:
    result = {"job_id": "j1", "audio": {"duration": 1.0, "sample_rate": 16000},
              "language": "en", "segments": [{"start": 0.0, "end": 1.0, "text": "hi",
                                              "speaker": "SPEAKER_00", "words": []}]}
    data = {"j1": result, "j2": None}  # j2 deleted meanwhile: left out
    pieces = list(stream_results([("j1", "a/b.wav"), ("j2", "c.wav")], data.get,
                                 ["srt", "json"]))
    # one piece per written job (j2 gives none), then the central directory on close
    assert len(pieces) == 2
    assert pieces[0].startswith(b"PK\x03\x04") and b"PK\x05\x06" not in pieces[0]
    assert b"PK\x05\x06" in pieces[1]
    with zipfile.ZipFile(io.BytesIO(b"".join(pieces))) as zf:
        assert sorted(zf.namelist()) == ["a/b.json", "a/b.srt"]
        assert "hi" in zf.read("a/b.srt").decode()


def test_cli_output_stems_and_chunks(tmp_path) -> None:  # noqa: ANN001
    assert output_stems(["a/b.wav", "a/b.mp3", "c.wav"]) == {
        "a/b.wav": "a/b.wav", "a/b.mp3": "a/b.mp3", "c.wav": "c"}
    files = []
    for i, size in enumerate([10, 10, 10, 50, 10]):
        p = tmp_path / f"{i}.wav"
        p.write_bytes(b"x" * size)
        files.append((p.name, p, "sha"))
    groups = [[rel for rel, _, _ in g] for g in chunks(files, max_files=2, max_bytes=40)]
    assert groups == [["0.wav", "1.wav"], ["2.wav"], ["3.wav"], ["4.wav"]]
