"""`python -m audioclf <task> [key=value ...]`: the console scripts without the PATH (see cli.py)."""

import sys

from audioclf import cli

TASKS = {"train": cli.train, "eval": cli.evaluate, "predict": cli.predict, "export": cli.export,
         "search": cli.search, "report": cli.report, "doctor": cli.doctor, "models": cli.models,
         "streams": cli.streams}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in TASKS:
        print(f"usage: python -m audioclf {{{','.join(TASKS)}}} [key=value ...]", file=sys.stderr)
        sys.exit(2)
    task = TASKS[sys.argv.pop(1)]
    task()
