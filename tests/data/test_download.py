import hashlib
import tarfile
import zipfile

import pytest

from audioclf.data.download import DownloadError, download, fetch_and_extract
from audioclf.data.sources import build_source
from audioclf.data.sources.speech_commands import PUBLISHED_SHA256
from tests.conftest import compose_config, make_fsdd, make_speech_commands


def tarball(folder, archive):
    with tarfile.open(archive, "w:gz") as tf:
        for path in sorted(folder.rglob("*")):
            tf.add(path, arcname=str(path.relative_to(folder)))
    return archive


def test_speech_commands_downloads_verifies_and_extracts_from_a_file_url(tmp_path):
    archive = tarball(make_speech_commands(tmp_path / "src", per_word=3), tmp_path / "sc.tar.gz")
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    source = build_source(
        "speech_commands", root=None, data_dir=str(tmp_path / "data"), version="v0.02",
        url=archive.as_uri(), sha256=sha, labels="mini8",
    )
    extracted = tmp_path / "data" / "speech_commands_v0.02"
    assert (extracted / "validation_list.txt").is_file()
    assert len(source.clips("train")) == 8  # 8 words x (3 - 1 val - 1 test)
    assert not list((tmp_path / "data").glob("*.tar.gz"))  # the archive is removed after extraction
    again = build_source("speech_commands", root=None, data_dir=str(tmp_path / "data"),
                         version="v0.02", url="file:///does/not/exist.tar.gz", labels="mini8")
    assert again.root == extracted  # a second run uses the copy, no download


def test_fsdd_downloads_a_zip_with_a_top_level_folder(tmp_path):
    recordings = tmp_path / "src" / "free-spoken-digit-dataset-1.0.10" / "recordings"
    make_fsdd(recordings, speakers=("theo",), indices=range(10))
    archive = tmp_path / "fsdd.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in (tmp_path / "src").rglob("*.wav"):
            zf.write(path, path.relative_to(tmp_path / "src"))
    source = build_source("fsdd", root=None, data_dir=str(tmp_path / "data"), url=archive.as_uri())
    assert len(source.clips("test")) == 50


def test_checksum_mismatch_is_reported_and_nothing_is_kept(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"abc")
    with pytest.raises(DownloadError, match="expected 00"):
        download((tmp_path / "a.bin").as_uri(), tmp_path / "out" / "a.bin", sha256="00")
    assert not list((tmp_path / "out").iterdir())


def test_corrupt_archive_is_deleted_with_a_one_line_error(tmp_path):
    (tmp_path / "bad.tar.gz").write_bytes(b"not an archive at all")
    with pytest.raises(DownloadError, match="corrupt"):
        fetch_and_extract((tmp_path / "bad.tar.gz").as_uri(), tmp_path / "data" / "x")
    assert not (tmp_path / "data" / "bad.tar.gz").exists()


def test_unreachable_url_names_the_url_and_the_fix(tmp_path):
    with pytest.raises(DownloadError, match="point data.root"):
        download((tmp_path / "missing.tar.gz").as_uri(), tmp_path / "x.tar.gz")


@pytest.mark.parametrize("version", ["v0.01", "v0.02"])
def test_the_shipped_speech_commands_urls_have_a_published_checksum(version, tmp_path):
    cfg = compose_config(tmp_path, ["data=speech_commands", f"data.version={version}"])
    assert cfg.data.sha256 is None and len(PUBLISHED_SHA256[cfg.data.url]) == 64


def test_a_changed_archive_fails_the_published_checksum_and_is_not_kept(tmp_path, monkeypatch):
    archive = tarball(make_speech_commands(tmp_path / "src", per_word=2), tmp_path / "sc.tar.gz")
    monkeypatch.setitem(PUBLISHED_SHA256, archive.as_uri(), "0" * 64)  # as if this URL were published with it
    with pytest.raises(DownloadError, match=f"downloaded with sha256 [0-9a-f]{{64}}, expected {'0' * 64}"):
        build_source("speech_commands", root=None, data_dir=str(tmp_path / "data"), version="v0.02",
                     url=archive.as_uri(), labels="mini8")
    assert not list((tmp_path / "data").rglob("*.tar.gz*"))
    assert not (tmp_path / "data" / "speech_commands_v0.02").exists()
