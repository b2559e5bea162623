"""Download a dataset archive with a progress bar, verify it, and extract it."""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from audioclf.errors import UserError

CHUNK = 1 << 20


class DownloadError(UserError):
    pass


def download(url: str, destination: Path, sha256: str | None = None) -> Path:
    """Fetch `url` (http(s) or file://) to `destination`, atomically, with a progress bar."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=destination.name) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError) as error:
        partial.unlink(missing_ok=True)
        reason = getattr(error, "reason", error)
        raise DownloadError(
            f"cannot download {url} ({reason}): check the network, or download it yourself "
            f"and point data.root at the extracted copy"
        ) from None
    if sha256 and digest.hexdigest() != sha256:
        partial.unlink(missing_ok=True)
        raise DownloadError(
            f"{url} downloaded with sha256 {digest.hexdigest()}, expected {sha256}: "
            "retry, or check data.sha256"
        )
    partial.replace(destination)
    return destination


def extract(archive: Path, target: Path) -> Path:
    """Extract a .tar.gz/.tgz/.tar or .zip archive into `target` (atomically)."""
    staging = target.with_name(target.name + ".extracting")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(staging)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(staging, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as error:
        shutil.rmtree(staging, ignore_errors=True)
        archive.unlink(missing_ok=True)
        raise DownloadError(
            f"archive {archive} is corrupt ({error}); it was deleted, run again to re-download"
        ) from None
    shutil.rmtree(target, ignore_errors=True)
    staging.replace(target)
    return target


def fetch_and_extract(url: str, target: Path, sha256: str | None = None) -> Path:
    """Download the archive at `url` next to `target` and extract it into `target`."""
    archive = target.with_name(url.rstrip("/").rsplit("/", 1)[-1])
    if not archive.exists():
        download(url, archive, sha256)
    extract(archive, target)
    archive.unlink()
    return target
