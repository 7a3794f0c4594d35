"""aecore.models: the shared surface of every family, the options, and config validation."""

from __future__ import annotations

import json
import math
import resource

import pytest
import torch
import torch.nn.functional as F
from conftest import run_python

from aecore.errors import ConfigError
from aecore.models import (
    MAX_PARAMETERS,
    MODELS,
    ConvConfig,
    ConvVAEConfig,
    Corruption,
    DenseConfig,
    DenseVAEConfig,
    LossSpec,
    Seq2SeqConfig,
    Sparsity,
    build_model,
    config_from_dict,
    parameter_count,
)
from aecore.models.base import corrupt

# name -> config; together they cover every registry kind and the conv size cases
CONFIGS = {
    "dense": lambda: DenseConfig(input_shape=(1, 8, 8), hidden=[16], latent_dim=4),
    "dense_tied": lambda: DenseConfig(input_shape=(1, 8, 8), hidden=[16], latent_dim=4, tied=True),
    "dense_vector": lambda: DenseConfig(
        input_shape=(3,),
        hidden=[8],
        latent_dim=1,
        activations=["tanh"],
        code_activation="linear",
        output_activation="linear",
    ),
    "conv_valid_28": lambda: ConvConfig(input_shape=(1, 28, 28), channels=[16, 8, 8], valid_layer=2),
    "conv_adapted_8": lambda: ConvConfig(input_shape=(1, 8, 8), channels=[16, 8, 8], valid_layer=2),
    "conv_adapted_rgb32": lambda: ConvConfig(input_shape=(3, 32, 32), channels=[16, 8, 8], valid_layer=2),
    "conv_nonsquare": lambda: ConvConfig(input_shape=(1, 20, 12), channels=[16, 8, 8], valid_layer=2),
    "conv_cropped_10": lambda: ConvConfig(input_shape=(1, 10, 10), channels=[4, 4]),
    "conv_dense_code": lambda: ConvConfig(input_shape=(1, 8, 8), channels=[4, 4], latent_dim=5),
    "vae": lambda: DenseVAEConfig(input_shape=(1, 8, 8), hidden=[16], latent_dim=3),
    "conv_vae": lambda: ConvVAEConfig(input_shape=(1, 8, 8), channels=[4, 4], latent_dim=3),
    "seq2seq": lambda: Seq2SeqConfig(input_shape=(6,), vocab=11, hidden=16, output_len=3),
}


def make(name: str, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(CONFIGS[name]())


def batch_for(model, n: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    if cfg.kind == "seq2seq":
        x = torch.randint(1, cfg.vocab, (n, *cfg.input_shape), generator=g)
        return x, x[:, : cfg.output_len].flip(1)
    return torch.rand(n, *cfg.input_shape, generator=g), None


def test_every_kind_is_covered():
    assert {CONFIGS[n]().kind for n in CONFIGS} == set(MODELS)


# --- the surface -------------------------------------------------------------------
@pytest.mark.parametrize("name", CONFIGS)
def test_surface_shapes(name):
    model = make(name).eval()
    x, target = batch_for(model)
    d = model.latent_dim
    with torch.no_grad():
        z = model.embed(x)
        assert z.shape == (len(x), d)
        code = model.encode(x)
        assert code.flatten(1).shape == (len(x), d)
        out = model(x, target)
        assert out.z.shape == (len(x), d)
        if model.config.kind == "seq2seq":
            V, T = model.config.vocab, model.config.output_len
            assert model.decode(z).shape == (len(x), T, V)  # logits
            rec = model.reconstruct(x)
            assert rec.shape == (len(x), T) and rec.dtype == torch.long
            assert out.recon.shape == (len(x), T, V)
        else:
            assert model.decode(z).shape == x.shape  # flat codes (sliders) decode too
            assert model.decode(code).shape == x.shape
            assert model.reconstruct(x).shape == x.shape
            assert out.recon.shape == x.shape
            torch.testing.assert_close(model.reconstruct(x), model.decode(model.encode(x)))


EXPECTED_TERMS = {
    "dense": {"recon"},
    "vae": {"recon", "kl"},
    "conv_vae": {"recon", "kl"},
    "seq2seq": {"ce"},
    "conv_valid_28": {"recon"},
}


@pytest.mark.parametrize("name", CONFIGS)
def test_loss_is_the_sum_of_named_terms(name):
    model = make(name).train()
    x, target = batch_for(model)
    out = model(x, target)
    if name in EXPECTED_TERMS:
        assert set(out.terms) == EXPECTED_TERMS[name]
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    torch.testing.assert_close(out.loss, sum(out.terms.values()))


@pytest.mark.parametrize(
    "sparsity, terms",
    [
        (Sparsity(l1=1e-3), {"recon", "l1"}),
        (Sparsity(kl=0.5, rho=0.05), {"recon", "sparsity_kl"}),
        (Sparsity(l1=1e-3, kl=0.5), {"recon", "l1", "sparsity_kl"}),
    ],
)
def test_sparsity_adds_its_terms(sparsity, terms):
    torch.manual_seed(0)
    model = build_model(DenseConfig(input_shape=(1, 8, 8), latent_dim=6, code_activation="sigmoid", sparsity=sparsity))
    x = torch.rand(5, 1, 8, 8)
    out = model(x)
    assert set(out.terms) == terms
    torch.testing.assert_close(out.loss, sum(out.terms.values()))
    z = model.encode(x)
    if "l1" in terms:
        torch.testing.assert_close(out.terms["l1"], sparsity.l1 * z.abs().sum(1).mean())
    if "sparsity_kl" in terms:
        rho, rho_hat = sparsity.rho, z.mean(0)
        kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
        torch.testing.assert_close(out.terms["sparsity_kl"], sparsity.kl * kl.sum())


def _vae_pair(name: str, sparsity: Sparsity):
    """The same VAE weights built with and without ``sparsity``."""
    plain = make(name)
    sparse = build_model(CONFIGS[name]().replace(sparsity=sparsity))
    sparse.load_state_dict(plain.state_dict())
    return plain.train(), sparse.train()


@pytest.mark.parametrize("name", ["vae", "conv_vae"])
@pytest.mark.parametrize("sparsity, term", [(Sparsity(l1=1e-2), "l1"), (Sparsity(kl=0.5, rho=0.05), "sparsity_kl")])
def test_vae_applies_sparsity_to_its_code(name, sparsity, term):
    plain, sparse = _vae_pair(name, sparsity)
    x, _ = batch_for(sparse)
    # The same seed before each forward draws the same reparameterisation noise,
    # so the two losses differ by the sparsity term alone.
    torch.manual_seed(1)
    base = plain(x)
    torch.manual_seed(1)
    out = sparse(x)
    assert set(out.terms) == {"recon", "kl", term}
    torch.testing.assert_close(out.terms["recon"], base.terms["recon"])
    torch.testing.assert_close(out.terms["kl"], base.terms["kl"])
    torch.testing.assert_close(out.loss - base.loss, out.terms[term])
    torch.testing.assert_close(out.loss, sum(out.terms.values()))

    # the penalty is on the posterior mean (the code embed returns), not the sample
    with torch.no_grad():
        mu = sparse.encode(x)
    if term == "l1":
        expected = sparsity.l1 * mu.abs().sum(1).mean()
    else:
        rho, rho_hat = sparsity.rho, mu.mean(0).clamp(1e-6, 1 - 1e-6)
        expected = (
            sparsity.kl * (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()
        )
    torch.testing.assert_close(out.terms[term].detach(), expected)
    assert float(out.terms[term].detach()) > 0

    # the term's gradient reaches the encoder and, being on the code alone, not the decoder
    params = dict(sparse.named_parameters())
    grads = torch.autograd.grad(out.terms[term], list(params.values()), allow_unused=True, retain_graph=True)
    by_name = dict(zip(params, grads))
    encoder_grads = [g for n, g in by_name.items() if not n.startswith("decoder") and g is not None]
    assert encoder_grads and any(g.abs().sum() > 0 for g in encoder_grads)
    assert all(torch.isfinite(g).all() for g in encoder_grads)
    assert all(g is None or not g.any() for n, g in by_name.items() if n.startswith("decoder"))
    out.loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in sparse.parameters())


@pytest.mark.parametrize("name", CONFIGS)
def test_adam_steps_lower_the_loss(name):
    model = make(name)
    x, target = batch_for(model, n=16)

    def eval_loss():
        model.eval()
        with torch.no_grad():
            return float(model(x, target).loss)

    before = eval_loss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(15):
        out = model(x, target)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    assert eval_loss() < before


# --- options -------------------------------------------------------------------------
def test_tied_decoder_reads_the_encoder_weights():
    model = make("dense_tied").eval()
    names = [n for n, _ in model.named_parameters()]
    # only biases on the decoder side: no separate decoder weight matrices
    assert not any(n.startswith("decoder") and "weight" in n for n in names)
    untied = make("dense")
    n_weights_enc = sum(layer.weight.numel() for layer in untied.encoder_layers)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in untied.parameters()) - n_weights_enc

    z = torch.randn(4, 4)
    w0, w1 = model.encoder_layers[0].weight, model.encoder_layers[1].weight
    b0, b1 = model.decoder_biases
    with torch.no_grad():
        manual = torch.sigmoid(F.linear(torch.relu(F.linear(z, w1.t(), b0)), w0.t(), b1)).view(-1, 1, 8, 8)
        torch.testing.assert_close(model.decode(z), manual)
        before = model.decode(z).clone()
        model.encoder_layers[0].weight.mul_(2.0)
        assert not torch.allclose(model.decode(z), before)
    # gradients of the reconstruction flow into the shared encoder weight from both sides
    model.train()
    x = torch.rand(3, 1, 8, 8)
    model(x).loss.backward()
    assert model.encoder_layers[0].weight.grad is not None


def test_vae_embed_is_the_deterministic_mean():
    for name in ("vae", "conv_vae"):
        model = make(name).train()  # even in training mode, embed does not sample
        x, _ = batch_for(model)
        with torch.no_grad():
            mu, logvar = model.encode_stats(x)
            torch.testing.assert_close(model.embed(x), mu)
            torch.testing.assert_close(model.embed(x), model.embed(x))
            torch.testing.assert_close(model.encode(x), mu)
            a, b = model(x), model(x)  # training forward samples z
            assert not torch.equal(a.recon, b.recon)
            model.eval()
            c, d = model(x), model(x)
            torch.testing.assert_close(c.recon, d.recon)
            torch.testing.assert_close(c.recon, model.decode(mu))
            torch.testing.assert_close(c.z, mu)


def test_corruption_only_in_training_mode():
    torch.manual_seed(0)
    model = build_model(DenseConfig(input_shape=(1, 8, 8), latent_dim=8, corruption=Corruption("gaussian", 0.5)))
    x = torch.rand(8, 1, 8, 8)
    seen = []
    model.encoder_layers[0].register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))
    with torch.no_grad():
        model.eval()
        a, b = model(x), model(x)
        torch.testing.assert_close(a.loss, b.loss)
        torch.testing.assert_close(seen[-1], x.flatten(1))  # eval reads the clean input
        model.train()
        c, d = model(x), model(x)
        assert not torch.equal(c.loss, d.loss)
        assert not torch.allclose(seen[-1], x.flatten(1))


@pytest.mark.parametrize(
    "corruption",
    [
        Corruption("gaussian", 2.0, clip=True),
        Corruption("salt_pepper", 0.3, clip=True),
        Corruption("mask", 0.5, clip=True),
    ],
)
@pytest.mark.parametrize("data_range", [(0.0, 1.0), (-1.0, 1.0)])
def test_clip_keeps_the_input_range(corruption, data_range):
    torch.manual_seed(0)
    lo, hi = data_range
    x = lo + (hi - lo) * torch.rand(64, 1, 8, 8)
    out = corrupt(x, corruption, lo, hi)
    assert out.min() >= lo and out.max() <= hi
    assert not torch.equal(out, x)
    if corruption.kind == "gaussian":
        unclipped = corrupt(x, Corruption("gaussian", 2.0, clip=False), lo, hi)
        assert unclipped.min() < lo or unclipped.max() > hi
    # the model's own training forward uses its data range
    model = build_model(DenseConfig(input_shape=(1, 8, 8), latent_dim=4, corruption=corruption)).train()
    model.data_range = data_range
    seen = []
    model.encoder_layers[0].register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))
    with torch.no_grad():
        model(x)
    assert seen[0].min() >= lo and seen[0].max() <= hi


def test_conv_adaptations_are_recorded():
    m28 = make("conv_valid_28")
    assert m28.adaptations == []
    assert m28.latent_dim == 8 * 4 * 4
    for name in ("conv_valid_28", "conv_adapted_8", "conv_adapted_rgb32", "conv_nonsquare", "conv_cropped_10"):
        model = make(name)
        valid_convs = [m for m in model.decoder.modules() if isinstance(m, torch.nn.Conv2d) and m.padding == (0, 0)]
        notes = " ".join(model.adaptations)
        if model.config.valid_layer is not None:
            # the seed's 'valid' layer is either kept, or replaced and that is said
            assert (len(valid_convs) == 1) == ("valid" not in notes), (name, model.adaptations)
        else:
            assert valid_convs == []
    assert any("valid" in a for a in make("conv_adapted_8").adaptations)
    assert any("valid" in a for a in make("conv_adapted_rgb32").adaptations)
    assert any("cropped" in a for a in make("conv_cropped_10").adaptations)


# --- validation ----------------------------------------------------------------------
BAD_CONFIGS = {
    "latent_0": lambda: DenseConfig(latent_dim=0),
    "latent_neg": lambda: DenseConfig(latent_dim=-3),
    "hidden_0": lambda: DenseConfig(hidden=[16, 0]),
    "hidden_neg": lambda: DenseConfig(hidden=[-5]),
    "shape_0": lambda: DenseConfig(input_shape=(1, 0, 8)),
    "act_swish": lambda: DenseConfig(activations=["swish"]),
    "out_softmax": lambda: DenseConfig(output_activation="softmax"),
    "conv_channel_0": lambda: ConvConfig(channels=[0, 8]),
    "conv_on_vector": lambda: ConvConfig(input_shape=(64,)),
    "conv_even_kernel": lambda: ConvConfig(kernel_size=4),
    "vae_latent_0": lambda: DenseVAEConfig(latent_dim=0),
    "vae_tied": lambda: DenseVAEConfig(tied=True),
    "seq_hidden_0": lambda: Seq2SeqConfig(hidden=0),
    "seq_vocab_1": lambda: Seq2SeqConfig(vocab=1),
    "noise_neg": lambda: Corruption("gaussian", -0.1),
    "noise_blur": lambda: Corruption("blur", 0.1),
    "loss_median": lambda: LossSpec(reduction="median"),
    "l1_neg": lambda: Sparsity(l1=-1.0),
    "l1_nan": lambda: Sparsity(l1=float("nan")),
    "rho_1.5": lambda: Sparsity(rho=1.5),
}


@pytest.mark.parametrize("name", BAD_CONFIGS)
def test_bad_configs_raise_config_error(name):
    with pytest.raises(ConfigError):
        BAD_CONFIGS[name]()


def test_config_from_dict_refuses_unknown_kind_and_fields():
    with pytest.raises(ConfigError, match="kind"):
        config_from_dict({"kind": "transformer"})
    with pytest.raises(ConfigError, match="kind"):
        config_from_dict({"latent_dim": 4})
    with pytest.raises(ConfigError, match="bogus"):
        config_from_dict({"kind": "dense", "bogus": 1})
    with pytest.raises(ConfigError):
        config_from_dict({"kind": "dense", "hidden": "abc"})
    with pytest.raises(ConfigError):
        config_from_dict({"kind": "dense", "loss": {"recon": "mse", "extra": 1}})
    with pytest.raises(ConfigError):
        config_from_dict({"kind": "vae", "beta": "large"})


def test_absurd_size_is_refused_without_allocating():
    cfg = DenseConfig(input_shape=(1, 28, 28), hidden=[100_000, 100_000])
    assert parameter_count(cfg) > MAX_PARAMETERS  # counted on the meta device: ~10^10 parameters
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with pytest.raises(ConfigError, match="parameters"):
        build_model(cfg)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert grown_mib < 500  # 10^10 float32 would be 40 GB


@pytest.mark.parametrize("name", CONFIGS)
def test_parameter_count_matches_the_built_model(name):
    model = make(name)
    assert parameter_count(model.config) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", CONFIGS)
def test_config_dict_round_trip(name):
    cfg = CONFIGS[name]()
    d = json.loads(json.dumps(cfg.to_dict()))  # through JSON, as config.json stores it
    back = config_from_dict(d)
    assert type(back) is type(cfg)
    assert back == cfg
    assert back.to_dict() == cfg.to_dict()


def test_engine_does_not_import_streamlit():
    # Walks the package rather than listing modules, so a module added later is
    # covered without editing this test. __main__ is skipped: importing it runs the CLI.
    code = """
import importlib, pkgutil, sys
import aecore
names = [m.name for m in pkgutil.walk_packages(aecore.__path__, "aecore.", onerror=lambda n: sys.exit(f"cannot import {n}"))]
for name in names:
    if name.rsplit(".", 1)[-1] != "__main__":
        importlib.import_module(name)
assert "streamlit" not in sys.modules, "streamlit was imported"
print(len(names), "modules:", " ".join(names))
"""
    r = run_python(["-c", code], timeout=120)
    assert r.returncode == 0, r.stderr
    imported = r.stdout.split("modules:", 1)[1].split()
    # a sanity check that the walk found the package's modules, including nested ones
    assert {"aecore.cli", "aecore.train", "aecore.models.vae", "aecore.runs.jobs", "aecore.explore.inference"} <= set(
        imported
    ), r.stdout


def test_input_dim_math():
    cfg = DenseConfig(input_shape=(3, 5, 7))
    assert cfg.input_dim == math.prod((3, 5, 7))
