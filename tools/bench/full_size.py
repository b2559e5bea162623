"""Full-size Speech Commands: how the clip bank and one training epoch scale with the number of clips.

    OMP_NUM_THREADS=1 python -m tools.bench.full_size --sample <speech_commands copy> \\
        --sizes 10000 105000 --work /tmp/full_size --out experiments/benchmark/full_size.csv

For each size it lays out a Speech Commands-shaped tree of that many clips under --work (the
sample's clips as hard links under new `<speaker>_nohash_<n>.wav` names, the 35 word folders,
validation_list.txt and testing_list.txt by the dataset's own hashing rule, 10 % each), then runs,
each in a fresh process whose memory is sampled from /proc every 50 ms:

  bank    index the tree (data=speech_commands data.labels=all) and build the train, val and test
          clip banks into an empty cache, one decoding thread
  reopen  the same again, now from the cache (manifest, shapes, CRC-32 of every sample)
  epoch   `train.py` for one epoch of a tiny model on the cached banks (no validation, no test)

and writes one CSV row per size and phase: seconds, clips/s, cache size on disk, peak RSS (VmHWM),
the peak of its anonymous part (the process's own memory: what must not grow with the data), of its
file-backed part (shared libraries and mapped files: the kernel's page cache, dropped under memory
pressure) and of the clip banks' mapped pages alone. The tree and the cache are deleted after each
size.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1  # Speech Commands' README: which_set()
CLIPS_PER_SPEAKER = 40
EPOCH_ARGS = ["model=bcresnet", "model.width=1", "augment=none", "optim=adamw", "scheduler=none",
              "+trainer.limit_val_batches=0", "test=false", "callbacks=none", "logger=none",
              "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def which_set(filename: str, validation_percentage: float = 10.0, testing_percentage: float = 10.0) -> str:
    """The dataset's split rule: a hash of the speaker part of the name, so a speaker stays in one split."""
    speaker = re.sub(r"_nohash_.*$", "", os.path.basename(filename))
    digest = int(hashlib.sha1(speaker.encode()).hexdigest(), 16)
    percentage = (digest % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
    if percentage < validation_percentage:
        return "validation"
    if percentage < validation_percentage + testing_percentage:
        return "testing"
    return "training"


def make_tree(sample: Path, out: Path, clips: int) -> dict[str, int]:
    """`clips` hard links to the sample's word clips under new names, and the two list files."""
    sources = sorted(p for p in sample.glob("*/*.wav") if not p.parent.name.startswith("_"))
    random.Random(0).shuffle(sources)  # consecutive clips, one speaker: several words
    lists = {"validation": [], "testing": []}
    counts: dict[tuple[str, str], int] = {}
    for i in range(clips):
        source = sources[i % len(sources)]
        word = source.parent.name
        speaker = f"{zlib.crc32(f'speaker{i // CLIPS_PER_SPEAKER}'.encode()):08x}"
        n = counts[speaker, word] = counts.get((speaker, word), -1) + 1
        name = f"{word}/{speaker}_nohash_{n}.wav"
        (out / word).mkdir(parents=True, exist_ok=True)
        os.link(source, out / name)
        split = which_set(name)
        if split in lists:
            lists[split].append(name)
    for split, names in lists.items():
        (out / f"{split}_list.txt").write_text("\n".join(names) + "\n")
    noise = sample / "_background_noise_"
    if noise.is_dir():
        shutil.copytree(noise, out / "_background_noise_", copy_function=os.link)
    return {split: len(names) for split, names in lists.items()}


def bank_phase(root: str, cache: str) -> dict:
    """Index the tree and build (or reopen) its three clip banks, one thread; timings as JSON."""
    import torch

    from audioclf.data.clips import load_or_build
    from audioclf.data.sources.speech_commands import SpeechCommandsSource

    torch.set_num_threads(1)
    started = time.perf_counter()
    source = SpeechCommandsSource(root=root, data_dir=cache, version="v0.02", url="", labels="all", download=False)
    splits = {split: source.clips(split) for split in ("train", "val", "test")}
    index_s = time.perf_counter() - started
    banks, seconds = {}, {}
    for split in splits:
        started = time.perf_counter()
        banks[split] = load_or_build(source, split, 16000, 16000, cache, workers=1)
        seconds[split] = time.perf_counter() - started
    return {"index_s": index_s, "clips": sum(len(b) for b in banks.values()),
            "train_clips": len(banks["train"]), "bank_s": sum(seconds.values()), "split_s": seconds}


class Memory:
    """Peaks of a process's memory until it ends (MB): VmHWM, RssAnon and RssFile from
    /proc/<pid>/status every 50 ms, and every 0.5 s the resident pages of its waves.npy mappings
    (the clip banks) from /proc/<pid>/smaps. RssFile also counts the shared libraries (torch's
    are about 0.5 GB)."""

    FIELDS = ("VmHWM", "RssAnon", "RssFile")

    def __init__(self, pid: int):
        self.pid, self.peak = pid, dict.fromkeys((*self.FIELDS, "bank_pages"), 0)
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()

    def watch(self) -> None:
        status, tick = Path(f"/proc/{self.pid}/status"), 0
        while True:
            try:
                text = status.read_text()
                if tick % 10 == 0:
                    self.peak["bank_pages"] = max(self.peak["bank_pages"], self.bank_pages())
            except OSError:
                return
            if "State:\tZ" in text:
                return
            for line in text.splitlines():
                key, _, value = line.partition(":")
                if key in self.FIELDS:
                    self.peak[key] = max(self.peak[key], int(value.split()[0]))
            tick += 1
            time.sleep(0.05)

    def bank_pages(self) -> int:
        total, in_bank = 0, False
        for line in Path(f"/proc/{self.pid}/smaps").read_text().splitlines():
            if line[:1] in "0123456789abcdef" and "-" in line.split(" ", 1)[0]:
                in_bank = line.endswith("waves.npy")
            elif in_bank and line.startswith("Rss:"):
                total += int(line.split()[1])
        return total

    def megabytes(self) -> dict[str, float]:
        self.thread.join()
        return {key: round(kb / 1024, 1) for key, kb in self.peak.items()}


def measured(args: list[str]) -> tuple[str, float, dict[str, float]]:
    """Run a command; its stdout, wall seconds and peak memory (MB)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    started = time.perf_counter()
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    memory = Memory(process.pid)
    out, err = process.communicate()
    seconds = time.perf_counter() - started
    if process.returncode:
        sys.exit(f"{' '.join(args)} failed:\n{err[-3000:]}")
    return out, seconds, memory.megabytes()


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def measure_size(sample: Path, work: Path, clips: int, phases: list[str]) -> list[dict]:
    root, cache, run = work / f"sc_{clips}", work / f"cache_{clips}", work / f"run_{clips}"
    for folder in (root, cache, run):
        shutil.rmtree(folder, ignore_errors=True)
    started = time.perf_counter()
    listed = make_tree(sample, root, clips)
    print(f"{clips} clips: tree in {time.perf_counter() - started:.1f} s ({listed})", flush=True)
    rows = []
    bank_cmd = [sys.executable, "-m", "tools.bench.full_size", "--phase-bank", str(root), str(cache)]
    for phase in [p for p in ("bank", "reopen") if p in phases]:
        out, wall, memory = measured(bank_cmd)
        result = json.loads(out.strip().splitlines()[-1])
        rows.append({"clips": clips, "phase": phase, "bank_clips": result["clips"], "index_s": result["index_s"],
                     "seconds": result["bank_s"], "clips_per_s": result["clips"] / result["bank_s"],
                     "wall_s": wall, "cache_mb": folder_bytes(cache) / 2**20, **memory})
        print(rows[-1], flush=True)
    if "epoch" in phases:
        rows.append(epoch_row(root, cache, run, clips, train_clips=result["train_clips"]))
    for folder in (root, cache, run):
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def epoch_row(root: Path, cache: Path, run: Path, clips: int, train_clips: int) -> dict:
    out, wall, memory = measured([sys.executable, "train.py", "data=speech_commands", f"data.root={root}",
                                  "data.download=false", "data.labels=all", "trainer.max_epochs=1",
                                  f"paths.cache_dir={cache}", f"hydra.run.dir={run}", *EPOCH_ARGS])
    metrics = json.loads((run / "metrics.json").read_text())
    row = {"clips": clips, "phase": "epoch", "bank_clips": train_clips, "index_s": "",
           "seconds": metrics["train_seconds"], "clips_per_s": train_clips / metrics["train_seconds"],
           "wall_s": wall, "cache_mb": folder_bytes(cache) / 2**20, **memory}
    print(row, flush=True)
    return row


def markdown(rows: list[dict]) -> str:
    """The README table: every phase at every size, then each phase's growth from the smallest size to the
    largest (x: ratio; +: added MB)."""
    lines = ["| phase | clips | index s | seconds | clips/s | cache MB | peak RSS MB | anon MB | file-backed MB "
             "| bank pages MB |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        index = f"{float(r['index_s']):.2f}" if r["index_s"] != "" else ""
        lines.append(f"| {r['phase']} | {int(r['bank_clips']):,} | {index} | {float(r['seconds']):.1f} | "
                     f"{float(r['clips_per_s']):,.0f} | {float(r['cache_mb']):,.0f} | {float(r['VmHWM']):,.0f} | "
                     f"{float(r['RssAnon']):,.0f} | {float(r['RssFile']):,.0f} | {float(r['bank_pages']):,.0f} |")
    sizes = sorted({int(r["clips"]) for r in rows})
    for phase in dict.fromkeys(r["phase"] for r in rows):
        small, large = ({**r} for size in (sizes[0], sizes[-1]) for r in rows
                        if r["phase"] == phase and int(r["clips"]) == size)
        ratio = {key: f"x{float(large[key]) / float(small[key]):.1f}"
                 for key in ("bank_clips", "seconds", "clips_per_s", "cache_mb")}
        added = {key: f"{float(large[key]) - float(small[key]):+,.0f}"
                 for key in ("VmHWM", "RssAnon", "RssFile", "bank_pages")}
        index = f"x{float(large['index_s']) / float(small['index_s']):.1f}" if small["index_s"] != "" else ""
        lines.append(f"| {phase}: {sizes[0] // 1000}k -> {sizes[-1] // 1000}k | {ratio['bank_clips']} | {index} | "
                     f"{ratio['seconds']} | {ratio['clips_per_s']} | {ratio['cache_mb']} | {added['VmHWM']} | "
                     f"{added['RssAnon']} | {added['RssFile']} | {added['bank_pages']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=Path, help="a Speech Commands copy whose word clips are reused")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 105000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/full_size"), help="trees and caches (deleted)")
    parser.add_argument("--out", type=Path, default=Path("experiments/benchmark/full_size.csv"))
    parser.add_argument("--phases", nargs="+", default=["bank", "reopen", "epoch"], choices=["bank", "reopen", "epoch"])
    parser.add_argument("--table", type=Path, help="print the README table of a CSV this wrote, and stop")
    parser.add_argument("--phase-bank", nargs=2, metavar=("ROOT", "CACHE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase_bank:
        print(json.dumps(bank_phase(*args.phase_bank)))
        return
    if args.table:
        print(markdown(list(csv.DictReader(args.table.open()))))
        return
    if args.sample is None or not args.sample.is_dir():
        parser.error(f"--sample {args.sample} is not a folder: give a Speech Commands copy")
    load = os.getloadavg()[0]
    rows = [row for clips in args.sizes for row in measure_size(args.sample, args.work, clips, args.phases)]
    load = f"{load:.2f}-{os.getloadavg()[0]:.2f}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as out:
        writer = csv.DictWriter(out, [*rows[0], "load"])
        writer.writeheader()
        for row in rows:
            writer.writerow({key: round(v, 3) if isinstance(v, float) else v for key, v in row.items()}
                            | {"load": load})
    print(markdown(list(csv.DictReader(args.out.open()))))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
