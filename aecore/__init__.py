"""aecore: the autoencoder engine behind Autoencoder Studio.

Plain PyTorch; never imports streamlit. The layers, from the bottom:
``data`` (datasets as arrays) -> ``preprocess`` (the model's input range) ->
``models`` (typed configs and a registry) -> ``presets`` (the seeds'
experiments) -> ``train`` (the trainer) -> ``store`` (safetensors + JSON) ->
``workflow`` and ``analysis`` (what the CLI and the dashboard call).
"""

__version__ = "0.1.0"
