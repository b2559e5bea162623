"""The clip bank cache: bit-exact round trip, invalidation, corrupt-cache recovery."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from audioclf.data import clips
from audioclf.data.clips import load_or_build
from audioclf.data.sources.folder import FolderSource
from audioclf.errors import UserError
from tests.conftest import write_wav

RATE = 16000
LENGTH = 4000  # 0.25 s clips keep the tests fast


def make_tree(root: Path, per_class: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    """Two classes of PCM_16 WAVs of varied length; returns path -> the int16 samples written."""
    rng = np.random.default_rng(seed)
    written = {}
    for word in ("yes", "no"):
        for i in range(per_class):
            length = int(rng.integers(LENGTH // 2, LENGTH + 1))
            samples = rng.integers(-20000, 20000, length, dtype=np.int16)
            path = write_wav(root / word / f"{i:03d}.wav", samples, RATE)
            written[str(path)] = samples
    return written


def expected_bank(source: FolderSource, written: dict, length: int = LENGTH) -> np.ndarray:
    """What the bank must hold: the written samples, zero-padded or centre-cropped, bit for bit."""
    rows = []
    for clip in source.clips("train"):
        samples = written[clip.path]
        if len(samples) >= length:
            offset = (len(samples) - length) // 2
            rows.append(samples[offset : offset + length])
        else:
            rows.append(np.pad(samples, (0, length - len(samples))))
    return np.stack(rows)


def folder_source(root: Path) -> FolderSource:
    return FolderSource(str(root), val_ratio=0.0, test_ratio=0.0)


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "audio"
    return root, make_tree(root)


@pytest.fixture
def decodes(monkeypatch):
    """Counts how often the bank is decoded from the audio files (i.e. built, not loaded)."""
    calls = []
    real = clips.decode

    def spy(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(clips, "decode", spy)
    return calls


def bank_folder(cache: Path) -> Path:
    folders = [p for p in cache.iterdir() if p.is_dir()]
    assert len(folders) == 1, folders
    return folders[0]


def test_round_trip_is_bit_exact_and_memory_mapped(tree, tmp_path, decodes):
    root, written = tree
    source = folder_source(root)
    cache = tmp_path / "cache"
    built = load_or_build(source, "train", RATE, LENGTH, cache)
    loaded = load_or_build(folder_source(root), "train", RATE, LENGTH, cache)
    assert len(decodes) == 1  # the second call read the cache
    assert isinstance(loaded.waves, np.memmap)
    assert loaded.waves.dtype == np.int16 and loaded.waves.shape == (10, LENGTH)
    expected = expected_bank(source, written)
    np.testing.assert_array_equal(np.asarray(built.waves), expected)
    np.testing.assert_array_equal(np.asarray(loaded.waves), expected)
    np.testing.assert_array_equal(loaded.labels, [c.label for c in source.clips("train")])
    uncached = load_or_build(source, "train", RATE, LENGTH, None)
    np.testing.assert_array_equal(uncached.waves, expected)

    manifest = json.loads((bank_folder(cache) / "manifest.json").read_text())
    assert manifest["files"] == [c.path for c in source.clips("train")]
    assert manifest["sample_rate"] == RATE and manifest["num_samples"] == LENGTH
    assert manifest["count"] == 10 and isinstance(manifest["crc32"], int)


def test_center_crop_of_long_files(tmp_path):
    root = tmp_path / "audio"
    written = make_tree(root)
    source = folder_source(root)
    bank = load_or_build(source, "train", RATE, LENGTH // 4, tmp_path / "cache")
    expected = expected_bank(source, written, LENGTH // 4)
    np.testing.assert_array_equal(np.asarray(bank.waves), expected)


@pytest.mark.parametrize("change", ["file_added", "file_removed", "file_touched", "file_rewritten",
                                    "rate", "length"])
def test_changes_invalidate_the_cache(tree, tmp_path, decodes, change):
    root, written = tree
    cache = tmp_path / "cache"
    load_or_build(folder_source(root), "train", RATE, LENGTH, cache)
    rate, length = RATE, LENGTH
    first = next(iter(written))
    if change == "file_added":
        samples = np.ones(LENGTH, np.int16)
        written[str(write_wav(root / "no" / "new.wav", samples, RATE))] = samples
    elif change == "file_removed":
        os.remove(first)
        del written[first]
    elif change == "file_touched":
        stat = os.stat(first)
        os.utime(first, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    elif change == "file_rewritten":
        written[first] = np.full(LENGTH, 1234, np.int16)
        write_wav(Path(first), written[first], RATE)
    elif change == "rate":
        rate = 8000
    elif change == "length":
        length = LENGTH // 2
    source = folder_source(root)
    bank = load_or_build(source, "train", rate, length, cache)
    assert len(decodes) == 2, "the stale cache was used"
    if change != "rate":
        expected = expected_bank(source, written, length)
        np.testing.assert_array_equal(np.asarray(bank.waves), expected)
    assert bank.waves.shape == (len(written), length)
    load_or_build(source, "train", rate, length, cache)
    assert len(decodes) == 2, "the rebuilt cache was not reused"


def flip_bytes(path: Path, offset: int, count: int = 8) -> None:
    data = bytearray(path.read_bytes())
    offset = offset % len(data)
    data[offset : offset + count] = bytes(b ^ 0xFF for b in data[offset : offset + count])
    path.write_bytes(bytes(data))


def shorten(path: Path, by: int) -> None:
    os.truncate(path, path.stat().st_size - by)


DAMAGE = {
    "waves_truncated": lambda f: shorten(f / "waves.npy", 100),
    "waves_truncated_to_header": lambda f: os.truncate(f / "waves.npy", 40),
    "waves_empty": lambda f: os.truncate(f / "waves.npy", 0),
    "waves_samples_flipped": lambda f: flip_bytes(f / "waves.npy", -5000),
    "waves_header_flipped": lambda f: flip_bytes(f / "waves.npy", 20),
    "waves_missing": lambda f: os.remove(f / "waves.npy"),
    "labels_flipped": lambda f: flip_bytes(f / "labels.npy", -8, 1),
    "labels_truncated": lambda f: shorten(f / "labels.npy", 8),
    "manifest_not_json": lambda f: (f / "manifest.json").write_text("{\"key\": "),
    "manifest_a_list": lambda f: (f / "manifest.json").write_text("[1, 2]"),
    "manifest_missing_crc": lambda f: rewrite_manifest(f, lambda m: m.pop("crc32")),
    "manifest_wrong_count": lambda f: rewrite_manifest(f, lambda m: m.update(count=m["count"] - 1)),
    "manifest_missing": lambda f: os.remove(f / "manifest.json"),
}


def rewrite_manifest(folder: Path, edit) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    edit(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_cache_is_rebuilt_never_used(tree, tmp_path, decodes, damage, caplog):
    root, written = tree
    cache = tmp_path / "cache"
    source = folder_source(root)
    load_or_build(source, "train", RATE, LENGTH, cache)
    DAMAGE[damage](bank_folder(cache))
    with caplog.at_level(logging.WARNING, logger="audioclf.data.clips"):
        bank = load_or_build(folder_source(root), "train", RATE, LENGTH, cache)
    assert len(decodes) == 2, "the damaged cache was not rebuilt"
    np.testing.assert_array_equal(np.asarray(bank.waves), expected_bank(source, written))
    np.testing.assert_array_equal(bank.labels, [c.label for c in source.clips("train")])
    if not damage.endswith("missing"):
        assert "damaged" in caplog.text
    # the rebuilt cache is intact and used from now on
    load_or_build(folder_source(root), "train", RATE, LENGTH, cache)
    assert len(decodes) == 2


def test_unwritable_cache_dir_is_a_user_error(tree, tmp_path):
    root, _ = tree
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(UserError, match="paths.cache_dir"):
        load_or_build(folder_source(root), "train", RATE, LENGTH, blocker / "cache")


def test_stale_staging_folder_does_not_break_a_build(tree, tmp_path, decodes):
    root, written = tree
    cache = tmp_path / "cache"
    source = folder_source(root)
    load_or_build(source, "train", RATE, LENGTH, cache)
    folder = bank_folder(cache)
    leftover = folder.with_name(f"{folder.name}.tmp{os.getpid()}")  # an interrupted earlier write
    leftover.mkdir()
    (leftover / "waves.npy").write_bytes(b"half")
    os.remove(folder / "manifest.json")
    bank = load_or_build(folder_source(root), "train", RATE, LENGTH, cache)
    np.testing.assert_array_equal(np.asarray(bank.waves), expected_bank(source, written))
    assert not leftover.exists()


def test_unreadable_files_are_skipped_in_the_cached_bank(tree, tmp_path):
    root, written = tree
    bad = root / "no" / "broken.wav"
    bad.write_bytes(b"RIFF not really a wav")
    source = folder_source(root)
    bank = load_or_build(source, "train", RATE, LENGTH, tmp_path / "cache", skip_bad_files=True)
    kept = [c for c in source.clips("train") if c.path != str(bad)]
    assert isinstance(bank.waves, np.memmap) and bank.waves.shape == (len(kept), LENGTH)
    rows = [written[c.path] for c in kept]
    expected = np.stack([np.pad(r, (0, LENGTH - len(r))) if len(r) < LENGTH else r[:LENGTH] for r in rows])
    np.testing.assert_array_equal(np.asarray(bank.waves), expected)
    np.testing.assert_array_equal(bank.labels, [c.label for c in kept])
    manifest = json.loads((bank_folder(tmp_path / "cache") / "manifest.json").read_text())
    assert manifest["skipped"] == [str(bad)] and manifest["count"] == len(kept)


def test_a_bank_is_built_without_holding_it_in_memory(tmp_path):
    """Clips go to the cache file as they are decoded: the build's Python/numpy allocations stay a
    small fraction of the bank (before, the whole bank was one array, copied once more to drop
    skipped clips)."""
    import tracemalloc

    rng = np.random.default_rng(0)
    for i in range(600):
        write_wav(tmp_path / "audio" / ("yes" if i % 2 else "no") / f"{i:04d}.wav",
                  rng.integers(-9000, 9000, 400, dtype=np.int16), RATE)
    source = folder_source(tmp_path / "audio")
    length = 16000  # 600 clips x 1 s = 19.2 MB of int16
    tracemalloc.start()
    try:
        bank = load_or_build(source, "train", RATE, length, tmp_path / "cache", workers=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert bank.waves.nbytes == 600 * length * 2
    held, size = peak / 1e6, bank.waves.nbytes / 1e6
    assert held < size / 8, f"the build held {held:.1f} MB for a {size:.1f} MB bank"


def test_a_failed_build_leaves_no_partial_bank(tree, tmp_path):
    root, _ = tree
    (root / "no" / "broken.wav").write_bytes(b"RIFF not really a wav")
    cache = tmp_path / "cache"
    with pytest.raises(UserError, match="skip_bad_files"):
        load_or_build(folder_source(root), "train", RATE, LENGTH, cache)
    assert not cache.exists() or list(cache.iterdir()) == []


def build_in_child(root: str, cache: str, queue) -> None:
    try:
        bank = load_or_build(folder_source(Path(root)), "train", RATE, LENGTH, cache)
        queue.put(np.asarray(bank.waves).tobytes())
    except Exception as error:  # the parent asserts on it
        queue.put(repr(error))


def test_processes_building_one_bank_together_all_read_it(tree, tmp_path, monkeypatch):
    """Search workers on one machine share a cache: every process that builds the same bank at the same
    moment gets it intact, and one copy stays (a finished bank was once deleted under a reader)."""
    import multiprocessing

    context = multiprocessing.get_context("fork")  # the children inherit the patched write_staging
    together = context.Barrier(3)
    real = clips.write_staging

    def write_then_wait(*args, **kwargs):
        real(*args, **kwargs)
        together.wait(timeout=60)  # all three swap their staging folders in at once

    monkeypatch.setattr(clips, "write_staging", write_then_wait)
    root, written = tree
    queue = context.Queue()
    children = [context.Process(target=build_in_child, args=(str(root), str(tmp_path / "cache"), queue))
                for _ in range(3)]
    for child in children:
        child.start()
    results = [queue.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=60)
    expected = expected_bank(folder_source(root), written).tobytes()
    assert all(result == expected for result in results), [r for r in results if isinstance(r, str)]
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [bank_folder(tmp_path / "cache").name]


def test_a_build_that_loses_the_race_keeps_the_bank_in_place(tree, tmp_path):
    """A process that built the bank after another put it in place drops its own copy: the one in place
    may be open in the other process."""
    root, written = tree
    source = folder_source(root)
    cache = tmp_path / "cache"
    load_or_build(source, "train", RATE, LENGTH, cache)
    folder = bank_folder(cache)
    in_place = (folder / "waves.npy").stat().st_ino
    key = clips.cache_key(source, source.clips("train"), RATE, LENGTH)
    clips.build(folder, key, source, source.clips("train"), RATE, LENGTH, False, None)  # the loser's build
    assert (folder / "waves.npy").stat().st_ino == in_place
    assert [p.name for p in cache.iterdir()] == [folder.name]
    np.testing.assert_array_equal(np.asarray(clips.load_cached(folder, key, RATE).waves),
                                  expected_bank(source, written))
