"""A trained classifier in deployable form: waveform-in, logits-out ONNX and TorchScript files (`export.py`)
and the int8 form of the ONNX file, with its fp32 comparison (`int8.py`). Plain functions of a model and
paths; reading the config is `audioclf/tasks/export.py`'s part."""
