"""Every figure the READMEs quote recomputes from the per-run results committed beside them.

A table claim names a README table row (the first line starting with `prefix`, searched from
the first line holding `after`) and the cells it must show, recomputed here from a study's
committed CSV through audioclf.report.results. A prose claim is a sentence fragment that must
appear in the README (line breaks ignored) with the recomputed figures filled in. Where a
study's own script writes its table, the lines that script makes from the CSV must appear in
the README as they are. Editing a figure in a README, or a row of a CSV, fails here.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import re
import statistics
from dataclasses import dataclass, field
from functools import cache

import pytest

from audioclf.report.results import by_arm, figure, pm, read_runs, values
from tests.conftest import ROOT

EXP = ROOT / "experiments"
CNN = "cnn_vs_rnn/results_runs.csv"
PREC = "precision/results_runs.csv"
GRU = "gru_labels/results_runs.csv"
LSTM = "lstm_preprocessing/results_runs.csv"
LSTM_LONG = "lstm_preprocessing/results_long_runs.csv"
PHASE = "phase/results_runs.csv"
PHASE_KWS = "phase/kws12_runs.csv"
RECIPES = "recipes/results_runs.csv"
SC_CHECK = "unseen_speakers/sc_check_runs.csv"


@cache
def runs(path: str):
    return by_arm(read_runs(EXP / path))


def acc(path: str, arm: str, metric: str = "test/acc", digits: int = 1) -> str:
    return figure(runs(path), arm, metric, 100.0, digits)


def plain(path: str, arm: str, metric: str, digits: int = 1) -> str:
    """Mean ± std of a metric kept as it is (percent already, counts, seconds)."""
    return pm(values(runs(path)[arm], metric).values(), digits)


def mean(path: str, arm: str, metric: str = "test/acc", scale: float = 100.0, digits: int = 1) -> str:
    found = list(values(runs(path)[arm], metric, scale).values())
    return f"{sum(found) / len(found):.{digits}f}"


def params(path: str, arm: str) -> str:
    return f"{int(next(iter(values(runs(path)[arm], 'params').values()))):,}"


def epoch_range(path: str, arm: str) -> str:
    found = values(runs(path)[arm], "epochs").values()
    low, high = int(min(found)), int(max(found))
    return f"{low}" if low == high else f"{low}-{high}"


def mean_epochs(path: str, arm: str) -> str:
    return mean(path, arm, "epochs", 1.0).removesuffix(".0")


@cache
def ladder() -> dict[str, dict[str, str]]:
    with (EXP / "unseen_speakers/ladder.csv").open() as file:
        return {row["rung"]: row for row in csv.DictReader(file)}


def rung(name: str, column: str = "LOSO") -> str:
    """A ladder cell as the README prints it: `67.7 ± 1.7`, or `69.1` for an ensemble (no std)."""
    row = ladder()[name]
    value, spread = float(row[f"{column} mean %" if column == "LOSO" else "official %"]), row[f"{column} std %"]
    if math.isnan(value):  # a rung run on the held-out speakers only
        return "-"
    if row["seeds"].startswith("ensemble"):
        return f"{value:.1f}"
    return f"{value:.1f} ± {float(spread):.1f}"


def rung_gain(name: str, base: str) -> str:
    """The LOSO mean of rung `name` less that of rung `base`, `+1.2`."""
    rows = ladder()
    return f"{float(rows[name]['LOSO mean %']) - float(rows[base]['LOSO mean %']):+.1f}"


def loso_mean(name: str) -> str:
    """A rung's LOSO mean alone, `74.9`."""
    return f"{float(ladder()[name]['LOSO mean %']):.1f}"


def load_script(relative: str):
    spec = importlib.util.spec_from_file_location(relative.replace("/", "_").removesuffix(".py"), EXP / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Row:
    readme: str
    prefix: str
    cells: dict[int, str]
    after: str = ""


@dataclass(frozen=True)
class Prose:
    readme: str
    text: str


@dataclass(frozen=True)
class Generated:
    readme: str
    script: str
    lines: tuple[str, ...] = field(repr=False)


def read(readme: str) -> str:
    return (ROOT / readme).read_text()


def table_row(readme: str, prefix: str, after: str = "") -> list[str]:
    lines = read(readme).splitlines()
    start = next((i for i, line in enumerate(lines) if after in line), None) if after else 0
    assert start is not None, f"{readme} has no line holding {after!r}"
    row = next((line for line in lines[start:] if line.startswith(prefix)), None)
    assert row is not None, f"{readme} has no table row starting {prefix!r} after {after!r}"
    return [cell.strip().replace("**", "").replace("`", "") for cell in row.strip().strip("|").split("|")]


def cnn_vs_rnn_rows() -> list[Row]:
    readme = "experiments/cnn_vs_rnn/README.md"
    kinds = {"gru": "recurrent", "bcresnet": "CNN", "crnn": "hybrid", "phase3d": "CNN (3D)", "cnn_baseline": "CNN",
             "parallel_cnn_lstm": "hybrid", "lstm_fsdd": "recurrent", "tf_cnn": "CNN"}
    rows = [
        Row(readme, f"| {model} | {kind} |", after="## Measured: FSDD", cells={
            2: acc(PREC, f"{model}-bf16-mixed"), 3: acc(PREC, f"{model}-bf16-mixed", "val/acc_best"),
            4: params(PREC, f"{model}-bf16-mixed"), 5: mean(PREC, f"{model}-bf16-mixed", "seconds_per_epoch", 1.0)})
        for model, kind in kinds.items()
    ]
    for model in ("bcresnet", "gru", "crnn", "cnn_baseline", "parallel_cnn_lstm", "tf_cnn"):
        arm = f"kws12_{model}"
        rows.append(Row(readme, f"| {model} | {kinds[model]} |", after="## Measured: kws12", cells={
            2: acc(CNN, arm), 3: acc(CNN, arm, "test/f1_macro"), 4: acc(CNN, arm, "val/acc_best"),
            5: params(CNN, arm), 6: mean_epochs(CNN, arm), 7: mean(CNN, arm, "seconds_per_epoch", 1.0)}))
    return rows


def gru_labels_rows() -> list[Row]:
    readme = "experiments/gru_labels/README.md"
    arms = {"| 1 | posted:": "1_posted", "| 2 | posted with dropout 0.2": "2_posted_dropout02",
            "| 3 | clip-level softmax head": "3_clip_head_only", "| 4 | all fixes": "4_fixed"}
    return [
        Row(readme, prefix, cells={
            2: acc(GRU, arm), 3: acc(GRU, arm, "val/acc_best"), 4: params(GRU, arm),
            5: mean(GRU, arm, "seconds_per_epoch", 1.0), 6: epoch_range(GRU, arm)})
        for prefix, arm in arms.items()
    ]


def lstm_rows() -> list[Row]:
    readme = "experiments/lstm_preprocessing/README.md"
    arms = {"| log-mel, 0.5 s": "logmel80_0.5s", "| log-mel, 1 s zero-padded": "logmel80_1.0s",
            "| raw power over frames, 0.5 s": "raw_frames_0.5s",
            "| raw power over mel bands (posted), 0.5 s": "raw_power_mel_0.5s",
            "| raw power over mel bands (posted), 1 s": "raw_power_mel_1.0s"}
    rows = []
    for prefix, arm in arms.items():
        for path, row_prefix, after in ((LSTM, prefix, ""), (LSTM_LONG, "| ... longer", prefix)):
            if arm not in runs(path):
                continue
            rows.append(Row(readme, row_prefix, after=after, cells={
                2: acc(path, arm), 3: acc(path, arm, "val/acc_best"), 4: params(path, arm),
                5: mean(path, arm, "seconds_per_epoch", 1.0, 2), 6: epoch_range(path, arm)}))
    return rows


def phase_rows() -> list[Row]:
    readme = "experiments/phase/README.md"
    fsdd = {"magnitude": (PHASE, "fsdd_magnitude"), "phase2d": (PREC, "phase2d-bf16-mixed"),
            "phase3d": (PREC, "phase3d-bf16-mixed")}
    rows = [
        Row(readme, f"| {name} |", after="## Measured: FSDD", cells={
            1: acc(path, arm), 2: acc(path, arm, "val/acc_best"), 3: params(path, arm),
            4: mean(path, arm, "seconds_per_epoch", 1.0)})
        for name, (path, arm) in fsdd.items()
    ]
    columns = ("test_acc", "silence_recall", "unknown_recall", "command_recall", "held_out_alarms_per_hour",
               "seen_alarms_per_hour", "epochs")
    for arm in ("magnitude", "phase2d", "phase3d"):
        cells = {i + 1: plain(PHASE_KWS, arm, column) for i, column in enumerate(columns)}
        cells[8] = plain(PHASE_KWS, arm, "train_seconds", 0)
        rows.append(Row(readme, f"| {arm} |", after="## Measured: kws12", cells=cells))
    windows = read_runs(EXP / "phase/noise_windows_runs.csv")
    for arm in ("magnitude", "phase2d", "phase3d"):
        for noise, shown in (("held_out", "held-out"), ("seen", "seen")):
            group = [r for r in windows if r["arm"] == arm and r["noise"] == noise]
            cells = {i + 2: pm((r[key] for r in group), digits)
                     for i, (key, digits) in enumerate((("silence", 1), ("unknown", 1), ("command", 1),
                                                        ("top_command_probability", 3)))}
            rows.append(Row(readme, f"| {arm} | {shown} |", cells=cells))
    return rows


def protocol_rows() -> list[Row]:
    """bcresnet's paper recipe on the SC sample in three studies: experiments/README.md's table."""
    arms = {"| recipes |": (RECIPES, "bcresnet_sc_paper"), "| unseen_speakers (sc_check) |": (SC_CHECK, "bcr_paper"),
            "| cnn_vs_rnn |": (CNN, "kws12_bcresnet")}
    return [
        Row("experiments/README.md", prefix, after="## One configuration, three figures", cells={
            1: acc(path, arm), 2: ", ".join(f"{v:.1f}" for v in values(runs(path)[arm], "test/acc", 100).values())})
        for prefix, (path, arm) in arms.items()
    ]


def ladder_rows() -> list[Row]:
    readme = "experiments/unseen_speakers/README.md"
    speakers = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
    rows = []
    for name, row in ladder().items():
        cells = {2: rung(name), 3: f"{row['worst speaker']} {float(row['worst %']):.1f}", 10: rung(name, "official")}
        cells.update({4 + i: f"{float(row[f'{sp} %']):.1f}" for i, sp in enumerate(speakers)})
        rows.append(Row(readme, f"| {name} |", cells=cells))
    return rows


def generated() -> list[Generated]:
    recipes = load_script("recipes/summarize.py")
    precision = load_script("precision/summarize.py")
    sc_check = load_script("unseen_speakers/sc_check.py")
    int8 = load_script("int8/summarize.py")
    nested = load_script("unseen_speakers/nested.py")
    ladder_runs = nested.read_runs(EXP / "unseen_speakers/ladder_runs.csv")
    sc_runs = {arm: values(seeds, "test/acc", 100) for arm, seeds in runs(SC_CHECK).items()}
    int8_rows = int8.rows_from_csv(EXP / "int8/results.csv")
    tables = {
        "experiments/recipes/README.md": ("recipes/summarize.py", recipes.tables(runs(RECIPES))),
        "experiments/precision/README.md": (
            "precision/summarize.py", precision.summary(EXP / "precision").splitlines()),
        "experiments/unseen_speakers/README.md": ("unseen_speakers/sc_check.py", sc_check.table(sc_runs)),
        "experiments/int8/README.md": ("int8/summarize.py", int8.markdown(int8_rows).splitlines()),
    }
    nested_lines = ("unseen_speakers/nested.py", nested.table(ladder_runs, nested.candidates(ladder_runs)))
    return [
        Generated(readme, script, tuple(line for line in lines if line.startswith("| ")))
        for readme, (script, lines) in [*tables.items(), ("experiments/unseen_speakers/README.md", nested_lines)]
    ]


def doctor_rows() -> list[Row]:
    with (EXP / "doctor/results.csv").open() as file:
        rows = list(csv.DictReader(file))
    return [
        Row("experiments/doctor/README.md", f"| {r['backbone']} |",
            cells={1: f"{float(r['seconds']):.1f}", 2: r["problems"]})
        for r in rows
    ]


def json_tables() -> list[Generated]:
    """Timing studies that keep their raw results as JSON: the README rows those files give."""
    streaming = json.loads((EXP / "streaming/results.json").read_text())
    hops = tuple(
        f"| `{r['backbone']}` | {r['features']} | {r['hop_ms']:.1f} | {r['new_frames']} + {r['edge_frames']} / "
        f"{r['window_frames']} | {r['frontend_windowed']:.2f} | {r['frontend_stateful']:.2f} | {r['windowed']:.2f} | "
        f"{r['stateful']:.2f} | {r['rtf_windowed']:.3f} | {r['rtf_stateful']:.3f} |"
        for r in streaming
    )
    dashboards = []
    for name in ("results.json", "results_gru.json"):
        r = json.loads((EXP / "dashboards" / name).read_text())
        repeats = f"{r['repeats']} repeat{'s' if r['repeats'] > 1 else ''}"
        dashboards.append(
            f"| `{r['model']}` ({repeats}) | {r['seconds_per_epoch_off']:.2f} | {r['seconds_per_epoch_on']:.2f} | "
            f"{r['hook_seconds_per_epoch']:.3f} | **{r['hook_share_percent']:.1f} %** | "
            f"{r['test_hook_seconds']:.2f} s |")
    from tools.bench import step
    from tools.bench.stream import format_table

    carried = [Generated("experiments/streaming/README.md", f"streaming/{name}",
                         tuple(format_table(json.loads((EXP / "streaming" / name).read_text())).splitlines()))
               for name in ("stateful.json", "stateful_compiled.json")]
    carried.append(Generated("experiments/streaming/README.md", "streaming/step.json", tuple(
        step.format_table(json.loads((EXP / "streaming/step.json").read_text())).splitlines())))
    from tools.bench.train_speed import format_report

    speed = json.loads((EXP / "benchmark/train_speed.json").read_text())
    train_speed = Generated("experiments/benchmark/README.md", "benchmark/train_speed.json",
                            tuple(line for line in format_report(speed).splitlines() if line.startswith("|")))
    return [Generated("experiments/streaming/README.md", "streaming/results.json", hops), *carried, train_speed,
            Generated("experiments/dashboards/README.md", "dashboards/results*.json", tuple(dashboards))]


def full_size() -> tuple[list[Generated], list[Prose]]:
    """experiments/benchmark/README.md, full size: the table tools/bench/full_size.py makes from its CSV,
    and the figures its answer quotes from that CSV and the before-the-fix run."""
    from tools.bench.full_size import markdown

    readme = "experiments/benchmark/README.md"
    with (EXP / "benchmark/full_size.csv").open() as file:
        rows = list(csv.DictReader(file))
    with (EXP / "benchmark/full_size_before.csv").open() as file:
        (before,) = list(csv.DictReader(file))
    at = {(int(r["clips"]), r["phase"]): r for r in rows}

    def mb(row, key="VmHWM"):
        return f"{float(row[key]):,.0f} MB"

    table = Generated(readme, "benchmark/full_size.csv", tuple(markdown(rows).splitlines()[2:]))
    claims = [
        Prose(readme, f"peak RSS {mb(before)}, of it {mb(before, 'RssAnon')} anonymous, bank built in "
                      f"{float(before['seconds']):.1f} s"),
        Prose(readme, f"peaks at {mb(at[105000, 'bank'])} resident ({mb(at[10000, 'bank'])} at 10k), against "
                      f"{mb(before)} before"),
        Prose(readme, f"One epoch over 84k clips peaks at {float(at[105000, 'epoch']['VmHWM']):,.0f} MB resident: "
                      f"{mb(at[105000, 'epoch'], 'RssAnon')} anonymous ({mb(at[10000, 'epoch'], 'RssAnon')} at 10k"),
        Prose(readme, f"and {float(at[105000, 'epoch']['bank_pages']):,.0f} MB of the train bank's mapped pages"),
        Prose(readme, f"{float(at[10000, 'bank']['clips_per_s']):,.0f} clips/s at 10k, "
                      f"{float(at[105000, 'bank']['clips_per_s']):,.0f} at 105k"),
        Prose("README.md", f"the build peaks at {mb(at[105000, 'bank'])} resident against {mb(before)} before"),
    ]
    return [table], claims


def doctor_seconds(pick) -> str:
    with (EXP / "doctor/results.csv").open() as file:
        return f"{pick(float(r['seconds']) for r in csv.DictReader(file)):.1f}"


def hop(key: str, digits: int = 2) -> str:
    """bcresnet's 100 ms hop in the streaming study's results.json."""
    rows = json.loads((EXP / "streaming/results.json").read_text())
    row = next(r for r in rows if r["backbone"] == "bcresnet" and r["hop_ms"] == 100.0)
    return f"{row[key]:.{digits}f}"


def default_run(val_speaker: str) -> str:
    """george's test accuracy (%) in one run of experiment=fsdd_unseen_speaker at its default seed."""
    with (EXP / "unseen_speakers/default_runs.csv").open() as file:
        row = next(r for r in csv.DictReader(file) if r["val_speaker"] == val_speaker)
    return f"{100 * float(row['test/acc']):.1f}"


def nested_claims(top: str, us: str) -> list[Prose]:
    """The nested-selection figures quoted in prose, from ladder_runs.csv through nested.py."""
    nested = load_script("unseen_speakers/nested.py")
    ladder_runs = nested.read_runs(EXP / "unseen_speakers/ladder_runs.csv")
    per_seed = nested.loso_per_seed(nested.choose(ladder_runs, nested.candidates(ladder_runs)))
    figure_ = pm(per_seed.values())
    mix, recipe = (nested.fixed_rung(ladder_runs, rung)[0] for rung in ("17_mix_sc_digits", "16_recipe_val_speaker"))
    official = [r["test/acc"] for r in ladder_runs if r["rung"] == "17_mix_sc_digits" and r["split"] == "official"]
    gains = ", ".join(f"{mix[seed] - recipe[seed]:+.1f}" for seed in sorted(mix))
    return [
        Prose(top, f"leave-one-speaker-out gives {figure_} % (5 seeds)"),
        Prose("experiments/README.md", f"(nested, 5 seeds): {figure_} %; validation prefers mixing the SC sample's "
              f"186 digit clips into training ({rung('17_mix_sc_digits')} % vs "
              f"{rung('16_recipe_val_speaker')} % without, both with a validation speaker held out; official split "
              f"{rung('17_mix_sc_digits', 'official')} %"),
        Prose(us, f"split: **{rung('17_mix_sc_digits', 'official')} %** for rung 17 (seeds: "
                  + ", ".join(f"{acc:.1f}" for acc in official) + " %)"),
        Prose(us, f"rung 18 gives {rung('18_sc_pretrained', 'official')} % there (5 seeds)"),
        Prose(us, f"**Nested LOSO: {figure_} % (worst seed {nested.worst(per_seed).split(' ')[0]} %)**"),
        Prose(us, f"leave-one-speaker-out is **{figure_} %** (worst seed {nested.worst(per_seed).split(' ')[0]} %"),
        Prose(us, f"at the config's default seed (42) george scores **{default_run('auto')} %**"),
        Prose(us, f"picked epoch 5 of 20 (their validation was 99.2 % by then) and scored **{default_run('seen')} %**"),
        Prose(top, f"george scores {default_run('auto')} % at the default seed"),
        Prose(us, f"{rung('17_mix_sc_digits')} %, against {rung('16_recipe_val_speaker')} % for rung 16 "
                  f"({statistics.fmean(mix.values()) - statistics.fmean(recipe.values()):+.1f}; "
                  f"per seed {gains})"),
    ]


def prose() -> list[Prose]:
    top, studies, us = "README.md", "experiments/README.md", "experiments/unseen_speakers/README.md"
    kws = "experiments/kws_stream/README.md"
    bcr = "bcresnet_sc_paper"
    return [
        *nested_claims(top, us),
        # README.md
        Prose(top, f"bcresnet {acc(RECIPES, bcr)} % vs {acc(RECIPES, 'bcresnet_sc_old')} %, matchboxnet "
                   f"{acc(RECIPES, 'matchbox_sc_paper')} % vs {acc(RECIPES, 'matchbox_sc_old')} %"),
        Prose(top, f"({mean(RECIPES, 'bcresnet_fsdd_paper')} vs {mean(RECIPES, 'bcresnet_fsdd_old')} %)"),
        Prose(top, f"({mean(RECIPES, 'kwt_sc_paper')} vs {mean(RECIPES, 'kwt_sc_old')} %)"),
        Prose(top, f"gru reaches {acc(PREC, 'gru-bf16-mixed')} % in 10 epochs, bcresnet "
                   f"{acc(PREC, 'bcresnet-bf16-mixed')} % in the same 10"),
        Prose(top, f"scores {rung('0_baseline')} % (mean over the six speakers, 3 seeds)"),
        Prose(top, f"**{rung('13_specaugment_speed')} %** leave-one-speaker-out (3 seeds; "
                   f"{rung('13b_ensemble_specaugment_speed')} % for the ensemble of the three), official split "
                   f"{rung('13_specaugment_speed', 'official')} %"),
        Prose(top, f"gives {rung('15_noise')} % with the official split at {rung('15_noise', 'official')} % "
                   f"({rung('15b_ensemble_noise')} % ensembled)"),
        Prose(top, f"did not help ({rung('14_vtlp')} %)"),
        Prose(top, f"({acc(SC_CHECK, 'bcr_recipe')} % against {acc(SC_CHECK, 'bcr_paper')} %, 3 seeds, 30 epochs"),
        Prose(top, f"({acc(SC_CHECK, 'gru_recipe')} vs {acc(SC_CHECK, 'gru_plain')} %)"),
        Prose(top, f"({hop('frontend_windowed')} -> {hop('frontend_stateful')} ms for BC-ResNet's log-mel at 100 ms)"),
        Prose(top, f"(BC-ResNet {hop('windowed')} -> {hop('stateful')} ms, RTF {hop('rtf_stateful', 3)})"),
        Prose(top, f"It takes {doctor_seconds(min)}-{doctor_seconds(max)} s per backbone on FSDD"),
        # experiments/README.md
        Prose(studies, f"Yes: {doctor_seconds(min)}-{doctor_seconds(max)} s per backbone"),
        Prose(studies, f"gru {acc(PREC, 'gru-bf16-mixed')} %, bcresnet {mean(PREC, 'bcresnet-bf16-mixed')}, "
                       f"crnn {mean(PREC, 'crnn-bf16-mixed')}"),
        Prose(studies, f"bcresnet {acc(CNN, 'kws12_bcresnet')} % with 54 k parameters, gru "
                       f"{acc(CNN, 'kws12_gru')}, crnn {acc(CNN, 'kws12_crnn')}, cnn_baseline "
                       f"{mean(CNN, 'kws12_cnn_baseline')}, parallel_cnn_lstm {mean(CNN, 'kws12_parallel_cnn_lstm')}, "
                       f"tf_cnn {mean(CNN, 'kws12_tf_cnn')}"),
        Prose(studies, f"dropout 0.2 with the posted copied labels {acc(GRU, '2_posted_dropout02')} %, the clip-level "
                       f"softmax head with the posted dropout 0.8 {acc(GRU, '3_clip_head_only')} %, all fixes "
                       f"{acc(GRU, '4_fixed')} %"),
        Prose(studies, f"log-mel {acc(LSTM, 'logmel80_0.5s')} % (0.5 s), {acc(LSTM, 'logmel80_1.0s')} % on 1 s"),
        Prose(studies, f"raw power over frames {acc(LSTM_LONG, 'raw_frames_0.5s')} %"),
        Prose(studies, f"FSDD magnitude only {acc(PHASE, 'fsdd_magnitude')} %, phase as channels "
                       f"{acc(PREC, 'phase2d-bf16-mixed')}, 3D phase CNN {acc(PREC, 'phase3d-bf16-mixed')}; kws12 on "
                       f"the SC sample {plain(PHASE_KWS, 'magnitude', 'test_acc')} vs "
                       f"{plain(PHASE_KWS, 'phase2d', 'test_acc')} vs {plain(PHASE_KWS, 'phase3d', 'test_acc')} %"),
        Prose(studies, f"bcresnet's new default (paper recipe) {acc(RECIPES, bcr)} % vs "
                       f"{acc(RECIPES, 'bcresnet_sc_old')} % for the old AdamW default"),
        Prose(studies, f"matchboxnet's {acc(RECIPES, 'matchbox_sc_paper')} % vs {acc(RECIPES, 'matchbox_sc_old')} %"),
        Prose(studies, f"gru: {rung('0_baseline')} % LOSO"),
        Prose(studies, "Per-clip level normalization over the speech frames "
                       f"{rung_gain('4_utterance', '0_baseline')}, random channel colouring "
                       f"{rung_gain('6_utterance_tilt', '4_utterance')}, 20 epochs "
                       f"{rung_gain('8_utterance_tilt_20_epochs', '6_utterance_tilt')}, SpecAugment "
                       f"{rung_gain('10_specaugment', '8_utterance_tilt_20_epochs')}, speed ±10 % "
                       f"{rung_gain('13_specaugment_speed', '10_specaugment')}"),
        Prose(studies, f"per-clip tilt removal ({rung_gain('12_utterance_tilt_norm', '8_utterance_tilt_20_epochs')})"),
        Prose(studies, f"VTLP on top {rung_gain('14_vtlp', '13_specaugment_speed')}"),
        Prose(studies, f"{rung('13_specaugment_speed')} % (`experiment=fsdd_unseen_speaker`; official "
                       f"{rung('13_specaugment_speed', 'official')} %), {rung('13b_ensemble_specaugment_speed')} % "
                       f"as a 3-seed ensemble"),
        Prose(studies, f"{rung('15_noise')} % (official {rung('15_noise', 'official')}; "
                       f"{rung_gain('15_noise', '13_specaugment_speed')}, within the seed "
                       f"spread), {rung('15b_ensemble_noise')} % ensembled"),
        Prose(studies, f"({acc(SC_CHECK, 'bcr_recipe')} vs {acc(SC_CHECK, 'bcr_paper')} %)"),
        Prose(studies, f"bcresnet {acc(PREC, 'bcresnet-bf16-mixed')} vs {acc(PREC, 'bcresnet-32-true')} %, kwt "
                       f"{mean(PREC, 'kwt-bf16-mixed')} vs {mean(PREC, 'kwt-32-true')} %, crnn "
                       f"{mean(PREC, 'crnn-bf16-mixed')} vs {mean(PREC, 'crnn-32-true')} %"),
        Prose(studies, f"matchboxnet {acc(PREC, 'matchboxnet-bf16-mixed')} vs {acc(PREC, 'matchboxnet-32-true')} %"),
        Prose(studies, f"only the posted combination fails ({acc(GRU, '1_posted')} % after "
                       f"{epoch_range(GRU, '1_posted')} epochs, still creeping up: not converged"),
        # the study READMEs' own answers
        Prose(us, f"**{rung('13_specaugment_speed')} % for one model"),
        Prose(us, f"against {rung('0_baseline')} % for the baseline"),
        Prose(us, f"**{rung_gain('8_utterance_tilt_20_epochs', '6_utterance_tilt')}** "
                  f"({loso_mean('6_utterance_tilt')} -> {rung('8_utterance_tilt_20_epochs')};"),
        Prose(us, f"**{rung_gain('10_specaugment', '8_utterance_tilt_20_epochs')}** "
                  f"({rung('8_utterance_tilt_20_epochs')} -> {rung('10_specaugment')};"),
        Prose(us, f"**{rung_gain('13_specaugment_speed', '10_specaugment')}** "
                  f"({rung('10_specaugment')} -> {rung('13_specaugment_speed')};"),
        Prose(us, f"{rung_gain('14_vtlp', '13_specaugment_speed')}** ({rung('14_vtlp')} %;"),
        Prose(us, f"**hurt: {rung_gain('12_utterance_tilt_norm', '8_utterance_tilt_20_epochs')}** "
                  f"({rung('12_utterance_tilt_norm')} against rung 8's {rung('8_utterance_tilt_20_epochs')};"),
        Prose(us, f"give {acc(SC_CHECK, 'bcr_recipe')} % against {acc(SC_CHECK, 'bcr_paper')} %"),
        Prose("experiments/cnn_vs_rnn/README.md", f"bcresnet leads ({acc(CNN, 'kws12_bcresnet')} %)"),
        Prose("experiments/gru_labels/README.md", f"Dropout 0.2 with the posted labels reaches "
                                                  f"{acc(GRU, '2_posted_dropout02')} %"),
        Prose("experiments/gru_labels/README.md", f"cross-entropy: {acc(GRU, '1_posted')} % when early stopping "
                                                  f"ended it ({epoch_range(GRU, '1_posted')} epochs)"),
        Prose(us, f"(10 epochs: gru {mean(PREC, 'gru-bf16-mixed')} %, bcresnet {mean(PREC, 'bcresnet-bf16-mixed')} %"),
        Prose(top, f"the same config is {acc(SC_CHECK, 'bcr_paper')} % with today's fixed draw and "
                   f"{acc(CNN, 'kws12_bcresnet')} % testing the best val checkpoint"),
        Prose("experiments/lstm_preprocessing/README.md", f"Standardized log-mel over time frames: "
                                                          f"{acc(LSTM, 'logmel80_0.5s')} %"),
        Prose(top, f"a causal BC-ResNet-3 scores {kws_stream('causal', 'clip_test_acc')} % against "
                   f"{kws_stream('paper', 'clip_test_acc')} % (paper recipe, 20 epochs, 3 seeds; "),
        Prose(top, f"and scored with state it runs at {scoring_speed('scoring_speed_causal.json', '32-true')}x "
                   "real time in fp32"),
        Prose(top, f"{carried_gain('stateful.json')}x in eager mode and {carried_gain('stateful_compiled.json')}x "
                   "compiled for BC-ResNet-3 at 20 ms"),
        Prose(top, f"costs {step_gain('torchscript')}x and {step_gain('onnxruntime')}x less than the eager windowed "
                   f"hop, but only {step_gain('torchscript', True)}x and {step_gain('onnxruntime', True)}x less than"),
        Prose("experiments/streaming/README.md", f"by the compiled hop ({carried_gain('stateful_compiled.json')}x) and "
                                                 f"the exported steps ({step_gain('torchscript')}x TorchScript, "
                                                 f"{step_gain('onnxruntime')}x onnxruntime)"),
        Prose("experiments/kws_stream/README.md", f"**{kws_stream('causal', 'clip_test_acc')} % against "
                                                  f"{kws_stream('paper', 'clip_test_acc')} %** for the paper recipe"),
        Prose("experiments/kws_stream/README.md", f"the causal paper recipe misses as much as the original (calibrated "
                                                  f"{kws_stream('causal', 'test_frr', 'calibrated')} against "
                                                  f"{kws_stream('paper', 'test_frr', 'calibrated')})"),
        Prose(kws, f"runs at **{scoring_speed('scoring_speed_causal.json', '32-true')}x real time in fp32 and "
                   f"{scoring_speed('scoring_speed_causal.json', 'bf16-mixed')}x in bf16**"),
        Prose("experiments/kws_stream/README.md", "there it misses **"
              f"{kws_stream('noise_causal', 'val_frr', 'calibrated+post', percent=True)} % at "
              f"{kws_stream('noise_causal', 'val_fa_per_hour', 'calibrated+post', digits=1)} FA/h against "
              f"{kws_stream('noise', 'val_frr', 'calibrated+post', percent=True)} % at "
              f"{kws_stream('noise', 'val_fa_per_hour', 'calibrated+post', digits=1)} FA/h**"),
        Prose("experiments/kws_stream/README.md", "it misses "
              f"{kws_stream('noise_causal', 'test_frr', 'calibrated', percent=True)} % at "
              f"{kws_stream('noise_causal', 'test_fa_per_hour', 'calibrated', digits=1)} FA/h (calibrated; "
              f"{kws_stream('noise_causal', 'test_frr', 'calibrated+post', percent=True)} % at "
              f"{kws_stream('noise_causal', 'test_fa_per_hour', 'calibrated+post', digits=1)} FA/h with"),
        Prose("experiments/kws_stream/README.md", f"On clips it scores **{kws_stream('shipped', 'clip_test_acc')} %**"),
        Prose("experiments/kws_stream/README.md", "it misses **"
              f"{kws_stream('shipped', 'test_frr', 'calibrated', percent=True)} % at "
              f"{kws_stream('shipped', 'test_fa_per_hour', 'calibrated', digits=1)} FA/h** (calibrated"),
        Prose("experiments/kws_stream/README.md",
              f"{kws_stream('shipped', 'test_frr', 'calibrated+post', percent=True)} % at "
              f"{kws_stream('shipped', 'test_fa_per_hour', 'calibrated+post', digits=1)} FA/h with calibrated "
              "post-processing; on the validation streams "
              f"{kws_stream('shipped', 'val_frr', 'calibrated+post', percent=True)} % at "
              f"{kws_stream('shipped', 'val_fa_per_hour', 'calibrated+post', digits=1)} FA/h"),
        Prose("experiments/kws_stream/README.md", f"Its price is clip accuracy: "
              f"{kws_stream('noise_causal', 'clip_test_acc')} % against {kws_stream('noise', 'clip_test_acc')} %"),
        # the 100-epoch arms; wide is experiment=kws_stream as it ships
        *(Prose(readme, f"{kws_stream('wide', 'test_frr', 'calibrated', percent=True)} % of the keywords at "
                        f"{kws_stream('wide', 'test_fa_per_hour', 'calibrated', digits=1)} FA/h")
          for readme in ("README.md", "experiments/README.md")),
        Prose(top, f"On clips it scores {kws_stream('wide', 'clip_test_acc')} %. The paper recipe trained as long "
                   f"scores {kws_stream('long_paper', 'clip_test_acc')} % on clips and misses "
                   f"{kws_stream('long_paper', 'test_frr', 'calibrated', percent=True)} %"),
        Prose(top, f"{kws_stream('long_causal', 'clip_test_acc')} % against {kws_stream('long_paper', 'clip_test_acc')}"
                   " % at 100"),
        Prose(kws, f"{kws_stream('long_paper', 'clip_test_acc')} % on clips, but on the test streams it misses "
                   f"**{kws_stream('long_paper', 'test_frr', 'calibrated', percent=True)} % at "
                   f"{kws_stream('long_paper', 'test_fa_per_hour', 'calibrated', digits=1)} FA/h** (calibrated for 2 "
                   f"FA/h; {kws_stream('long_paper', 'val_frr', 'calibrated+post', percent=True)} % on the "
                   "validation streams). Made causal, the same: "
                   f"{kws_stream('long_causal', 'test_frr', 'calibrated', percent=True)}"),
        Prose(kws, f"{kws_stream('long_noise', 'test_frr', 'calibrated', percent=True)} % missed at "
                   f"{kws_stream('long_noise', 'test_fa_per_hour', 'calibrated', digits=1)} FA/h (test, calibrated), "
                   "causal "
                   f"{kws_stream('long', 'test_frr', 'calibrated', percent=True)} % at "
                   f"{kws_stream('long', 'test_fa_per_hour', 'calibrated', digits=1)} FA/h; on the validation streams "
                   f"{kws_stream('long_noise', 'val_frr', 'calibrated+post')} and "
                   f"{kws_stream('long', 'val_frr', 'calibrated+post')}"),
        Prose(kws, f"({kws_stream('long_noise', 'clip_test_acc')} % and {kws_stream('long', 'clip_test_acc')} % "
                   f"against {kws_stream('long_paper', 'clip_test_acc')} %)"),
        Prose(kws, f"validation {kws_stream('long_windows', 'val_frr', 'calibrated+post')} against "
                   f"{kws_stream('long', 'val_frr', 'calibrated+post')} without them (test "
                   f"{kws_stream('long_windows', 'test_frr', 'calibrated')}), at a point of clip accuracy "
                   f"({kws_stream('long_windows', 'clip_test_acc')} %)"),
        Prose(kws, f"misses {kws_stream('wide', 'val_frr', 'calibrated+post')} on the validation streams against "
                   f"{kws_stream('long', 'val_frr', 'calibrated+post')} at width 3"),
        Prose(kws, f"misses **{kws_stream('wide', 'test_frr', 'calibrated', percent=True)} % at "
                   f"{kws_stream('wide', 'test_fa_per_hour', 'calibrated', digits=1)} FA/h** (calibrated; per seed "
                   f"{per_seed('wide', 'test_frr', 'calibrated')}), and **"
                   f"{kws_stream('wide', 'test_frr', 'calibrated+post', percent=True)} % at "
                   f"{kws_stream('wide', 'test_fa_per_hour', 'calibrated+post', digits=1)} FA/h** with calibrated"),
        Prose(kws, f"On clips it scores **{kws_stream('wide', 'clip_test_acc')} %**, above the paper recipe's "
                   f"{kws_stream('long_paper', 'clip_test_acc')} % at the same 100"),
        Prose(kws, f"on one hour of validation streams gave **{check('1h')} FA/h** on average "
                   f"({check('1h', 'range')}) on another hour of the same speakers' words, calibrated on three hours "
                   f"**{check('3h')} FA/h** ({check('3h', 'range')}), at 11 more points of FRR there "
                   f"({check('3h', 'frr')} against {check('1h', 'frr')};"),
        Prose(kws, f"every word instead gave {check('1h_every_word')} FA/h"),
        Prose(kws, f"miss **{kws_stream('wide', 'test_frr', 'calibrated_3h+post', percent=True)} % at "
                   f"{kws_stream('wide', 'test_fa_per_hour', 'calibrated_3h+post', digits=1)} FA/h** "
                   "(calibrated_3h+post, what train saves; per seed "
                   f"{per_seed('wide', 'test_frr', 'calibrated_3h+post')} at "
                   f"{per_seed('wide', 'test_fa_per_hour', 'calibrated_3h+post', 1)} FA/h) and "
                   f"{kws_stream('wide', 'test_frr', 'calibrated_3h', percent=True)} % at "
                   f"{kws_stream('wide', 'test_fa_per_hour', 'calibrated_3h', digits=1)} FA/h with the threshold"),
        Prose(top, f"thresholds for 2 FA/h kept {check('1h')} FA/h on fresh validation audio, on three "
                   f"{check('3h')}"),
        Prose(top, "as it calibrates itself it misses "
                   f"{kws_stream('wide', 'test_frr', 'calibrated_3h+post', percent=True)} % of the keywords at "
                   f"{kws_stream('wide', 'test_fa_per_hour', 'calibrated_3h+post', digits=1)} FA/h"),
        Prose(studies, "fresh validation audio: "
                       f"{kws_stream('wide', 'test_frr', 'calibrated_3h+post', percent=True)} % at "
                       f"{kws_stream('wide', 'test_fa_per_hour', 'calibrated_3h+post', digits=1)} FA/h)"),
        Prose(kws, f"BC-ResNet-8 (321k parameters) misses {kws_stream('wide8', 'val_frr', 'calibrated+post')} on "
                   f"the validation streams against {kws_stream('wide', 'val_frr', 'calibrated+post')} at width 6"),
        Prose(kws, f"it misses {kws_stream('wide8', 'test_frr', 'calibrated', percent=True)} % at "
                   f"{kws_stream('wide8', 'test_fa_per_hour', 'calibrated', digits=1)} FA/h (calibrated) and scores "
                   f"{kws_stream('wide8', 'clip_test_acc')} % on clips"),
        Prose(kws, f"{kws_stream('junctions', 'val_frr', 'calibrated+post')} missed on the validation streams "
                   f"against {kws_stream('wide', 'val_frr', 'calibrated+post')} without them, and on the test "
                   f"streams {kws_stream('junctions', 'test_frr', 'calibrated', percent=True)} % at "
                   f"{kws_stream('junctions', 'test_fa_per_hour', 'calibrated', digits=1)} FA/h (calibrated), with "
                   f"2 points of clip accuracy lost ({kws_stream('junctions', 'clip_test_acc')} %)"),
        Prose(kws, f"the model fires {kws_stream('junctions', 'test_fa_per_hour', 'clip', digits=1)} times per hour "
                   f"against {kws_stream('wide', 'test_fa_per_hour', 'clip', digits=1)} without them"),
        Prose(kws, f"{kws_stream('maxpool', 'val_frr', 'calibrated+post')} on the validation streams (per seed "
                   f"{per_seed('maxpool', 'val_frr', 'calibrated+post')}), test "
                   f"{kws_stream('maxpool', 'test_frr', 'calibrated', percent=True)} % at "
                   f"{kws_stream('maxpool', 'test_fa_per_hour', 'calibrated', digits=1)} FA/h, clips "
                   f"{kws_stream('maxpool', 'clip_test_acc')} %"),
        Prose(kws, f"runs at **{scoring_speed('scoring_speed_wide.json', '32-true')}x real time in fp32 and "
                   f"{scoring_speed('scoring_speed_wide.json', 'bf16-mixed')}x in bf16**"),
    ]


def per_seed(arm: str, column: str, decision: str, digits: int = 3) -> str:
    """One kws_stream runs.csv column per seed, `0.440 / 0.236 / 0.255`."""
    with (EXP / "kws_stream/runs.csv").open() as file:
        rows = [r for r in csv.DictReader(file) if r["arm"] == arm and r["decision"] == decision]
    return " / ".join(f"{float(r[column]):.{digits}f}" for r in sorted(rows, key=lambda r: int(r["seed"])))


def check(calibration: str, what: str = "fa") -> str:
    """calibration_check.csv: a calibration's mean check FA/h (`fa`), its range, or its mean check FRR."""
    with (EXP / "kws_stream/calibration_check.csv").open() as file:
        rows = [r for r in csv.DictReader(file) if r["calibration"] == calibration]
    fah, frr = [float(r["check_fa_per_hour"]) for r in rows], [float(r["check_frr"]) for r in rows]
    if what == "range":
        return f"{min(fah):.1f}-{max(fah):.1f}"
    return f"{sum(frr) / len(frr):.3f}" if what == "frr" else f"{sum(fah) / len(fah):.2f}"


def scoring_speed(name: str, precision: str) -> str:
    """x real time (CPU time) of a kws_stream scoring bench JSON at one precision."""
    rows = json.loads((EXP / "kws_stream" / name).read_text())["rows"]
    return f"{next(r for r in rows if r['precision'] == precision)['x_real_time_cpu']:.0f}"


def kws_stream(arm: str, column: str, decision: str = "clip", percent: bool = False, digits: int = 3) -> str:
    """mean ± std over seeds of one kws_stream runs.csv column (clip accuracy, or `percent`, in % to 1 digit)."""
    with (EXP / "kws_stream/runs.csv").open() as file:
        rows = [r for r in csv.DictReader(file) if r["arm"] == arm and r["decision"] == decision]
    if column == "clip_test_acc" or percent:
        return pm([100 * float(r[column]) for r in rows], 1)
    return pm([float(r[column]) for r in rows], digits)


def carried_gain(name: str) -> str:
    """windowed / carried hop time of the causal BC-ResNet at 20 ms in a streaming study JSON."""
    rows = json.loads((EXP / "streaming" / name).read_text())
    row = next(r for r in rows if r["backbone"] == "bcresnet" and r["hop_ms"] == 20.0)
    return f"{row['windowed'] / row['carried']:.1f}"


def step_gain(runtime: str, same_runtime: bool = False) -> str:
    """The eager windowed hop (or the runtime's own) / the runtime's carried hop, BC-ResNet at 20 ms (step.json)."""
    rows = [r for r in json.loads((EXP / "streaming/step.json").read_text())
            if r["backbone"] == "bcresnet" and r["hop_ms"] == 20.0]
    row = next(r for r in rows if r["runtime"] == runtime)
    windowed = row["windowed"] if same_runtime else next(r for r in rows if r["runtime"] == "eager")["windowed"]
    return f"{windowed / row['carried']:.1f}"


def _id(claim) -> str:
    text = claim.prefix if isinstance(claim, Row) else getattr(claim, "text", getattr(claim, "script", ""))
    return f"{claim.readme}:{re.sub(r'[^A-Za-z0-9_.]+', '_', text)[:60]}"


ROWS = [*cnn_vs_rnn_rows(), *gru_labels_rows(), *lstm_rows(), *phase_rows(), *protocol_rows(), *ladder_rows(),
        *doctor_rows()]


@pytest.mark.parametrize("claim", ROWS, ids=map(_id, ROWS))
def test_a_readme_table_row_shows_the_figures_its_csv_gives(claim: Row):
    cells = table_row(claim.readme, claim.prefix, claim.after)
    for column, expected in claim.cells.items():
        shown = cells[column]
        # a cell may add a note in brackets: `32.3 (load 4-5)`
        assert shown == expected or shown.startswith(expected + " ("), (
            f"{claim.readme}, row {claim.prefix!r}, column {column}: README says {shown!r}, the CSV gives {expected!r}"
        )


PROSE = [*prose(), *full_size()[1]]


@pytest.mark.parametrize("claim", PROSE, ids=map(_id, PROSE))
def test_a_readme_sentence_quotes_the_figures_its_csv_gives(claim: Prose):
    text = " ".join(read(claim.readme).split())
    assert claim.text in text, f"{claim.readme} does not say {claim.text!r}, which the committed CSVs give"


GENERATED = [*generated(), *json_tables(), *full_size()[0]]


@pytest.mark.parametrize("claim", GENERATED, ids=map(_id, GENERATED))
def test_a_generated_table_appears_in_its_readme_as_the_script_writes_it(claim: Generated):
    text = read(claim.readme)
    missing = [line for line in claim.lines if line not in text]
    assert not missing, (
        f"{claim.readme} lacks these rows, which experiments/{claim.script} gives (fix the README or "
        f"regenerate the table): {missing}"
    )
