"""The clip bank: every clip of a split decoded once into one int16 array.

Decoding, resampling and padding happen here, once per split. The result is
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
        waves, labels, skipped = decode(source, clips, sample_rate, num_samples, skip_bad_files, workers)
        return with_source_ids(ClipBank(waves, labels, sample_rate), source, clips, skipped)
    key = cache_key(source, clips, sample_rate, num_samples)
    folder = Path(cache_dir) / f"{source.name}-{split}-{sample_rate}hz-{key[:16]}"
    bank = load_cached(folder, key, sample_rate)
    if bank is None:
        waves, labels, skipped = decode(
            source, clips, sample_rate, num_samples, skip_bad_files, workers
        )
        try:
            save(folder, key, waves, labels, sample_rate, clips, skipped)
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


def decode(source, clips, sample_rate, num_samples, skip_bad_files, workers):
    """Decode clips in parallel into (int16 waves, int64 labels, skipped paths)."""

    def load(clip: ClipRef):
        try:
            samples, rate = source.read(clip)
        except BadAudioFile as error:
            if not skip_bad_files:
                raise BadAudioFile(f"{error}, or set data.skip_bad_files=true to skip such files") from None
            return clip, str(error)
        return clip, to_int16(fit_length(resample(samples, rate, sample_rate), num_samples))

    waves = np.zeros((len(clips), num_samples), dtype=np.int16)
    keep = np.ones(len(clips), dtype=bool)
    skipped = []
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(load, clips)
        progress = tqdm(
            results, total=len(clips), desc=f"decoding {source.name}", unit="clip", leave=False,
            disable=None,  # no bar in a log file (not a terminal)
        )
        for i, (clip, result) in enumerate(progress):
            if isinstance(result, str):
                keep[i] = False
                skipped.append(clip.path)
            else:
                waves[i] = result
    if skipped:
        log.warning("skipped %d unreadable audio files (first: %s)", len(skipped), skipped[0])
    labels = np.array([clip.label for clip in clips], dtype=np.int64)
    if not keep.any():
        raise UserError(f"every clip of data={source.name} failed to decode: check data.root")
    return waves[keep], labels[keep], skipped


def save(folder: Path, key, waves, labels, sample_rate, clips, skipped) -> None:
    """Write into a private staging folder, then swap it in with one rename."""
    staging = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    np.save(staging / "waves.npy", waves)
    np.save(staging / "labels.npy", labels)
    manifest = {
        "format": FORMAT,
        "key": key,
        "sample_rate": sample_rate,
        "num_samples": int(waves.shape[1]),
        "count": len(labels),
        "crc32": checksum(waves, labels),
        "files": [clip.path for clip in clips],
        "skipped": skipped,
    }
    (staging / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(folder, ignore_errors=True)
    try:
        staging.replace(folder)
    except OSError:  # another process put its (identical) bank there first
        if load_cached(folder, key, sample_rate) is None:
            raise
        shutil.rmtree(staging, ignore_errors=True)


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
        if checksum(waves, labels) != manifest["crc32"]:
            raise ValueError("CRC-32 of the samples does not match the manifest")
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, AttributeError, OSError, EOFError) as error:
        log.warning("clip cache %s is damaged (%s); rebuilding it", folder, error)
        return None
    return ClipBank(waves, labels, sample_rate)


def checksum(waves: np.ndarray, labels: np.ndarray) -> int:
    crc = zlib.crc32(np.ascontiguousarray(labels).data)
    step = 4096
    for start in range(0, len(waves), step):
        crc = zlib.crc32(np.ascontiguousarray(waves[start : start + step]).data, crc)
    return crc
