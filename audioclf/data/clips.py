"""The clip bank: every clip of a split decoded once into one int16 array.

Decoding, resampling and padding happen here, once per split, each clip written to
the cache file as it is decoded, so building a bank takes the same memory at 10k
clips as at 1M (the bank is never one array in this process). The result is
cached under `cache_dir` as `waves.npy` + `labels.npy` + `manifest.json` and
memory-mapped by later runs. The cache key covers the clip list (with file
sizes and modification times), the sample rate and the clip length, so a
changed, added, removed or touched file, rate or length selects a fresh
folder. On every load the manifest, the array shapes and dtypes and a CRC-32
over all samples and labels are checked (about a second per GB); a truncated
or corrupted cache is logged, rebuilt and never returned.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from audioclf.data.io import BadAudioFile, fit_length, resample, to_int16
from audioclf.data.sources import ClipRef, Source
from audioclf.errors import UserError

log = logging.getLogger(__name__)
FORMAT = 1


@dataclass
class ClipBank:
    waves: np.ndarray  # int16, (clips, samples); a memory map when loaded from cache
    labels: np.ndarray  # int64, (clips,)
    sample_rate: int
    source_ids: np.ndarray | None = None  # a mix's part of each clip (Source.source_ids); None: one source

    def __len__(self) -> int:
        return len(self.labels)


def map_by_name(bank: ClipBank, names: list[str], to_names: list[str]) -> ClipBank:
    """The clips of the classes `to_names` also has, labelled by their index in `to_names`."""
    index = np.array([to_names.index(name) if name in to_names else -1 for name in names])
    labels = index[np.asarray(bank.labels)]
    keep = labels >= 0
    return ClipBank(np.asarray(bank.waves)[keep], labels[keep], bank.sample_rate)


def load_or_build(
    source: Source,
    split: str,
    sample_rate: int,
    num_samples: int,
    cache_dir: str | Path | None,
    skip_bad_files: bool = False,
    workers: int | None = None,
) -> ClipBank:
    clips = source.clips(split)
    if not clips:
        raise UserError(
            f"the {split} split of data={source.name} is empty: check data.root and data.split"
        )
    if cache_dir is None:
        waves = np.zeros((len(clips), num_samples), dtype=np.int16)
        labels, skipped = decode(source, clips, sample_rate, num_samples, skip_bad_files, workers, RowWriter(waves))
        return with_source_ids(ClipBank(waves[: len(labels)], labels, sample_rate), source, clips, skipped)
    key = cache_key(source, clips, sample_rate, num_samples)
    folder = Path(cache_dir) / f"{source.name}-{split}-{sample_rate}hz-{key[:16]}"
    bank = load_cached(folder, key, sample_rate)
    if bank is None:
        try:
            build(folder, key, source, clips, sample_rate, num_samples, skip_bad_files, workers)
        except OSError as error:
            raise UserError(
                f"cannot write the clip cache {folder} ({error.strerror or error}): "
                "free disk space or point paths.cache_dir at a writable folder"
            ) from None
        bank = load_cached(folder, key, sample_rate)
        if bank is None:
            raise UserError(
                f"the clip cache {folder} did not read back intact after writing: "
                "check the disk, or point paths.cache_dir elsewhere"
            )
    return with_source_ids(bank, source, clips, lambda: skipped_files(folder))


def with_source_ids(bank: ClipBank, source: Source, clips: list[ClipRef], skipped) -> ClipBank:
    """The bank with each row's source id (a mix's part), from the clip list less the skipped files;
    kept out of the cache: a dictionary look-up per clip. `skipped`: the paths, or a function giving them."""
    ids = source.source_ids(clips)
    if ids is not None:
        gone = set(skipped() if callable(skipped) else skipped)
        bank.source_ids = ids[[clip.path not in gone for clip in clips]] if gone else ids
    return bank


def skipped_files(folder: Path) -> list[str]:
    return json.loads((folder / "manifest.json").read_text())["skipped"]


def cache_key(source: Source, clips: list[ClipRef], sample_rate: int, num_samples: int) -> str:
    digest = hashlib.sha256(f"{FORMAT}|{source.fingerprint()}|{sample_rate}|{num_samples}".encode())
    for clip in clips:
        try:
            stat = os.stat(clip.path)
            stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
        except OSError:
            stamp = "-"
        digest.update(f"\n{clip.path}|{clip.label}|{clip.start}|{clip.duration}|{stamp}".encode())
    return digest.hexdigest()


class RowWriter:
    """Puts decoded clips, in order, into the rows of an in-memory array."""

    def __init__(self, waves: np.ndarray):
        self.waves, self.rows = waves, 0

    def write(self, wave: np.ndarray) -> None:
        self.waves[self.rows] = wave
        self.rows += 1


class NpyWriter:
    """Appends decoded clips to a .npy file through ordinary writes, so a bank of any size is built
    in constant memory (the page cache holds what the disk has not taken yet, not this process).

    The header's row count is rewritten at the end, when the clips kept are known; its fixed length
    (HEADER_BYTES) makes that an in-place rewrite."""

    HEADER_BYTES = 128

    def __init__(self, path: Path, num_samples: int):
        self.file = open(path, "wb")  # closed in finish()
        self.num_samples, self.rows = num_samples, 0
        self.file.write(self.header(0))

    def header(self, rows: int) -> bytes:
        """An npy 1.0 header: magic, version, the length of the rest, the array's dict padded with spaces."""
        spec = repr({"descr": "<i2", "fortran_order": False, "shape": (rows, self.num_samples)})
        head = np.lib.format.magic(1, 0) + (self.HEADER_BYTES - 10).to_bytes(2, "little") + spec.encode("latin1")
        return head.ljust(self.HEADER_BYTES - 1, b" ") + b"\n"

    def write(self, wave: np.ndarray) -> None:
        self.file.write(np.ascontiguousarray(wave, dtype="<i2").data)
        self.rows += 1

    def finish(self) -> None:
        self.file.seek(0)
        self.file.write(self.header(self.rows))
        self.file.close()


def decode(source, clips, sample_rate, num_samples, skip_bad_files, workers, writer):
    """Decode clips in parallel, in order, into `writer`; returns (int64 labels, skipped paths).

    At most a few chunks of decoded clips are held at once, whatever the number of clips."""

    def load(clip: ClipRef):
        try:
            samples, rate = source.read(clip)
        except BadAudioFile as error:
            if not skip_bad_files:
                raise BadAudioFile(f"{error}, or set data.skip_bad_files=true to skip such files") from None
            return clip, str(error)
        return clip, to_int16(fit_length(resample(samples, rate, sample_rate), num_samples))

    labels, skipped = [], []
    workers = workers or min(8, os.cpu_count() or 1)
    chunk = 64 * workers
    progress = tqdm(
        total=len(clips), desc=f"decoding {source.name}", unit="clip", leave=False,
        disable=None,  # no bar in a log file (not a terminal)
    )
    with ThreadPoolExecutor(workers) as pool, progress:
        for start in range(0, len(clips), chunk):
            for clip, result in pool.map(load, clips[start : start + chunk]):
                if isinstance(result, str):
                    skipped.append(clip.path)
                else:
                    writer.write(result)
                    labels.append(clip.label)
            progress.update(min(chunk, len(clips) - start))
    if skipped:
        log.warning("skipped %d unreadable audio files (first: %s)", len(skipped), skipped[0])
    if not labels:
        raise UserError(f"every clip of data={source.name} failed to decode: check data.root")
    return np.array(labels, dtype=np.int64), skipped


def build(folder: Path, key, source, clips, sample_rate, num_samples, skip_bad_files, workers) -> None:
    """Decode straight into a private staging folder, then swap it in with one rename."""
    staging = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        write_staging(staging, key, source, clips, sample_rate, num_samples, skip_bad_files, workers)
        swap_in(staging, folder, key, sample_rate)
    finally:  # a bad file, a full disk, Ctrl-C, a lost race: leave no half-written bank (gigabytes at full size)
        shutil.rmtree(staging, ignore_errors=True)


def swap_in(staging: Path, folder: Path, key: str, sample_rate: int) -> None:
    """Rename `staging` to `folder`. An intact bank already there is another process's identical one:
    keep it (it may be in use). A damaged one is renamed aside first, so no reader sees it half-deleted."""
    for _ in range(3):
        try:
            staging.replace(folder)
            return
        except OSError:  # the folder exists and is not empty
            if load_cached(folder, key, sample_rate) is not None:
                return
            aside = folder.with_name(f"{folder.name}.old{os.getpid()}")
            try:
                folder.replace(aside)
            except FileNotFoundError:  # another process moved it aside first
                continue
            shutil.rmtree(aside, ignore_errors=True)
    staging.replace(folder)


def write_staging(staging: Path, key, source, clips, sample_rate, num_samples, skip_bad_files, workers) -> None:
    writer = NpyWriter(staging / "waves.npy", num_samples)
    try:
        labels, skipped = decode(source, clips, sample_rate, num_samples, skip_bad_files, workers, writer)
    finally:
        writer.finish()
    np.save(staging / "labels.npy", labels)
    manifest = {
        "format": FORMAT,
        "key": key,
        "sample_rate": sample_rate,
        "num_samples": num_samples,
        "count": len(labels),
        "crc32": file_checksum(np.load(staging / "waves.npy", mmap_mode="r"), labels),
        "files": [clip.path for clip in clips],
        "skipped": skipped,
    }
    (staging / "manifest.json").write_text(json.dumps(manifest))


def load_cached(folder: Path, key: str, sample_rate: int) -> ClipBank | None:
    """The cached bank, or None when it is missing, stale, truncated or corrupt."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        if manifest["key"] != key or manifest["format"] != FORMAT:
            return None
        waves = np.load(folder / "waves.npy", mmap_mode="r")
        labels = np.load(folder / "labels.npy")
        count = manifest["count"]
        if waves.dtype != np.int16 or waves.shape != (count, manifest["num_samples"]):
            raise ValueError(f"waves.npy holds {waves.dtype} {waves.shape}, manifest says int16 "
                             f"({count}, {manifest['num_samples']})")
        if labels.dtype != np.int64 or labels.shape != (count,):
            raise ValueError(
                f"labels.npy holds {labels.dtype} {labels.shape}, manifest says ({count},)"
            )
        if file_checksum(waves, labels) != manifest["crc32"]:
            raise ValueError("CRC-32 of the samples does not match the manifest")
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, AttributeError, OSError, EOFError) as error:
        log.warning("clip cache %s is damaged (%s); rebuilding it", folder, error)
        return None
    return ClipBank(waves, labels, sample_rate)


def file_checksum(waves: np.memmap, labels: np.ndarray) -> int:
    """CRC-32 of the labels, then of every sample, read from the file behind `waves` with plain reads:
    checking a bank does not map it into this process."""
    crc = zlib.crc32(np.ascontiguousarray(labels).data)
    buffer = memoryview(bytearray(1 << 20))
    with open(waves.filename, "rb") as stream:
        stream.seek(waves.offset)
        left = waves.nbytes
        while left:
            got = stream.readinto(buffer[: min(left, len(buffer))])
            if not got:
                raise ValueError("waves.npy ends before its last sample")
            crc = zlib.crc32(buffer[:got], crc)
            left -= got
    return crc
