"""Ensemble rung: average the softmax of a rung's seeds on each split; no training.

    .venv/bin/python experiments/unseen_speakers/ensemble.py LADDER/RUNG [LADDER/NEW_RUNG]

For every split of RUNG (official and each held-out speaker) the best checkpoints of all its
seeds (the ones train.py tested, checkpoints/epoch_*.ckpt) score that split's test clips; their
softmax outputs are averaged. Each split's accuracy goes to NEW_RUNG/<split>-s0/metrics.json
(default RUNG_ensemble) in the shape ladder.py reads, with the members' summed training time:
one ensemble per split, so the ladder shows it as one seed.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import torch

from audioclf.data.datamodule import AudioDataModule
from audioclf.lit.checkpoints import load_classifier


def best_checkpoint(run: Path) -> Path:
    found = sorted((run / "checkpoints").glob("epoch_*.ckpt"))
    if len(found) != 1:
        sys.exit(f"error: {run}/checkpoints holds {len(found)} epoch_*.ckpt files, expected the one best")
    return found[0]


@torch.no_grad()
def probabilities(ckpt: Path) -> tuple[torch.Tensor, torch.Tensor]:
    model = load_classifier(ckpt)
    data = dict(model.hparams["data"])
    datamodule = AudioDataModule(data, cache_dir=None, sample_rate=model.hparams.sample_rate)
    datamodule.setup("test")
    outputs, labels = [], []
    for waves, batch_labels in datamodule.test_dataloader():
        outputs.append(model(waves).float().softmax(dim=-1))
        labels.append(batch_labels)
    return torch.cat(outputs), torch.cat(labels)


def main(rung: Path, out: Path) -> None:
    runs = defaultdict(list)  # split -> its seeds' run folders
    for metrics_file in sorted(rung.glob("*/metrics.json")):
        runs[json.loads(metrics_file.read_text())["job"]["split"]].append(metrics_file.parent)
    what = (rung / "rung.txt").read_text().splitlines()
    out.mkdir(parents=True, exist_ok=True)
    overrides = what[1] if len(what) > 1 else ""
    (out / "rung.txt").write_text(f"ensemble: softmax mean of {rung.name}'s seeds\n{overrides}\n")
    for split, folders in sorted(runs.items()):
        members = [probabilities(best_checkpoint(folder)) for folder in folders]
        labels = members[0][1]
        if any(not torch.equal(other, labels) for _, other in members):
            sys.exit(f"error: the seeds of {split} were tested on different clips")
        mean = torch.stack([p for p, _ in members]).mean(dim=0)
        member_metrics = [json.loads((f / "metrics.json").read_text()) for f in folders]
        metrics = {
            "test/acc": float((mean.argmax(dim=-1) == labels).float().mean()),
            "members_test_acc": [m["test/acc"] for m in member_metrics],
            "train_seconds": sum(m["train_seconds"] for m in member_metrics),
            "epochs": member_metrics[0]["epochs"],
            "job": {"split": split, "seed": 0, "members": [str(f) for f in folders]},
        }
        (out / f"{split.removeprefix('speaker=')}-s0").mkdir(exist_ok=True)
        (out / f"{split.removeprefix('speaker=')}-s0" / "metrics.json").write_text(json.dumps(metrics, indent=2))
        print(f"{split}: ensemble {100 * metrics['test/acc']:.1f} %, members "
              + ", ".join(f"{100 * a:.1f}" for a in metrics["members_test_acc"]))


if __name__ == "__main__":
    source = Path(sys.argv[1])
    main(source, Path(sys.argv[2]) if len(sys.argv) > 2 else source.with_name(source.name + "_ensemble"))
