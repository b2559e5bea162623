"""The int8 study's table: one row per backbone from <runs>/<backbone>/int8.json (written by run.sh)
and metrics.json (its parameter count). Writes results.md and results.csv.

    python experiments/int8/summarize.py logs/int8/<stamp> [experiments/int8]
    python experiments/int8/summarize.py experiments/int8/results.csv   # results.md again, from the CSV
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from audioclf.report.results import read_runs

COLUMNS = ["backbone", "params", "int8_layers", "int8_weights", "acc_fp32", "acc_int8", "agreement",
           "size_fp32_mb", "size_int8_mb", "latency_fp32_ms", "latency_int8_ms", "speedup", "error"]


def row(run: Path) -> dict:
    result = json.loads((run / "int8.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").is_file() else {}
    out = {"backbone": run.name, "params": metrics.get("params"), "error": result.get("error", "")}
    if "error" in result:
        return out
    out.update({
        "acc_fp32": result.get("accuracy_fp32"), "acc_int8": result.get("accuracy_int8"),
        "agreement": result.get("agreement"), "int8_layers": f"{result['int8_layers']}/{result['weight_layers']}",
        "int8_weights": result["int8_weight_share"],
        "size_fp32_mb": result["size_fp32"] / 1e6, "size_int8_mb": result["size_int8"] / 1e6,
        "latency_fp32_ms": result["latency_ms_fp32"], "latency_int8_ms": result["latency_ms_int8"],
        "speedup": result["latency_ms_fp32"] / result["latency_ms_int8"],
    })
    return out


def percent(value) -> str:
    return "" if value is None else f"{100 * value:.1f}"


def markdown(rows: list[dict]) -> str:
    lines = ["| backbone | params | int8 layers | int8 weights % | test acc % fp32 | int8 | int8 = fp32 top-1 % "
             "| size MB fp32 | int8 | latency ms fp32 | int8 | int8 speed-up |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    failed = []
    for r in rows:
        if r["error"]:
            failed.append(f"- `{r['backbone']}`: {r['error']}")
            continue
        lines.append(
            f"| `{r['backbone']}` | {r['params']:,} | {r['int8_layers']} | {percent(r['int8_weights'])} | "
            f"{percent(r['acc_fp32'])} | {percent(r['acc_int8'])} | {percent(r['agreement'])} | "
            f"{r['size_fp32_mb']:.2f} | {r['size_int8_mb']:.2f} | "
            f"{r['latency_fp32_ms']:.2f} | {r['latency_int8_ms']:.2f} | {r['speedup']:.2f}x |"
        )
    if failed:
        lines += ["", "Not quantized:", "", *failed]
    return "\n".join(lines) + "\n"


def rows_from_csv(path: Path) -> list[dict]:
    rows = read_runs(path)
    for r in rows:
        r["error"] = r["error"] if isinstance(r["error"], str) else ""  # an empty cell reads as NaN
    return rows


def main(source: Path, out: Path) -> None:
    if source.suffix == ".csv":
        rows = rows_from_csv(source)
    else:
        rows = [row(run) for run in sorted(source.iterdir()) if (run / "int8.json").is_file()]
        with open(out / "results.csv", "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    (out / "results.md").write_text(markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    source = Path(sys.argv[1])
    default_out = source.parent if source.suffix == ".csv" else Path("experiments/int8")
    main(source, Path(sys.argv[2]) if len(sys.argv) > 2 else default_out)
