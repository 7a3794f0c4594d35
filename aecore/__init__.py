"""aecore: the autoencoder engine behind Autoencoder Studio.

Plain PyTorch; never imports streamlit. The layers, from the bottom:
``data`` (datasets as arrays) -> ``normalise`` (the model's input range) ->
``models`` (typed configs, a registry, ``TrainedModel``) -> ``presets`` (the
tutorials' experiments) -> ``train`` (the trainer) -> ``store`` and ``records``
(safetensors + JSON, one schema each) -> ``runs`` (one way to train and save)
and ``explore`` (what each explore page and CLI command asks of a model).
See docs/ARCHITECTURE.md.
"""

import os

# OpenMP threads that spin while waiting collapse when anything else wants the
# cores: on 2 cores with a second busy process, vanilla trained at ~550 img/s
# with the default policy and ~19,000 with PASSIVE. The variable only counts if
# it is set before torch loads its OpenMP runtime, hence here; a user's own
# setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
