"""Train a backbone: python train.py model=<name> data=<dataset> [key=value ...] (= audioclf-train)."""

from audioclf.cli import train

if __name__ == "__main__":
    train()
