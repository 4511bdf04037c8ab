"""Deployment: export a generator to ONNX (`to_onnx`), quantize it to int8 (`int8`), and run it in onnxruntime
without PyTorch (`runtime`). This package imports nothing itself, so that `runtime` stays free of torch."""
