"""Keyword spotting on a stream of audio: no Hydra here; `audioclf-predict stream=true` runs it.

runtime     the stateful per-hop runtime: a ring buffer of feature frames, its ONNX export
detection   a long recording's windows scored (through the runtime where it can) and turned into detections
scoring     detections scored against labelled events: hits, misses, false alarms, delay
"""
