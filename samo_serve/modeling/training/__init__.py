"""Training and export of the emotion model (needs the ``train`` extra: torch, transformers, onnx).

Nothing here is imported on the serving path.
"""
