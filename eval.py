"""Evaluate a checkpoint: python eval.py ckpt_path=<file.ckpt> [data=<dataset>] [split=test] (= audioclf-eval)."""

from audioclf.cli import evaluate

if __name__ == "__main__":
    evaluate()
