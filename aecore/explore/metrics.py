"""Test metrics of a model beside PCA at the same code size: what `python -m aecore
eval` prints, what a run records when it ends and what Compare tabulates."""

from __future__ import annotations

import numpy as np
import torch

from aecore.data import DataBundle, as_float
from aecore.explore import baselines, inference
from aecore.models.trained import TrainedModel
from aecore.train import evaluate as evaluate_loss
from aecore.train import split_tensors


def evaluate(tm: TrainedModel, bundle: DataBundle, split: str = "test", pca_items: int = 20000) -> dict:
    """Test metrics of a model with PCA at the same code size fitted in the same call."""
    model = tm.model
    device = next(model.parameters()).device
    s = getattr(bundle, split)
    batch = int(tm.meta.train.get("batch_size", 1024))
    x, t = split_tensors(bundle, split, tm.normaliser, device)
    batch_sum = getattr(model.config, "loss", None) is not None and model.config.loss.reduction == "batch_sum"
    loss, terms = evaluate_loss(model, x, t, batch if batch_sum else max(batch, 1024))
    out = {"split": split, "n_items": len(s), "test_loss": loss, "test_terms": terms, "latent_dim": model.latent_dim}
    if bundle.kind == "sequence":
        out.update(inference.sequence_accuracy(tm, s.x, s.target))
        return out
    errors = inference.per_item_errors(tm, s.x)
    mse = float(errors.mean())
    pca = baselines.pca_fit(as_float(bundle.train.x, bundle), model.latent_dim, max_items=pca_items)
    pca_mse = float(baselines.pca_errors(pca, as_float(s.x, bundle)).mean())
    dim = int(np.prod(bundle.sample_shape))
    out.update(
        {
            "test_mse": mse,
            "pca_test_mse": pca_mse,
            "psnr_db": baselines.psnr(mse),
            "pca_psnr_db": baselines.psnr(pca_mse),
            "pca_components": int(pca.components.shape[0]),
            "test_sse_per_item": mse * dim,
            "pca_sse_per_item": pca_mse * dim,
            "compression_ratio": baselines.compression_ratio(bundle.sample_shape, model.latent_dim),
        }
    )
    if model.config.loss.reduction == "batch_sum" and model.config.loss.scale == 0.5:
        # Seed 002 reports 0.5 * sum of squared error in standardised units, over the whole test set.
        with torch.inference_mode():
            rec = torch.cat([model.reconstruct(x[i : i + 4096]) for i in range(0, len(x), 4096)])
        half = 0.5 * (rec - x).pow(2).flatten(1).sum(1)
        out["source_cost_per_item"] = float(half.mean())
        out["source_total_cost"] = float(half.sum())
    return out
