import io
import tarfile
import zipfile

import pytest

from diarq.shared.archive import ArchiveError, ArchiveLimits, clean_entry_name, extract_archive


def _zip(path, entries):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return path


def test_nested_folders_extract_under_generated_names(tmp_path):
    arc = _zip(tmp_path / "a.zip", [("team/mon/standup.wav", b"RIFF1"), ("notes.txt", b"hi")])
    out = extract_archive(arc, tmp_path / "x")
    names = sorted(e.name for e in out.entries)
    assert names == ["notes.txt", "team/mon/standup.wav"]
    for e in out.entries:
        assert e.path.parent == tmp_path / "x"
        assert e.path.name not in ("standup.wav", "notes.txt")
    assert {e.name: e.path.read_bytes() for e in out.entries}["notes.txt"] == b"hi"


@pytest.mark.parametrize("bad", ["../../etc/passwd", "/etc/passwd", "a/../../b", "C:/x", ".."])
def test_traversal_names_are_refused(bad):
    assert clean_entry_name(bad) is None


def test_traversal_entry_is_skipped_and_nothing_escapes(tmp_path):
    arc = _zip(tmp_path / "evil.zip", [("../../evil.wav", b"x"), ("ok.wav", b"y")])
    out = extract_archive(arc, tmp_path / "x")
    assert [e.name for e in out.entries] == ["ok.wav"]
    assert out.skipped[0][0] == "../../evil.wav"
    assert not (tmp_path.parent / "evil.wav").exists()


def test_tar_symlinks_are_skipped(tmp_path):
    arc = tmp_path / "a.tar.gz"
    with tarfile.open(arc, "w:gz") as tf:
        link = tarfile.TarInfo("link.wav")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tf.addfile(link)
        data = b"RIFF" * 10
        info = tarfile.TarInfo("dir/real.wav")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    out = extract_archive(arc, tmp_path / "x")
    assert [e.name for e in out.entries] == ["dir/real.wav"]
    assert out.skipped == [("link.wav", "not a regular file (link or device)")]


def test_decompression_bomb_is_refused_while_extracting(tmp_path):
    arc = _zip(tmp_path / "bomb.zip", [("zeros.wav", b"\0" * (50 * 1024 * 1024))])
    with pytest.raises(ArchiveError) as err:
        extract_archive(arc, tmp_path / "x", limits=ArchiveLimits(max_ratio=100))
    assert err.value.code == "archive_bomb"
    assert list((tmp_path / "x").iterdir()) == []


def test_entry_count_limit(tmp_path):
    arc = _zip(tmp_path / "many.zip", [(f"{i}.wav", b"x") for i in range(11)])
    with pytest.raises(ArchiveError) as err:
        extract_archive(arc, tmp_path / "x", limits=ArchiveLimits(max_entries=10))
    assert err.value.code == "archive_too_many_entries"


def test_total_size_limit(tmp_path):
    arc = _zip(tmp_path / "big.zip", [(f"{i}.wav", bytes(range(256)) * 64) for i in range(4)])
    with pytest.raises(ArchiveError) as err:
        extract_archive(arc, tmp_path / "x", limits=ArchiveLimits(max_total_bytes=40000))
    assert err.value.code == "archive_too_large"


def test_not_an_archive_and_truncated(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"hello world" * 100)
    with pytest.raises(ArchiveError) as err:
        extract_archive(junk, tmp_path / "x")
    assert err.value.code == "archive_unsupported"
    good = _zip(tmp_path / "g.zip", [("a.wav", bytes(range(256)) * 400)])
    cut = tmp_path / "cut.zip"
    cut.write_bytes(good.read_bytes()[:-200])
    with pytest.raises(ArchiveError) as err:
        extract_archive(cut, tmp_path / "y")
    assert err.value.code == "archive_corrupt"
