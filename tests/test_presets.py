"""aecore.presets: every preset builds and trains wherever it is offered, and is faithful
to the experiment in ../shared/SPEC.md that it reproduces."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import REQUIRED_PRESETS
from torch import nn

from aecore.data import DATASETS
from aecore.errors import ConfigError
from aecore.models import build_model
from aecore.presets import IMAGE, PRESETS, SEQUENCE, VECTOR, check_compatible, get_preset
from aecore.runs.pipeline import train
from aecore.runs.request import TrainRequest

SEED_SHAPES = {"image": (1, 28, 28), "vector": (3,), "sequence": (6,)}
SHAPES_BY_KIND = {IMAGE: [(1, 8, 8), (3, 32, 32), (1, 28, 28)], VECTOR: [(2,), (3,)], SEQUENCE: [(6,)]}


def seed_shape(preset) -> tuple[int, ...]:
    return SEED_SHAPES[DATASETS[preset.dataset].kind]


def test_the_twelve_required_presets_exist_and_their_datasets_too():
    assert set(REQUIRED_PRESETS) <= set(PRESETS)
    for p in PRESETS.values():
        assert p.dataset in DATASETS
        assert DATASETS[p.dataset].kind in p.accepts  # a preset accepts its own seed's data
    with pytest.raises(ConfigError, match="unknown preset"):
        get_preset("no-such-preset")


@pytest.mark.parametrize("name", PRESETS)
def test_builds_for_every_compatible_shape(name):
    p = PRESETS[name]
    shapes = {seed_shape(p)} | {s for kind in p.accepts for s in SHAPES_BY_KIND[kind]}
    for shape in sorted(shapes):
        model = build_model(p.model_config(shape)).eval()
        assert tuple(model.config.input_shape) == shape
        if model.config.kind == "seq2seq":
            x = torch.randint(1, model.config.vocab, (2, *shape))
            with torch.no_grad():
                assert model.reconstruct(x).shape == (2, model.config.output_len)
        else:
            x = torch.rand(2, *shape)
            with torch.no_grad():
                assert model.reconstruct(x).shape == x.shape, (name, shape)
                assert model.embed(x).shape == (2, model.latent_dim)
    for kind in {IMAGE, VECTOR, SEQUENCE} - set(p.accepts):
        with pytest.raises(ConfigError):
            check_compatible(p, kind, f"some {kind} dataset")


def tiny_request(name: str) -> TrainRequest:
    p = PRESETS[name]
    if SEQUENCE in p.accepts:
        return TrainRequest(preset=name, dataset="reverse-seq", epochs=2, limit=2000, device="cpu")
    if IMAGE in p.accepts:
        return TrainRequest(preset=name, dataset="digits", epochs=2, limit=300, device="cpu")
    return TrainRequest(preset=name, dataset="helix3d", epochs=2, limit=600, device="cpu")


@pytest.mark.parametrize("name", PRESETS)
def test_trains_two_epochs_and_the_loss_decreases(name):
    torch.manual_seed(0)
    tm, result, bundle = train(tiny_request(name), evaluate_after=False)
    assert result.status == "done", result.message
    losses = [h["train_loss"] for h in result.history]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert losses[1] < losses[0], losses
    assert result.history[-1]["val_loss"] is not None and math.isfinite(result.history[-1]["val_loss"])
    assert tuple(tm.model.config.input_shape) == bundle.sample_shape


# --- faithful to the seeds (SPEC.md, "Reference presets") ---------------------------------
def linear_sizes(layers) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in layers if isinstance(m, nn.Linear)]


def test_deep_dense():
    p = PRESETS["deep-dense"]
    m = build_model(p.model_config((1, 28, 28)))
    enc = linear_sizes(m.encoder_layers)
    dec = linear_sizes(m.decoder_layers)
    assert enc == [(784, 1500), (1500, 1000), (1000, 500), (500, 10)]
    assert dec == [(10, 500), (500, 1000), (1000, 1500), (1500, 784)]
    assert all(isinstance(a, nn.ReLU) for a in list(m.encoder_acts)[:-1])
    assert isinstance(m.encoder_acts[-1], nn.Sigmoid)  # sigmoid code
    assert isinstance(m.decoder_acts[-1], nn.Identity)  # linear output
    assert p.train.batch_size == 2048 and p.train.epochs == 20
    assert p.train.early_stopping_patience == 10
    assert p.train.optimizer == "adam" and p.train.lr == 1e-3
    assert m.config.loss.recon == "mse"
    assert p.val_fraction == pytest.approx(0.2)
    assert p.dataset == "fashion-mnist"


def test_vae_mlp():
    p = PRESETS["vae-mlp"]
    m = build_model(p.model_config((1, 28, 28)))
    assert m.is_variational
    assert linear_sizes(m.encoder) == [(784, 400)]
    assert (m.fc_mu.in_features, m.fc_mu.out_features) == (400, 20)
    assert (m.fc_logvar.in_features, m.fc_logvar.out_features) == (400, 20)
    assert linear_sizes(m.decoder) == [(20, 400), (400, 784)]
    assert isinstance(list(m.decoder)[-1], nn.Tanh)
    assert p.normalisation == "symmetric"
    assert (m.config.loss.recon, m.config.loss.reduction) == ("mse", "sum")  # summed MSE per image
    assert p.train.lr == 1e-3 and p.train.batch_size == 128 and p.train.epochs == 100
    # summed MSE: the recon term is the per-image sum of squared errors, averaged over the batch
    m.eval()
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        out = m(x)
        expected = (out.recon - x).pow(2).flatten(1).sum(1).mean()
    torch.testing.assert_close(out.terms["recon"], expected)


def test_basic_softplus():
    p = PRESETS["basic-softplus"]
    torch.manual_seed(0)
    m = build_model(p.model_config((1, 28, 28)))
    assert linear_sizes(m.encoder_layers) == [(784, 200)]
    assert linear_sizes(m.decoder_layers) == [(200, 784)]
    assert isinstance(m.encoder_acts[-1], nn.Softplus)
    assert isinstance(m.decoder_acts[-1], nn.Identity)
    w1 = m.encoder_layers[0].weight
    bound = math.sqrt(6 / (784 + 200))  # Glorot-uniform limit
    assert w1.abs().max() <= bound and w1.abs().max() > 0.9 * bound
    assert torch.count_nonzero(m.encoder_layers[0].bias) == 0
    assert torch.count_nonzero(m.decoder_layers[0].weight) == 0  # zero decoder init at construction
    assert torch.count_nonzero(m.decoder_layers[0].bias) == 0
    loss = m.config.loss
    assert (loss.recon, loss.reduction, loss.scale) == ("mse", "batch_sum", 0.5)
    assert p.normalisation == "standardize"
    assert p.train.epochs == 5 and p.train.batch_size == 128 and p.train.lr == 1e-3
    # cost = 0.5 * sum of squared error over the whole batch
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        out = m.eval()(x)
    torch.testing.assert_close(out.terms["recon"], 0.5 * (out.recon - x).pow(2).sum())


def test_gaussian_noise():
    p = PRESETS["gaussian-noise"]
    m = build_model(p.model_config((1, 28, 28)))
    c = m.config.corruption
    assert (c.kind, c.level) == ("gaussian", 0.01)
    assert isinstance(m.encoder_acts[-1], nn.Sigmoid)
    assert m.latent_dim == 200 and p.normalisation == "standardize"


def test_sparse_kl():
    p = PRESETS["sparse-kl"]
    m = build_model(p.model_config((1, 28, 28)))
    s = m.config.sparsity
    assert s.rho == 0.05 and s.kl > 0
    assert isinstance(m.encoder_acts[-1], nn.Sigmoid)  # KL needs codes in (0, 1)
    m.train()
    assert "sparsity_kl" in m(torch.randn(4, 1, 28, 28)).terms


def test_vanilla_multilayer_sparse_l1():
    v = build_model(PRESETS["vanilla"].model_config((1, 28, 28)))
    assert linear_sizes(v.encoder_layers) == [(784, 64)] and linear_sizes(v.decoder_layers) == [(64, 784)]
    assert isinstance(v.encoder_acts[-1], nn.ReLU) and isinstance(v.decoder_acts[-1], nn.Sigmoid)
    ml = build_model(PRESETS["multilayer"].model_config((1, 28, 28)))
    assert linear_sizes(ml.encoder_layers) == [(784, 128), (128, 64)]
    assert linear_sizes(ml.decoder_layers) == [(64, 128), (128, 784)]
    l1 = build_model(PRESETS["sparse-l1"].model_config((1, 28, 28)))
    assert l1.config.sparsity.l1 == 1e-4 and l1.latent_dim == 64
    assert isinstance(l1.encoder_acts[-1], nn.ReLU) and isinstance(l1.decoder_acts[-1], nn.Sigmoid)


def test_conv():
    p = PRESETS["conv"]
    m = build_model(p.model_config((1, 28, 28)))
    enc = [c.out_channels for c in m.encoder.modules() if isinstance(c, nn.Conv2d)]
    assert enc == [16, 8, 8]
    assert sum(isinstance(c, nn.MaxPool2d) for c in m.encoder.modules()) == 3
    dec = [c for c in m.decoder.modules() if isinstance(c, nn.Conv2d)]
    assert [c.out_channels for c in dec] == [8, 8, 16, 1]
    assert [c.padding == (0, 0) for c in dec] == [False, False, True, False]  # conv 16 is 'valid'
    assert isinstance(list(m.decoder.modules())[-1], nn.Sigmoid)
    assert m.adaptations == []  # on 28x28 the seed's architecture fits as is
    assert m.latent_dim == 128
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert m.encode(x).shape == (2, 8, 4, 4)
        assert m.reconstruct(x).shape == (2, 1, 28, 28)
    assert IMAGE in p.accepts and VECTOR not in p.accepts


def test_denoising_conv():
    p = PRESETS["denoising-conv"]
    m = build_model(p.model_config((1, 28, 28)))
    assert [c.out_channels for c in m.encoder.modules() if isinstance(c, nn.Conv2d)] == [32, 32]
    c = m.config.corruption
    assert (c.kind, c.level, c.clip) == ("gaussian", 0.5, True)


def test_seq2seq_lstm():
    p = PRESETS["seq2seq-lstm"]
    m = build_model(p.model_config((6,)))
    assert m.config.hidden == 128 and m.config.vocab == 51 and m.config.output_len == 3
    assert (m.encoder.input_size, m.encoder.hidden_size) == (51, 128)
    assert (m.decoder.input_size, m.decoder.hidden_size) == (51, 128)
    assert (m.head.in_features, m.head.out_features) == (128, 51)
    assert p.train.epochs == 1 and p.train.optimizer == "adam"
    assert p.dataset == "reverse-seq" and p.accepts == (SEQUENCE,)
