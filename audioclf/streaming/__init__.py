"""Keyword spotting on a stream of audio: no Hydra here; `audioclf-predict stream=true` runs it.

runtime     the stateful per-hop runtime: a ring buffer of feature frames (its ONNX export: deploy/export.py)
detection   a long recording's windows scored (through the runtime where it can) and turned into detections,
            with smoothing, a refractory time and a minimum run of active windows
scoring     detections scored against labelled events: hits, misses, false alarms, delay
streams     labelled continuous recordings built from a dataset split (audioclf-streams)
evaluation  FRR against false alarms per hour over thresholds, operating points at a budget, and the
            calibration of threshold and post-processing on validation streams
"""
