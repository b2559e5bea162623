"""Pack a Speech Commands tree losslessly (FLAC) so it fits a 64 MiB transfer, and unpack it back to WAV.

The lent GPU machine takes at most 64 MiB with the working tree; the sample's WAVs are 106 MB, their FLAC
about 50 MB. Written here: soundfile already reads and writes both, so no archive tool is needed.

    python experiments/kws_stream/pack_sample.py pack ../shared/data/speech_commands_sample .pack/sc
    python experiments/kws_stream/pack_sample.py unpack .pack/sc /tmp/sc     # on the device machine
"""

from __future__ import annotations

import argparse
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf


def convert(source: Path, target: Path, format: str) -> None:
    samples, rate = sf.read(source, dtype="int16")
    target.parent.mkdir(parents=True, exist_ok=True)
    sf.write(target, samples, rate, format=format, subtype="PCM_16")


def jobs(source: Path, target: Path, suffix: str, new_suffix: str) -> list[tuple[Path, Path]]:
    return [(path, (target / path.relative_to(source)).with_suffix(new_suffix))
            for path in sorted(source.rglob(f"*{suffix}"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("direction", choices=["pack", "unpack"])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    args = parser.parse_args()
    suffix, new_suffix, format = (".wav", ".flac", "FLAC") if args.direction == "pack" else (".flac", ".wav", "WAV")
    pairs = jobs(args.source, args.target, suffix, new_suffix)
    with ProcessPoolExecutor() as pool:
        list(pool.map(convert, *zip(*pairs, strict=True), [format] * len(pairs), chunksize=64))
    for other in args.source.iterdir():  # the split lists, README and LICENSE
        if other.is_file() and other.suffix != suffix:
            shutil.copy(other, args.target / other.name)
    check = pairs[len(pairs) // 2]
    assert np.array_equal(sf.read(check[0], dtype="int16")[0], sf.read(check[1], dtype="int16")[0])
    print(f"{args.direction}ed {len(pairs)} files into {args.target}")


if __name__ == "__main__":
    main()
