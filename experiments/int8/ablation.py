"""Which parts of a model to quantize: the variants behind the recipe in audioclf/deploy/int8.py, on the
study's checkpoints. For each backbone it exports fp32 ONNX once, quantizes it five ways and scores
each on the test split against fp32: accuracy, top-1 agreement, size, CPU latency (batch 1, 1 thread).

    python experiments/int8/ablation.py logs/int8/<stamp> [backbone ...]   # writes ablation.md/.csv here
"""

from __future__ import annotations

import csv
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

from audioclf.config import compose_config
from audioclf.deploy import int8
from audioclf.deploy.export import example_input, export_onnx, first_line, quiet
from audioclf.lit.checkpoints import load_classifier
from audioclf.tasks.export import load_banks

# name -> (what it is, keep the frontend float, keep the first and last weight layer float, op types, calibration)
VARIANTS = {
    "all": ("every op onnxruntime can quantize, frontend included", False, False, None, "MinMax"),
    "backbone": ("every op of the backbone; frontend float", True, False, None, "MinMax"),
    "weights": ("backbone Conv/MatMul/Gemm only", True, False, int8.INT8_OPS, "MinMax"),
    "ends": ("... and the first and last weight layer float", True, True, int8.INT8_OPS, "MinMax"),
    "recipe": ("... with 99.999th-percentile activation ranges: the export's recipe", True, True, int8.INT8_OPS,
               "Percentile"),
}


def quantize(source: Path, target: Path, clips: np.ndarray, batch: int, variant: str) -> None:
    _, float_frontend, float_ends, op_types, method = VARIANTS[variant]
    boundary = int8.frontend_outputs(onnx.load(str(source)))
    prepared = int8.pre_process(source, boundary)
    frontend, layers = int8.split_graph(onnx.load(str(prepared)).graph, boundary)
    names = list(layers)
    excluded = (frontend if float_frontend else set()) | (set(names[:1] + names[-1:]) if float_ends else set())
    with quiet():
        quantize_static(str(prepared), str(target), int8.calibration_reader(clips, batch),
                        quant_format=QuantFormat.QDQ, op_types_to_quantize=list(op_types) if op_types else None,
                        per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=getattr(CalibrationMethod, method), nodes_to_exclude=sorted(excluded))


def measure(run: Path) -> list[dict]:
    cfg = compose_config("export", [f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "quantize=int8"])
    model = load_classifier(cfg.ckpt_path).cpu().eval()
    banks = load_banks(cfg, model, ["fit", "test"])
    clips = int8.sample_clips(banks["train"].waves, 256, seed=42)
    test, labels = banks["test"].waves, np.asarray(banks["test"].labels)
    clip = example_input(model, batch=1).numpy()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "model.onnx"
        batch = 64 if export_onnx(model, fp32) else 1
        session = int8.cpu_session(fp32)
        reference = int8.predict(session, test, batch)
        rows.append({"backbone": run.name, "variant": "fp32", "accuracy": float((reference == labels).mean()),
                     "agreement": 1.0, "size_mb": fp32.stat().st_size / 1e6,
                     "latency_ms": int8.latency_ms(session, clip)})
        for variant in VARIANTS:
            target = Path(tmp) / f"{variant}.onnx"
            try:
                quantize(fp32, target, clips, batch, variant)
            except Exception as error:  # noqa: BLE001 - a variant that fails is a row saying so
                rows.append({"backbone": run.name, "variant": variant, "error": first_line(error)})
                continue
            session = int8.cpu_session(target)
            predicted = int8.predict(session, test, batch)
            rows.append({"backbone": run.name, "variant": variant, "accuracy": float((predicted == labels).mean()),
                         "agreement": float((predicted == reference).mean()),
                         "size_mb": target.stat().st_size / 1e6, "latency_ms": int8.latency_ms(session, clip)})
            print(rows[-1], flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| backbone | variant | test acc % | = fp32 top-1 % | size MB | latency ms |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| `{r['backbone']}` | {r['variant']} | failed: {r['error']} | | | |")
        else:
            lines.append(f"| `{r['backbone']}` | {r['variant']} | {100 * r['accuracy']:.1f} | "
                         f"{100 * r['agreement']:.1f} | {r['size_mb']:.2f} | {r['latency_ms']:.2f} |")
    return "\n".join(lines) + "\n"


def main(runs: Path, backbones: list[str]) -> None:
    rows = [row for name in backbones for row in measure(runs / name)]
    out = Path(__file__).resolve().parent
    (out / "ablation.md").write_text(markdown(rows))
    with open(out / "ablation.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=["backbone", "variant", "accuracy", "agreement", "size_mb",
                                                  "latency_ms", "error"])
        writer.writeheader()
        writer.writerows(rows)
    print(markdown(rows))


if __name__ == "__main__":
    runs = Path(sys.argv[1])
    main(runs, sys.argv[2:] or sorted(p.name for p in runs.iterdir() if (p / "checkpoints" / "last.ckpt").is_file()))
