"""aecore.explore (inference, baselines, figures, latent): shapes, display space, and that each number means what it says."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aecore.data import load_dataset
from aecore.errors import ConfigError
from aecore.explore import baselines, figures, inference, latent
from aecore.models import ConvConfig, DenseConfig, DenseVAEConfig, Seq2SeqConfig, build_model
from aecore.models.trained import TrainedModel
from aecore.normalise import Normaliser
from aecore.train import TrainConfig, Trainer

SHAPE = (1, 8, 8)


def make_tm(cfg, kind: str = "image", normaliser: Normaliser | None = None, seed: int = 0) -> TrainedModel:
    torch.manual_seed(seed)
    model = build_model(cfg)
    normaliser = normaliser or Normaliser("unit")
    model.data_range = normaliser.model_range()
    model.eval()
    return TrainedModel(model, normaliser, {"data_kind": kind})


IMAGE_MODELS = {
    "dense": lambda: DenseConfig(input_shape=SHAPE, hidden=[16], latent_dim=4),
    "conv_map": lambda: ConvConfig(input_shape=SHAPE, channels=[4, 4]),  # code = 4x2x2 feature map
    "conv_dense": lambda: ConvConfig(input_shape=SHAPE, channels=[4], latent_dim=3),
    "vae": lambda: DenseVAEConfig(input_shape=SHAPE, hidden=[16], latent_dim=2),
}


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def images(rng):
    return rng.random((6, *SHAPE), dtype=np.float32)


@pytest.fixture
def seq_tm():
    return make_tm(Seq2SeqConfig(input_shape=(6,), vocab=11, hidden=8, output_len=3), kind="sequence")


@pytest.fixture
def seq_x(rng):
    return rng.integers(1, 11, size=(7, 6), dtype=np.int64)


# --- encode / reconstruct / decode ------------------------------------------------------
@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_image_model_shapes_and_roundtrip(name, images):
    tm = make_tm(IMAGE_MODELS[name]())
    d = tm.model.latent_dim
    z = inference.encode(tm, images)
    assert z.shape == (6, d) and z.dtype == np.float32
    rec = inference.reconstruct(tm, images)
    assert rec.shape == images.shape and rec.dtype == np.float32
    assert rec.min() >= 0 and rec.max() <= 1
    np.testing.assert_allclose(inference.decode(tm, z), rec, atol=1e-6)
    assert inference.decode(tm, z[0]).shape == (1, *SHAPE)
    with pytest.raises(ConfigError):
        inference.decode(tm, np.zeros((2, d + 1)))


def test_vae_encode_is_the_posterior_mean(images):
    tm = make_tm(IMAGE_MODELS["vae"]())
    mu, _ = tm.model.encode_stats(torch.as_tensor(images))
    np.testing.assert_allclose(inference.encode(tm, images), mu.detach().numpy(), atol=1e-6)
    np.testing.assert_array_equal(inference.encode(tm, images), inference.encode(tm, images))  # no sampling


def test_batching_uint8_and_mode_restored(images):
    tm = make_tm(IMAGE_MODELS["dense"]())
    tm.model.train()
    np.testing.assert_allclose(inference.encode(tm, images, batch_size=4), inference.encode(tm, images), atol=1e-6)
    assert tm.model.training  # a model shared with a training thread is left in its mode
    u8 = (images * 255).astype(np.uint8)
    np.testing.assert_allclose(inference.encode(tm, u8), inference.encode(tm, u8.astype(np.float32) / 255), atol=1e-6)
    # MNIST-style arrays without the channel axis
    flat = inference.reconstruct(tm, images[:, 0])
    assert flat.shape == (6, 8, 8)
    np.testing.assert_allclose(flat, inference.reconstruct(tm, images)[:, 0], atol=1e-6)
    with pytest.raises(ConfigError):
        inference.encode(tm, np.zeros((2, 1, 7, 7), np.float32))


def test_images_clamped_vectors_not():
    cfg = DenseConfig(input_shape=(4,), latent_dim=2, output_activation="linear")
    vec = make_tm(cfg, kind="vector")
    with torch.no_grad():
        vec.model.decoder_layers[-1].bias.fill_(5.0)
    x = np.zeros((3, 4), np.float32)
    raw = vec.model.reconstruct(torch.as_tensor(x)).detach().numpy()
    np.testing.assert_allclose(inference.reconstruct(vec, x), raw, atol=1e-6)
    assert inference.reconstruct(vec, x).min() > 1  # vectors keep their range
    img = TrainedModel(vec.model, Normaliser("unit"), {"data_kind": "image"})
    assert inference.reconstruct(img, x).max() == 1.0  # images are clamped to [0, 1]


def test_standardized_model_returns_display_space(rng):
    train = (rng.normal(size=(50, 3)) * [5.0, 1.0, 0.1] + [10.0, -3.0, 0.5]).astype(np.float32)
    norm = Normaliser.fit("standardize", train)
    cfg = DenseConfig(input_shape=(3,), latent_dim=2, code_activation="linear", output_activation="linear")
    tm = make_tm(cfg, kind="vector", normaliser=norm)
    x = train[:10]
    with torch.no_grad():
        model_space = tm.model.reconstruct((torch.as_tensor(x) - norm.mean) / norm.std)
    manual = model_space.numpy() * norm.std.numpy() + norm.mean.numpy()
    rec = inference.reconstruct(tm, x)
    np.testing.assert_allclose(rec, manual, rtol=1e-5, atol=1e-5)
    # display space: near the data's own mean, not the standardised zero
    assert abs(rec[:, 0].mean() - 10.0) < 3.0
    np.testing.assert_allclose(inference.per_item_errors(tm, x), ((manual - x) ** 2).mean(1), rtol=1e-4)


# --- sequences -------------------------------------------------------------------------------
def test_sequence_model(seq_tm, seq_x):
    z = inference.encode(seq_tm, seq_x)
    assert z.shape == (7, 16)
    pred = inference.reconstruct(seq_tm, seq_x)
    assert pred.shape == (7, 3) and pred.dtype == np.int64
    assert pred.min() >= 0 and pred.max() < 11
    np.testing.assert_array_equal(inference.decode(seq_tm, z), pred)
    np.testing.assert_array_equal(inference.reconstruct(seq_tm, seq_x, batch_size=2), pred)

    target = pred.copy()
    target[2, 1] = (target[2, 1] + 1) % 11
    err = inference.per_item_errors(seq_tm, seq_x, target=target)
    np.testing.assert_array_equal(err, [0, 0, 1, 0, 0, 0, 0])
    acc = inference.sequence_accuracy(seq_tm, seq_x, target)
    assert acc["sequence_accuracy"] == pytest.approx(6 / 7)
    assert acc["token_accuracy"] == pytest.approx(20 / 21)
    with pytest.raises(ConfigError):
        inference.per_item_errors(seq_tm, seq_x)  # the target is not the input here
    with pytest.raises(ConfigError):
        inference.encode(seq_tm, seq_x.astype(np.float32))


# --- interpolation and the latent space --------------------------------------------------------
@pytest.mark.parametrize("name", ["dense", "conv_map", "vae"])
def test_interpolation_endpoints(name, images):
    tm = make_tm(IMAGE_MODELS[name]())
    out = inference.interpolate(tm, images[0], images[1:2], steps=5)
    assert out.shape == (5, *SHAPE)
    ends = inference.decode(tm, inference.encode(tm, images[:2]))
    np.testing.assert_allclose(out[0], ends[0], atol=1e-6)
    np.testing.assert_allclose(out[-1], ends[1], atol=1e-6)
    mid = inference.decode(tm, inference.encode(tm, images[:2]).mean(0))
    np.testing.assert_allclose(out[2], mid[0], atol=1e-5)


def test_latent_ranges(rng):
    vae = make_tm(IMAGE_MODELS["vae"]())
    np.testing.assert_array_equal(inference.latent_ranges(vae), [[-3, 3], [-3, 3]])
    dense = make_tm(IMAGE_MODELS["dense"]())
    codes = rng.normal(size=(500, 4)).astype(np.float32)
    codes[:, 3] = 0.0  # a dead ReLU unit
    r = inference.latent_ranges(dense, codes)
    assert r.shape == (4, 2)
    assert np.all(r[:3, 0] <= np.percentile(codes[:, :3], 1, axis=0))
    assert np.all(r[:3, 1] >= np.percentile(codes[:, :3], 99, axis=0))
    assert np.all(r[:3, 1] < codes[:, :3].max(0) + 1)  # percentiles, not the extremes widened a lot
    np.testing.assert_allclose(r[3], [-1, 1])
    with pytest.raises(ConfigError):
        inference.latent_ranges(dense, None)


def test_latent_grid_varies_only_the_chosen_dims(rng):
    tm = make_tm(IMAGE_MODELS["dense"]())
    base = np.array([0.3, -0.2, 0.5, 0.1], np.float32)
    ranges = np.array([[-1, 1]] * 4, np.float32)
    grid = inference.latent_grid(tm, dims=(2, 0), n=4, ranges=ranges, base=base)
    assert grid.shape == (4, 4, *SHAPE)
    vals = np.linspace(-1, 1, 4, dtype=np.float32)
    for i, j in [(0, 0), (1, 3), (3, 2)]:
        z = base.copy()
        z[2], z[0] = vals[i], vals[j]
        np.testing.assert_allclose(grid[i, j], inference.decode(tm, z)[0], atol=1e-6)
    assert not np.allclose(grid[0, 0], grid[-1, 0])
    assert not np.allclose(grid[0, 0], grid[0, -1])
    with pytest.raises(ConfigError):
        inference.latent_grid(tm, dims=(1, 1), ranges=ranges, base=base)
    with pytest.raises(ConfigError):
        inference.latent_grid(tm)  # a plain autoencoder needs codes or ranges
    # from codes: base is their median
    codes = rng.normal(size=(101, 4)).astype(np.float32)
    g = inference.latent_grid(tm, dims=(0, 1), n=3, codes=codes)
    r = inference.latent_ranges(tm, codes)
    z = np.median(codes, 0)
    z[0], z[1] = r[0].mean(), r[1].mean()
    np.testing.assert_allclose(g[1, 1], inference.decode(tm, z)[0], atol=1e-5)


def test_vae_grid_centre_is_the_prior_mean():
    tm = make_tm(IMAGE_MODELS["vae"]())
    g = inference.latent_grid(tm, n=3)
    assert g.shape == (3, 3, *SHAPE)
    np.testing.assert_allclose(g[1, 1], inference.decode(tm, np.zeros(2))[0], atol=1e-6)


# --- errors and baselines --------------------------------------------------------------------
@pytest.mark.parametrize("name", ["dense", "conv_map"])
def test_per_item_errors_match_numpy(name, images):
    tm = make_tm(IMAGE_MODELS[name]())
    rec = inference.reconstruct(tm, images)
    want = ((rec.astype(np.float64) - images) ** 2).reshape(len(images), -1).mean(1)
    np.testing.assert_allclose(inference.per_item_errors(tm, images), want, rtol=1e-5)
    np.testing.assert_allclose(inference.per_item_errors(tm, images, batch_size=4), want, rtol=1e-5)


def test_pca_full_rank_is_exact_and_errors_fall_with_k(rng):
    x = rng.random((60, *SHAPE), dtype=np.float32)
    errs = [baselines.pca_errors(baselines.pca_fit(x, k), x).mean() for k in (1, 4, 16, 32, 64)]
    assert np.all(np.diff(errs) <= 1e-9)
    assert errs[-1] < 1e-10 and errs[0] > 1e-3
    full = baselines.pca_fit(x, 1000)
    assert full.k == 60 and full.components.shape == (60, 64)  # clipped to min(k, D, N)
    assert baselines.pca_fit(x[:5], 64).k == 5
    np.testing.assert_allclose(full.components @ full.components.T, np.eye(60), atol=1e-8)
    rec = full.reconstruct(x)
    assert rec.shape == x.shape
    np.testing.assert_allclose(rec, x, atol=1e-5)
    with pytest.raises(ConfigError):
        baselines.pca_fit(x, 0)


def test_pca_on_a_subspace(rng):
    basis = np.linalg.qr(rng.normal(size=(20, 3)))[0].T  # (3, 20) orthonormal rows
    x = (rng.normal(size=(300, 3)) @ basis + 2.0).astype(np.float32)
    assert baselines.pca_errors(baselines.pca_fit(x, 3), x).max() < 1e-10
    assert baselines.pca_errors(baselines.pca_fit(x, 2), x).mean() > 1e-3
    # a subsample finds the same subspace
    sub = baselines.pca_fit(x, 3, max_items=50)
    assert baselines.pca_errors(sub, x).max() < 1e-10
    p = baselines.pca_fit(x, 2)
    np.testing.assert_allclose(baselines.pca_errors(p, x), ((p.reconstruct(x) - x) ** 2).mean(1), rtol=1e-4)


def test_pca_and_autoencoder_errors_share_units(rng):
    """A linear autoencoder holding the PCA basis scores exactly what PCA scores."""
    x = rng.normal(size=(80, 6)).astype(np.float32)
    pca = baselines.pca_fit(x, 2)
    cfg = DenseConfig(input_shape=(6,), latent_dim=2, code_activation="linear", output_activation="linear")
    tm = make_tm(cfg, kind="vector")
    comps, mean = torch.as_tensor(pca.components, dtype=torch.float32), torch.as_tensor(pca.mean, dtype=torch.float32)
    with torch.no_grad():
        tm.model.encoder_layers[0].weight.copy_(comps)
        tm.model.encoder_layers[0].bias.copy_(-comps @ mean)
        tm.model.decoder_layers[0].weight.copy_(comps.T)
        tm.model.decoder_layers[0].bias.copy_(mean)
    np.testing.assert_allclose(inference.per_item_errors(tm, x), baselines.pca_errors(pca, x), rtol=1e-4, atol=1e-6)


def test_psnr():
    assert baselines.psnr(0.01) == pytest.approx(20.0)
    assert baselines.psnr(np.float32(0.001)) == pytest.approx(30.0, rel=1e-5)
    assert baselines.psnr(65.025, peak=255.0) == pytest.approx(30.0)
    assert baselines.psnr(0.0) == math.inf
    with pytest.raises(ConfigError):
        baselines.psnr(np.array([0.01, 0.02]))
    with pytest.raises(ConfigError):
        baselines.psnr(-1.0)


def test_compression_ratio():
    assert baselines.compression_ratio((1, 28, 28), 32) == 24.5
    assert baselines.compression_ratio((3,), 1) == 3.0


# --- projections and probes ---------------------------------------------------------------------
def test_project_2d(rng):
    c1 = rng.normal(size=(40,)).astype(np.float32)
    p1 = latent.project_2d(c1)
    assert p1.shape == (40, 2)
    np.testing.assert_array_equal(p1[:, 0], c1)
    np.testing.assert_array_equal(p1[:, 1], 0)
    assert latent.project_2d(c1[:, None]).shape == (40, 2)
    c2 = rng.normal(size=(40, 2)).astype(np.float32)
    np.testing.assert_array_equal(latent.project_2d(c2, method="tsne"), c2)
    c5 = (rng.normal(size=(40, 5)) * [5, 3, 1, 0.1, 0.1]).astype(np.float32)
    p5 = latent.project_2d(c5)
    assert p5.shape == (40, 2)
    assert p5[:, 0].var() >= p5[:, 1].var() > c5[:, 2].var()
    t5 = latent.project_2d(c5, method="tsne", seed=1)
    assert t5.shape == (40, 2) and np.isfinite(t5).all()
    with pytest.raises(ConfigError):
        latent.project_2d(c5, method="umap")
    with pytest.raises(ConfigError, match="subsample"):
        latent.project_2d(c5, method="tsne", max_items=10)


def test_linear_probe(rng):
    n = 400
    y = rng.integers(0, 2, n)
    codes = rng.normal(size=(n, 5)) + 4.0 * y[:, None]
    assert baselines.linear_probe(codes[:300], y[:300], codes[300:], y[300:]) >= 0.98
    noise = rng.normal(size=(2000, 5))
    labels = rng.integers(0, 2, 2000)
    acc = baselines.linear_probe(noise[:1000], labels[:1000], noise[1000:], labels[1000:])
    assert abs(acc - 0.5) < 0.08
    with pytest.raises(ConfigError):
        baselines.linear_probe(codes, np.zeros(n), codes, y)


# --- figures ----------------------------------------------------------------------------------------
def test_weight_tiles_dense_mnist_layout(rng):
    w = torch.as_tensor(rng.normal(size=(64, 784)).astype(np.float32))
    img = figures.weight_tiles(w, (1, 28, 28), pad=1)
    assert img.dtype == np.uint8 and img.shape == (8 * 28 + 9, 8 * 28 + 9)
    # unit 9 sits at row 1, column 1, scaled to its own min..max
    tile = img[1 + 29 : 1 + 29 + 28, 1 + 29 : 1 + 29 + 28]
    u = w[9].numpy().reshape(28, 28)
    np.testing.assert_array_equal(tile, np.rint((u - u.min()) / (u.max() - u.min()) * 255).astype(np.uint8))
    assert figures.weight_tiles(w, (1, 28, 28), max_tiles=10, cols=5).shape == (2 * 28 + 3, 5 * 28 + 6)
    rgb = figures.weight_tiles(rng.normal(size=(4, 3 * 8 * 8)), (3, 8, 8), pad=0, min_tile=1)
    assert rgb.shape == (16, 16, 3)
    with pytest.raises(ConfigError, match="image"):
        figures.weight_tiles(rng.normal(size=(4, 3)), (3,))


def test_weight_tiles_conv_filters():
    conv = make_tm(ConvConfig(input_shape=SHAPE, channels=[8, 4])).model
    w = conv.first_layer_weight()
    assert tuple(w.shape) == (8, 1, 3, 3)
    img = figures.weight_tiles(w, SHAPE)
    assert img.shape == (3 * 15 + 4, 3 * 15 + 4)  # 3x3 filters enlarged to 15x15, 3x3 layout
    tile = img[1:16, 1:16]
    np.testing.assert_array_equal(tile[:5, :5], tile[0, 0])  # nearest-neighbour blocks
    rgb = make_tm(ConvConfig(input_shape=(3, 8, 8), channels=[4])).model.first_layer_weight()
    assert figures.weight_tiles(rgb, (3, 8, 8), pad=0).shape == (30, 30, 3)
    many_in = torch.randn(4, 5, 3, 3)
    assert figures.weight_tiles(many_in, (5, 8, 8), pad=0).shape == (30, 30)


def test_image_grid_and_recon_grid(rng):
    a = np.zeros((5, 1, 8, 8), np.float32)
    b = np.ones((5, 8, 8), np.float32)
    g = figures.image_grid([a, b], pad=2)
    assert g.dtype == np.uint8 and g.shape == (2 * 8 + 3 * 2, 5 * 8 + 6 * 2)
    assert g[2:10, 2:10].max() == 0 and g[12:20, 2:10].min() == 255
    rgb = figures.image_grid([rng.random((3, 3, 8, 8)), a[:2]], pad=1)
    assert rgb.shape == (2 * 8 + 3, 3 * 8 + 4, 3)
    u8 = figures.image_grid([(b * 255).astype(np.uint8)], pad=0)
    assert u8.shape == (8, 40) and u8.min() == 255
    r = figures.recon_grid(rng.random((12, 1, 8, 8)), rng.random((12, 1, 8, 8)), n=3)
    assert r.shape == (2 * 8 + 6, 3 * 8 + 8) and r.dtype == np.uint8
    with pytest.raises(ConfigError):
        figures.image_grid([a, np.zeros((2, 1, 7, 7))])


# --- a trained model ---------------------------------------------------------------------------------
def test_trained_model_scores_noise_as_anomalous():
    bundle = load_dataset("digits")
    cfg = DenseConfig(input_shape=bundle.sample_shape, hidden=[32], latent_dim=8)
    tm = make_tm(cfg)
    x = bundle.test.x
    before = inference.per_item_errors(tm, x).mean()
    Trainer(TrainConfig(epochs=15, batch_size=64, lr=3e-3, device="cpu", seed=0)).fit(tm.model, bundle, tm.normaliser)
    err = inference.per_item_errors(tm, x)
    assert err.mean() < 0.5 * before
    assert baselines.psnr(err.mean()) > baselines.psnr(before)
    noise = np.random.default_rng(1).random((len(x), *bundle.sample_shape), dtype=np.float32)
    assert np.median(inference.per_item_errors(tm, noise)) > np.percentile(err, 95)
    acc = baselines.linear_probe(
        inference.encode(tm, bundle.train.x), bundle.train.labels, inference.encode(tm, x), bundle.test.labels
    )
    assert acc > 0.5  # ten classes: chance is 0.1
