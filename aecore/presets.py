"""Presets: one click reproduces one experiment of the source tutorials.

Each preset is faithful to its seed (architecture, initialisation, loss and its
units, optimizer, learning rate, batch size, epochs, preprocessing); what the
seed leaves out is taken from the article it was copied from and said in
``notes``. A preset builds its model for any dataset of a kind it accepts, so
every image preset runs on every image dataset.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from aecore.errors import ConfigError
from aecore.models import (
    ConvConfig,
    Corruption,
    DenseConfig,
    DenseVAEConfig,
    LossSpec,
    ModelConfig,
    Seq2SeqConfig,
    Sparsity,
)
from aecore.train import TrainConfig

IMAGE, VECTOR, SEQUENCE = "image", "vector", "sequence"


@dataclass(frozen=True)
class Preset:
    name: str
    source: str  # the tutorial (seed) it comes from ("000".."003"), or "" for an added recipe
    summary: str
    dataset: str
    make_model: Callable[[tuple[int, ...]], ModelConfig]
    train: TrainConfig
    normalisation: str = "unit"
    val_fraction: float | None = None
    accepts: tuple[str, ...] = (IMAGE, VECTOR)
    notes: str = ""
    # The source tutorial's own cost units, reported beside the standard metrics.
    source_cost: str | None = None

    def model_config(self, input_shape: tuple[int, ...], latent_dim: int | None = None) -> ModelConfig:
        cfg = self.make_model(tuple(input_shape))
        if latent_dim is not None:
            if not hasattr(cfg, "latent_dim"):
                raise ConfigError(f"preset {self.name!r} has no code size to change.")
            cfg = dataclasses.replace(cfg, latent_dim=latent_dim)
        return cfg


def _dense(**kw) -> Callable[[tuple[int, ...]], ModelConfig]:
    return lambda shape: DenseConfig(input_shape=shape, **kw)


# Seed 002's models: one hidden layer of 200, linear reconstruction, Xavier
# encoder and zero decoder, cost 0.5 * sum of squared error over the batch.
_SEED002 = dict(
    hidden=[],
    latent_dim=200,
    output_activation="linear",
    init="xavier_zero_decoder",
    loss=LossSpec("mse", "batch_sum", 0.5),
)
_SEED002_TRAIN = TrainConfig(epochs=5, batch_size=128, lr=1e-3)
_SEED002_NOTE = (
    "MNIST standardised per pixel (StandardScaler fitted on the training split); "
    "batches are a shuffled permutation where the seed drew random contiguous blocks."
)

# Seed 003 is the Keras blog's code; the seed shows no fit() call, so epochs and
# batch size are the blog's (50 epochs; batch 256 dense, 128 conv; 100 for denoising).
_KERAS = dict(init="xavier")

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            "deep-dense",
            "000",
            "784-1500-1000-500-10-500-1000-1500-784, sigmoid code, linear output",
            "fashion-mnist",
            _dense(
                hidden=[1500, 1000, 500], latent_dim=10, code_activation="sigmoid", output_activation="linear", **_KERAS
            ),
            TrainConfig(epochs=20, batch_size=2048, lr=1e-3, early_stopping_patience=10, restore_best=False),
            val_fraction=0.2,
            notes="Keras defaults (Glorot init, Adam 1e-3, MSE); 80/20 train/validation split; "
            "early stopping on validation loss with patience 10 keeping the last weights, as Keras does.",
        ),
        Preset(
            "seq2seq-lstm",
            "000",
            "LSTM(128) encoder states initialise an LSTM(128) decoder; softmax over 51",
            "reverse-seq",
            lambda shape: Seq2SeqConfig(input_shape=shape),
            TrainConfig(epochs=1, batch_size=32, lr=1e-3),
            accepts=(SEQUENCE,),
            notes="Keras fit() defaults: batch 32; inference starts from the one-hot start token used in "
            "training and feeds back its argmax (the seed fed a zero vector and softmax outputs).",
        ),
        Preset(
            "vae-mlp",
            "001",
            "VAE 784-400-(20 mu, 20 logvar), decoder 20-400-784 tanh; summed MSE + KL",
            "mnist",
            lambda shape: DenseVAEConfig(
                input_shape=shape, hidden=[400], latent_dim=20, output_activation="tanh", loss=LossSpec("mse", "sum")
            ),
            TrainConfig(epochs=100, batch_size=128, lr=1e-3, drop_last=True),
            normalisation="symmetric",
            notes="Pixels in [-1, 1] (Normalize([0.5], [0.5])); loss per image = summed MSE + KL, as the seed's "
            "sum divided by the batch size; drop_last batches as in its DataLoader.",
        ),
        Preset(
            "basic-softplus",
            "002",
            "784-200 softplus, linear reconstruction; cost 0.5*sum squared error",
            "mnist",
            _dense(code_activation="softplus", **_SEED002),
            _SEED002_TRAIN,
            normalisation="standardize",
            notes=_SEED002_NOTE,
            source_cost="half_sse",
        ),
        Preset(
            "gaussian-noise",
            "002",
            "784-200 sigmoid, input x + 0.01*N(0,1) during training",
            "mnist",
            _dense(code_activation="sigmoid", corruption=Corruption("gaussian", 0.01), **_SEED002),
            _SEED002_TRAIN,
            normalisation="standardize",
            notes=_SEED002_NOTE,
            source_cost="half_sse",
        ),
        Preset(
            "sparse-kl",
            "002",
            "784-200 sigmoid + KL(rho=0.05 || mean activation) sparsity",
            "mnist",
            _dense(
                code_activation="sigmoid",
                corruption=Corruption("gaussian", 0.01),
                sparsity=Sparsity(kl=1.0, rho=0.05),
                **_SEED002,
            ),
            _SEED002_TRAIN,
            normalisation="standardize",
            source_cost="half_sse",
            notes=_SEED002_NOTE + " The seed's sparse_reg is 0.0 (so its penalty did nothing) and its KL divides "
            "logarithms; here the textbook KL summed over the 200 units, weight 1.0.",
        ),
        Preset(
            "vanilla",
            "003",
            "784-64 ReLU - 784 sigmoid",
            "mnist",
            _dense(hidden=[], latent_dim=64, **_KERAS),
            TrainConfig(epochs=50, batch_size=256, lr=1e-3),
        ),
        Preset(
            "multilayer",
            "003",
            "784-128-64-128-784, ReLU, sigmoid output",
            "mnist",
            _dense(hidden=[128], latent_dim=64, **_KERAS),
            TrainConfig(epochs=50, batch_size=256, lr=1e-3),
        ),
        Preset(
            "conv",
            "003",
            "Conv 16-8-8 with 2x2 pooling; decoder 8-8-16 with upsampling, sigmoid",
            "mnist",
            lambda shape: ConvConfig(input_shape=shape, channels=[16, 8, 8], valid_layer=2, **_KERAS),
            TrainConfig(epochs=50, batch_size=128, lr=1e-3),
            accepts=(IMAGE,),
            notes="The decoder's third conv is 'valid' (16 -> 14) so 4x4 comes back to 28x28; on other sizes it "
            "becomes 'same' and the output is cropped (recorded with the model). With the seed's MSE the sigmoid "
            "output was seen to settle at all-black on MNIST within the first epoch; conv-bce trains.",
        ),
        Preset(
            "sparse-l1",
            "003",
            "784-64 ReLU with L1 activity penalty 1e-4 on the code, sigmoid output",
            "mnist",
            _dense(hidden=[], latent_dim=64, sparsity=Sparsity(l1=1e-4), **_KERAS),
            TrainConfig(epochs=50, batch_size=256, lr=1e-3),
        ),
        Preset(
            "denoising-conv",
            "003",
            "Conv 32-32 + pooling; decoder 32-32 + upsampling; trained on x + 0.5*N(0,1)",
            "mnist",
            lambda shape: ConvConfig(
                input_shape=shape, channels=[32, 32], corruption=Corruption("gaussian", 0.5, clip=True), **_KERAS
            ),
            TrainConfig(epochs=100, batch_size=128, lr=1e-3),
            accepts=(IMAGE,),
            notes="Noise x + 0.5*N(0,1) clipped to [0, 1], redrawn every batch; the target is the clean image. "
            "With the seed's MSE it was seen to settle at all-black on MNIST; denoising-conv-bce trains.",
        ),
        # Added for the dashboard's manifold demos: small enough to train in seconds.
        Preset(
            "manifold-1d",
            "",
            "2-or-3-D points -> 32-32 tanh -> 1-D code -> back",
            "helix3d",
            _dense(
                hidden=[32, 32],
                latent_dim=1,
                activations=["tanh"],
                code_activation="linear",
                output_activation="linear",
            ),
            TrainConfig(epochs=300, batch_size=128, lr=3e-3),
            normalisation="standardize",
            accepts=(VECTOR,),
            notes="Not from a seed: learns the 1-D code of line2d, sine and helix3d (seeds 000 and 001).",
        ),
        # Added for bench/quality.py's goals; each note says what differs from its source and why.
        Preset(
            "hinton-30",
            "",
            "784-1000-500-250-30 (linear code) and back, ELU, sigmoid output; BCE, Adam + cosine",
            "mnist",
            _dense(
                hidden=[1000, 500, 250],
                latent_dim=30,
                activations=["elu"],
                code_activation="linear",
                output_activation="sigmoid",
                init="xavier",
                loss=LossSpec("bce", "mean"),
            ),
            TrainConfig(epochs=100, batch_size=128, lr=1e-3, lr_schedule="cosine"),
            notes="Not from a seed: Hinton & Salakhutdinov (2006)'s MNIST shape trained end to end (ELU, Glorot init, "
            "per-pixel BCE, Adam with cosine decay) instead of RBM pre-training and conjugate gradients.",
        ),
        Preset(
            "vae-mlp-bce",
            "",
            "VAE 784-400-(20 mu, 20 logvar), decoder 20-400-784 sigmoid; summed BCE + KL",
            "mnist",
            lambda shape: DenseVAEConfig(
                input_shape=shape, hidden=[400], latent_dim=20, output_activation="sigmoid", loss=LossSpec("bce", "sum")
            ),
            TrainConfig(epochs=250, batch_size=128, lr=1e-3, lr_schedule="cosine"),
            notes="vae-mlp's layers with pytorch/examples' VAE loss ([0, 1] pixels, sigmoid, summed BCE + KL in nats); "
            "250 epochs with cosine decay instead of the example's 10 at a constant rate (100 epochs reached "
            "100.7 nats, short of 100).",
        ),
        Preset(
            "conv-bce",
            "",
            "conv's layers trained with per-pixel binary cross-entropy",
            "mnist",
            lambda shape: ConvConfig(
                input_shape=shape, channels=[16, 8, 8], valid_layer=2, loss=LossSpec("bce", "mean"), **_KERAS
            ),
            TrainConfig(epochs=100, batch_size=128, lr=1e-2, lr_schedule="cosine"),
            accepts=(IMAGE,),
            notes="conv with the Keras blog's per-pixel BCE (MSE sat at all-black: loss 0.1128 flat, epochs 2-6) and "
            "Adam 1e-2 with cosine decay over 100 epochs, 1e-3 being too slow to reach 0.090 in 30 minutes.",
        ),
        Preset(
            "denoising-conv-bce",
            "",
            "denoising-conv's layers and noise, trained with per-pixel BCE",
            "mnist",
            lambda shape: ConvConfig(
                input_shape=shape,
                channels=[32, 32],
                loss=LossSpec("bce", "mean"),
                corruption=Corruption("gaussian", 0.5, clip=True),
                **_KERAS,
            ),
            TrainConfig(epochs=40, batch_size=128, lr=3e-3, lr_schedule="cosine"),
            accepts=(IMAGE,),
            notes="denoising-conv with the Keras blog's per-pixel BCE (MSE stayed at all-black for 3 epochs) and Adam "
            "3e-3 with cosine decay over 40 epochs instead of 100, to fit 30 minutes on 2 CPU cores.",
        ),
    ]
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")
    return PRESETS[name]


def check_compatible(preset: Preset, kind: str, dataset_name: str) -> None:
    if kind not in preset.accepts:
        raise ConfigError(
            f"preset {preset.name!r} needs {' or '.join(preset.accepts)} data, but {dataset_name!r} is {kind} data."
        )
