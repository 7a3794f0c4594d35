"""Quality reproduction: every seed's preset on its dataset, the issue's goals, autoencoders vs PCA.

    .venv/bin/python bench/quality.py                                  # full run: several hours on 2 cores
    .venv/bin/python bench/quality.py --estimate                       # predicted time of the full run
    .venv/bin/python bench/quality.py --limit 2000 --epochs 1          # smoke run, a few minutes
    .venv/bin/python bench/quality.py --only hinton-30,code-size --resume

It reads MNIST and Fashion-MNIST from a data dir (``--data-dir``, default ``../shared/data``
beside the repository, else ``$AECORE_DATA_DIR``) and writes, under ``--out`` (default ``docs``):

* ``results.json``: one row per experiment, rewritten after every experiment, so an interrupted
  run keeps what it finished (``--resume`` then skips those rows);
* ``results.md``: the goals met or missed with their measured figures, the tables and figures;
  ``results-notes.md`` in the same folder, if present, is appended (hand-written explanations);
* ``figures/*.png``: originals over reconstructions per preset, seed 002's weight tiles and
  cost chart, the denoising rows, the anomaly-score histogram and the error-vs-code-size curve.

Trained models go to the model store (``--store``, default the dashboard's ``models_store/``)
as ``quality-<experiment>``, so every figure can be recomputed and every model opened in the app.

Experiments (``--only`` takes these names or the groups ``presets``, ``goals``, ``seed002``,
``denoise``, ``code-size``): the presets that come from a seed, on their seed's dataset, with
their own recipe; then the goals of the issue, each trained within ``--budget-min`` minutes
(30): ``hinton-30``, ``vae-mlp-bce``, ``conv-bce``, ``denoise-mnist`` and ``denoise-fashion-mnist``
(preset ``denoising-conv-bce``), ``probe-fashion-mnist`` (``deep-dense``'s codes),
``anomaly-mnist-vs-fashion`` (``vanilla``'s errors), ``code-size-mnist`` and ``code-size-fashion-mnist``
(``hinton-30``'s layers at code sizes 2, 10, 32). A goal's model whose recipe would take longer than the budget has its
epochs cut to what fits (measured by a 25-step probe) and a hard stop at the budget; the row says so. The same
applies to the faithful presets whose seeds train for hours (``SLOW_PRESETS``): their rows report what the seed's
recipe reaches in the budget, and say how many of the seed's epochs that was.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime as dt
import json
import math
import os
import platform
import shlex
import shutil
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, Path(__file__).resolve().parent):  # aecore, and bench/fastpath.py
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))
# Before torch loads OpenMP (aecore sets the same): spinning threads collapse on a shared 2-core machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from aecore.data import DataBundle, as_float, load_dataset  # noqa: E402
from aecore.device import describe_device, pick_device  # noqa: E402
from aecore.explore import baselines, figures, inference  # noqa: E402
from aecore.explore.metrics import evaluate  # noqa: E402
from aecore.presets import PRESETS, get_preset  # noqa: E402
from aecore.runs.pipeline import record_run  # noqa: E402
from aecore.runs.request import TrainRequest, prepare  # noqa: E402
from aecore.store import ModelStore, TrainedModel  # noqa: E402
from aecore.train import Trainer, TrainResult  # noqa: E402

BUDGET_MIN = 30.0
CODE_SIZES = (2, 10, 32)
CURVE_PRESET = "hinton-30"  # the autoencoder of the code-size curve, its code size changed
CURVE_EPOCHS = 15  # each code size: 15 epochs of hinton-30's recipe (cosine over the 15), ~7 min on one core
DENOISE_LEVEL = 0.5  # x + 0.5·N(0, 1) clipped to [0, 1], the Keras blog's noise
DENOISE_PRESET = "denoising-conv-bce"  # the faithful denoising-conv (MSE) stays at all-black output
SEED002 = ("basic-softplus", "gaussian-noise", "sparse-kl")
ANOMALY_MODEL = "vanilla"  # an MNIST model whose row is cheap; its test error scores the anomalies
PROBE_MODEL = "deep-dense"  # seed 000's 10-d code on Fashion-MNIST
FIG_SCALE = 2  # figures of 28x28 images are enlarged 2x (nearest neighbour) to be readable

# The goals of the issue: (metric, comparison, target, wording).
GOALS = {
    "hinton-30": (
        "test_sse_per_item",
        "<=",
        2.6,
        "MNIST squared error per image (784 pixels in [0,1]) <= 2.6 (paper 3.00, PCA-30 13.87)",
    ),
    "vae-mlp-bce": (
        "test_elbo_nats",
        "<=",
        100.0,
        "VAE 784-400-20, [0,1] pixels, BCE + KL: test loss <= 100 nats per image",
    ),
    "conv-bce": ("bce_per_pixel", "<=", 0.090, "conv AE on MNIST: per-pixel binary cross-entropy <= 0.090"),
    "conv": ("bce_per_pixel", "<=", 0.090, "conv AE on MNIST: per-pixel binary cross-entropy <= 0.090"),
    "denoise": ("psnr_gain_db", ">=", 10.0, "denoised PSNR >= noisy PSNR + 10 dB"),
    "seq2seq-lstm": (
        "sequence_accuracy",
        ">=",
        0.99,
        "seq2seq-lstm after one epoch of 100,000: exact-sequence accuracy >= 99% on 10,000 fresh",
    ),
    "probe": ("probe_margin", ">", 0.0, "logistic regression on 10-d AE codes beats PCA-10 (Fashion-MNIST)"),
    "anomaly": ("auroc", ">=", 0.99, "MNIST model scores MNIST test vs Fashion-MNIST test: AUROC >= 0.99"),
    "code-size": ("ae_minus_pca_mse", "<", 0.0, "AE test MSE below PCA's at code size {k}"),
}


# ----------------------------------------------------------------------------------------------
# Experiments
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Experiment:
    id: str
    kind: str  # preset | goal
    title: str
    run: object  # callable(ctx, exp) -> dict
    groups: tuple[str, ...] = ()


def _faithful_ids() -> list[str]:
    return [p.name for p in PRESETS.values() if p.source]


# Faithful presets whose seeds train for 100 epochs: they run last, under the budget.
SLOW_PRESETS = {"vae-mlp", "denoising-conv"}


def experiments() -> list[Experiment]:
    """In running order: quick faithful rows, the goals, then the faithful rows that take hours."""
    slow = SLOW_PRESETS
    faithful = [n for n in _faithful_ids() if n not in slow]
    faithful_slow = [n for n in _faithful_ids() if n in slow]
    out = [
        Experiment(
            n,
            "preset",
            f"{n} on {PRESETS[n].dataset} (seed {PRESETS[n].source})",
            run_preset,
            ("presets", *(("seed002",) if n in SEED002 else ())),
        )
        for n in faithful
    ]
    out += [
        Experiment("hinton-30", "goal", "deep autoencoder 784-1000-500-250-30 on MNIST", run_hinton, ("goals",)),
        Experiment("vae-mlp-bce", "goal", "VAE 784-400-20 with BCE + KL on MNIST", run_vae_bce, ("goals",)),
        Experiment("conv-bce", "goal", "conv AE with per-pixel BCE on MNIST", run_conv_bce, ("goals",)),
        Experiment(
            "denoise-mnist", "goal", "denoising-conv-bce on MNIST, x + 0.5·N(0,1)", run_denoise, ("goals", "denoise")
        ),
        Experiment(
            "denoise-fashion-mnist",
            "goal",
            "denoising-conv-bce on Fashion-MNIST, x + 0.5·N(0,1)",
            run_denoise,
            ("goals", "denoise"),
        ),
        Experiment("probe-fashion-mnist", "goal", "codes as features: 10-d AE codes vs PCA-10", run_probe, ("goals",)),
        Experiment(
            "anomaly-mnist-vs-fashion", "goal", "anomaly detection by reconstruction error", run_anomaly, ("goals",)
        ),
        Experiment(
            "code-size-mnist",
            "goal",
            "test error vs code size, AE and PCA, MNIST",
            run_code_size,
            ("goals", "code-size"),
        ),
        Experiment(
            "code-size-fashion-mnist",
            "goal",
            "test error vs code size, AE and PCA, Fashion-MNIST",
            run_code_size,
            ("goals", "code-size"),
        ),
    ]
    out += [
        Experiment(n, "preset", f"{n} on {PRESETS[n].dataset} (seed {PRESETS[n].source})", run_preset, ("presets",))
        for n in faithful_slow
    ]
    return out


def select(only: str | None) -> list[Experiment]:
    exps = experiments()
    if not only:
        return exps
    names = [s.strip() for s in only.split(",") if s.strip()]
    known = {e.id for e in exps} | {g for e in exps for g in e.groups}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(
            f"error: unknown experiment(s) {', '.join(unknown)}; choose from "
            f"{', '.join(e.id for e in exps)} or the groups {', '.join(sorted(known - {e.id for e in exps}))}."
        )
    return [e for e in exps if e.id in names or set(e.groups) & set(names)]


# ----------------------------------------------------------------------------------------------
# Context: settings, data, models, results
# ----------------------------------------------------------------------------------------------
@dataclass
class Trained:
    tm: TrainedModel
    bundle: DataBundle
    info: dict


@dataclass
class Ctx:
    args: argparse.Namespace
    out: Path
    data_dir: Path
    store: ModelStore
    hardware: dict
    results: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)  # model id -> Trained (this process)
    results_figs: dict = field(default_factory=dict)  # the charts drawn from several rows

    @property
    def fig_dir(self) -> Path:
        return self.out / "figures"

    def log(self, msg: str) -> None:
        print(f"[{dt.datetime.now():%H:%M:%S}] {msg}", flush=True)

    def budget_s(self) -> float | None:
        return None if self.args.budget_min <= 0 else self.args.budget_min * 60.0

    # --- data ---------------------------------------------------------------------------------
    def limit_eval(self, bundle: DataBundle) -> DataBundle:
        n = self.args.eval_limit
        if n is None:
            return bundle
        return DataBundle(
            bundle.name,
            bundle.kind,
            bundle.train,
            bundle.val.head(n),
            bundle.test.head(n),
            bundle.class_names,
            dict(bundle.info),
        )

    def data(self, name: str, val_fraction: float | None = None) -> DataBundle:
        b = load_dataset(name, self.data_dir, seed=0, val_fraction=val_fraction)
        return self.limit_eval(b.limit(self.args.limit))

    # --- models -------------------------------------------------------------------------------
    def model(
        self,
        model_id: str,
        preset: str,
        dataset: str | None = None,
        latent_dim: int | None = None,
        epochs: int | None = None,
        budget: bool = False,
        reuse: bool = True,
    ) -> Trained:
        """Train (or reuse) one model; saved to the store as ``quality-<model_id>``."""
        p = get_preset(preset)
        dataset = dataset or p.dataset
        a = self.args
        key = {
            "preset": preset,
            "dataset": dataset,
            "latent_dim": latent_dim,
            "epochs": a.epochs or epochs or p.train.epochs,
            "limit": a.limit,
            "eval_limit": a.eval_limit,
            "budget_min": a.budget_min if budget else None,
            "seed": 0,
        }
        name = f"quality-{model_id}"
        hit = self.models.get(model_id)
        if hit is not None and hit.info["key"] == key:
            return hit
        if reuse and self.store.exists(name):
            cfg = self.store.read_config(name)
            if cfg.get("quality_key") == key and cfg.get("status") in ("done", "stopped", "early_stopped"):
                tm = self.store.load(name, device=pick_device(a.device))
                bundle = self.data(dataset, p.val_fraction)
                info = {**tm.meta.extra.get("quality_info", {}), "key": key, "reused": True, "model_name": name}
                self.log(f"  {model_id}: reusing the stored model {name}")
                self.models[model_id] = Trained(tm, bundle, info)
                return self.models[model_id]
        t = self._train(model_id, preset, dataset, latent_dim, epochs, budget, key)
        t.tm.meta.extra["quality_key"] = key
        t.tm.meta.extra["quality_info"] = {k: v for k, v in t.info.items() if k != "key"}
        self.store.save(name, t.tm, overwrite=True)
        t.info["model_name"] = name
        self.models[model_id] = t
        return t

    def _train(self, model_id, preset, dataset, latent_dim, epochs, budget, key) -> Trained:
        a = self.args
        t0 = time.perf_counter()
        req = TrainRequest(
            preset=preset,
            dataset=dataset,
            epochs=a.epochs or epochs,
            latent_dim=latent_dim,
            limit=a.limit,
            device=a.device,
            data_dir=str(self.data_dir),
        )
        bundle, tm, cfg = prepare(req)
        bundle = self.limit_eval(bundle)
        fast = _enable_fast(tm.model, a.fast_fp32)
        info = {
            "key": key,
            "reused": False,
            "epochs_planned": cfg.epochs,
            "recipe_epochs": cfg.epochs,
            "fast_fp32": fast,
            "budget_note": "",
        }
        budget_s = self.budget_s() if budget else None
        if budget_s is not None and not a.epochs:
            epoch_s, ips = estimate_epoch_s(tm, bundle, cfg, fast=a.fast_fp32)
            # 80%: the probe misses per-epoch work (snapshots) and the machine's load drifts
            fit = max(1, int(0.8 * (budget_s - (time.perf_counter() - t0)) / epoch_s))
            info.update(probe_images_per_s=ips, probe_epoch_s=epoch_s)
            if fit < cfg.epochs:
                info["budget_note"] = (
                    f"epochs cut from {cfg.epochs} to {fit} to fit the {a.budget_min:g}-min "
                    f"budget (probe: {ips:,.0f} images/s, {epoch_s:.1f} s per epoch)"
                )
                self.log(f"  {model_id}: {info['budget_note']}")
                cfg = dataclasses.replace(cfg, epochs=fit)
                tm.meta.train = cfg.to_dict()
                info["epochs_planned"] = fit
        stop = threading.Event()
        timer = None
        if budget_s is not None:
            timer = threading.Timer(max(1.0, budget_s - (time.perf_counter() - t0)), stop.set)
            timer.daemon = True
            timer.start()
        self.log(
            f"  {model_id}: training {preset} on {bundle.name} ({len(bundle.train):,} items, "
            f"{cfg.epochs} epochs, batch {cfg.batch_size}{', code ' + str(latent_dim) if latent_dim else ''})"
        )
        try:
            result = Trainer(cfg, [_Progress(self, model_id)], stop).fit(tm.model, bundle, tm.normaliser)
        finally:
            if timer is not None:
                timer.cancel()
        if fast:
            from fastpath import disable_fast_fp32

            disable_fast_fp32(tm.model)
        if stop.is_set() and result.status in ("stopped", "done"):
            info["budget_note"] = (
                info["budget_note"] + "; " if info["budget_note"] else ""
            ) + f"stopped by the {a.budget_min:g}-min budget after {len(result.history)} epoch(s)"
        _finish(tm, result, cfg)
        info.update(
            status=result.status,
            message=result.message,
            epochs_run=len(result.history),
            train_wall_s=time.perf_counter() - t0,
            images_per_s=result.images_per_s,
            history={
                "train_loss": [h["train_loss"] for h in result.history],
                "val_loss": [h["val_loss"] for h in result.history],
            },
        )
        if result.status in ("failed", "diverged") and not result.history:
            raise RuntimeError(f"{model_id}: training {result.status}: {result.message}")
        tm.metrics.update(evaluate(tm, bundle))
        return Trained(tm, bundle, info)


def _enable_fast(model, mode: str) -> bool:
    if mode == "off":
        return False
    try:
        from fastpath import enable_fast_fp32

        return bool(enable_fast_fp32(model))
    except Exception:  # noqa: BLE001 - an optional speed-up; training goes on without it
        return False


def _finish(tm: TrainedModel, result: TrainResult, cfg) -> None:
    record_run(tm, result, cfg)  # what aecore's own pipeline records after Trainer.fit


class _Progress:
    def __init__(self, ctx: Ctx, model_id: str):
        self.ctx, self.model_id = ctx, model_id

    def on_epoch_end(self, e) -> None:
        val = "" if e.val_loss is None else f", val {e.val_loss:.5g}"
        self.ctx.log(
            f"    {self.model_id} epoch {e.epoch}/{e.epochs}: train {e.train_loss:.5g}{val}, "
            f"{e.images_per_s:,.0f} images/s, {e.elapsed_s:.0f} s"
        )


def estimate_epoch_s(
    tm: TrainedModel, bundle: DataBundle, cfg, steps: int = 25, fast: str = "auto"
) -> tuple[float, float]:
    """Seconds per epoch of this recipe here, from ``steps`` training steps of a copy of the model
    (the validation pass counted at a third of a training step per item)."""
    model = copy.deepcopy(tm.model)
    _enable_fast(model, fast)
    n = min(len(bundle.train), cfg.batch_size * steps)
    small = DataBundle(
        bundle.name,
        bundle.kind,
        bundle.train.head(n),
        bundle.val.head(min(256, len(bundle.val))),
        bundle.test.head(1),
        bundle.class_names,
        dict(bundle.info),
    )
    probe_cfg = dataclasses.replace(cfg, epochs=1, early_stopping_patience=None)
    res = Trainer(probe_cfg).fit(model, small, tm.normaliser)
    ips = max(res.images_per_s, 1e-9)
    return (len(bundle.train) + len(bundle.val) / 3) / ips, ips


# ----------------------------------------------------------------------------------------------
# Measurements beyond workflow.evaluate
# ----------------------------------------------------------------------------------------------
def bce_per_pixel(tm: TrainedModel, x: np.ndarray, rec: np.ndarray | None = None) -> float:
    """Mean binary cross-entropy of the [0, 1] reconstruction against the [0, 1] image
    (probabilities clipped to [1e-7, 1 - 1e-7], as Keras does)."""
    rec = (inference.reconstruct(tm, x) if rec is None else rec).astype(np.float64)
    t = as_float_any(x).astype(np.float64).reshape(rec.shape)
    r = np.clip(rec, 1e-7, 1 - 1e-7)
    return float(np.mean(-(t * np.log(r) + (1 - t) * np.log(1 - r))))


def as_float_any(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)


def vae_test_elbo(tm: TrainedModel, x: np.ndarray, seed: int = 0, batch: int = 2048) -> dict:
    """pytorch/examples' VAE test loss: summed BCE (one z drawn per image) + KL, nats per image;
    also the same with z at the posterior mean (what aecore's evaluate reports)."""
    import torch.nn.functional as F

    model = tm.model
    gen = torch.Generator().manual_seed(seed)
    tot_s, tot_m, tot_kl = 0.0, 0.0, 0.0
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            xb = tm.to_model_space(torch.as_tensor(as_float_any(x[i : i + batch])))
            mu, logvar = model.encode_stats(xb)
            eps = torch.randn(mu.shape, generator=gen).to(mu.device)
            z = mu + eps * torch.exp(0.5 * logvar)
            flat = xb.flatten(1)
            bce_s = F.binary_cross_entropy(model.decode(z).flatten(1), flat, reduction="none").sum(1)
            bce_m = F.binary_cross_entropy(model.decode(mu).flatten(1), flat, reduction="none").sum(1)
            kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)
            tot_s += float((bce_s + kl).sum())
            tot_m += float((bce_m + kl).sum())
            tot_kl += float(kl.sum())
    n = len(x)
    return {"test_elbo_nats": tot_s / n, "test_loss_at_mean_nats": tot_m / n, "test_kl_nats": tot_kl / n}


def noisy_copy(x: np.ndarray, level: float = DENOISE_LEVEL, seed: int = 0) -> np.ndarray:
    clean = as_float_any(x)
    rng = np.random.default_rng(seed)
    return np.clip(clean + level * rng.standard_normal(clean.shape, dtype=np.float32), 0.0, 1.0)


def denoise_metrics(tm: TrainedModel, x: np.ndarray, seed: int = 0) -> tuple[dict, np.ndarray, np.ndarray]:
    clean = as_float_any(x)
    noisy = noisy_copy(x, seed=seed)
    den = inference.reconstruct(tm, noisy)
    noisy_mse = float(np.mean((noisy.astype(np.float64) - clean) ** 2))
    den_mse = float(np.mean((den.astype(np.float64) - clean) ** 2))
    m = {
        "noisy_mse": noisy_mse,
        "denoised_mse": den_mse,
        "noisy_psnr_db": baselines.psnr(noisy_mse),
        "denoised_psnr_db": baselines.psnr(den_mse),
    }
    m["psnr_gain_db"] = m["denoised_psnr_db"] - m["noisy_psnr_db"]
    return m, noisy, den


def standard_metrics(t: Trained) -> dict:
    m = t.tm.metrics
    keys = (
        "test_loss",
        "test_mse",
        "psnr_db",
        "pca_test_mse",
        "pca_psnr_db",
        "test_sse_per_item",
        "pca_sse_per_item",
        "pca_components",
        "latent_dim",
        "compression_ratio",
        "source_cost_per_item",
        "sequence_accuracy",
        "token_accuracy",
        "final_train_loss",
        "final_val_loss",
    )
    out = {k: m[k] for k in keys if k in m}
    out["n_test"] = m.get("n_items")
    if t.bundle.kind == "image" and t.tm.model.config.input_shape[0] == 1:
        rec = inference.reconstruct(t.tm, t.bundle.test.x)
        out["bce_per_pixel"] = bce_per_pixel(t.tm, t.bundle.test.x, rec)
        # a model stuck at an all-black output (the MSE + sigmoid plateau) has learned nothing
        out["all_black_mse"] = float(np.mean(as_float_any(t.bundle.test.x).astype(np.float64) ** 2))
        out["mean_output"] = float(rec.mean())
    return out


def train_fields(t: Trained) -> dict:
    i = t.info
    return {
        "epochs": i.get("epochs_run"),
        "epochs_planned": i.get("epochs_planned"),
        "recipe_epochs": i.get("recipe_epochs"),
        "train_wall_s": i.get("train_wall_s"),
        "images_per_s": i.get("images_per_s"),
        "train_status": i.get("status"),
        "budget_note": i.get("budget_note", ""),
        "fast_fp32": i.get("fast_fp32"),
        "model": i.get("model_name"),
        "reused_model": i.get("reused", False),
        "n_train": len(t.bundle.train),
    }


def goal(
    name: str, value: float | None, train_wall_s: float | None, fmt: dict | None = None, experiment: str | None = None
) -> dict:
    metric, op, target, text = GOALS[name]
    ok = None
    if value is not None and math.isfinite(value):
        ok = {"<=": value <= target, ">=": value >= target, "<": value < target, ">": value > target}[op]
    return {
        "goal": text.format(**(fmt or {})),
        "metric": metric,
        "op": op,
        "target": target,
        "value": value,
        "met": ok,
        "train_wall_s": train_wall_s,
        "within_budget": None if train_wall_s is None else train_wall_s <= BUDGET_MIN * 60 + 1,
        "experiment": experiment,
    }


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------
def save_png(img: np.ndarray, path: Path, scale: int = 1) -> str:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(img)
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    im.save(path)
    return path.as_posix()


def recon_figure(ctx: Ctx, t: Trained, fig_id: str, n: int = 10) -> str:
    x = t.bundle.test.x[:n]
    path = ctx.fig_dir / f"recon-{fig_id}.png"
    save_png(figures.recon_grid(x, inference.reconstruct(t.tm, x), n=n), path, FIG_SCALE)
    return rel(ctx, path)


def rel(ctx: Ctx, path: Path) -> str:
    return path.relative_to(ctx.out).as_posix()


COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]


def line_chart(
    path: Path,
    series: list[dict],
    title: str,
    xlabel: str,
    ylabel: str,
    logy: bool = False,
    xticks: list[float] | None = None,
    logx: bool = False,
) -> str:
    """One chart of several series ({label, x, y, dashed, color index}); matplotlib when installed, else PIL.
    Returns which of the two drew it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        _pil_chart(path, series, title, xlabel, ylabel, logy, xticks, logx)
        return "pil"
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    for i, s in enumerate(series):
        c = tuple(v / 255 for v in COLORS[s.get("color", i) % len(COLORS)])
        ax.plot(s["x"], s["y"], "--" if s.get("dashed") else "-", marker="o", ms=3, color=c, label=s["label"])
    if logy:
        ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    if xticks:
        ax.set_xticks(xticks, [f"{v:g}" for v in xticks])
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return "matplotlib"


def _pil_chart(path, series, title, xlabel, ylabel, logy, xticks, logx=False) -> None:
    from PIL import Image, ImageDraw, ImageFont

    W, H, L, R, T, B = 820, 500, 90, 30, 40, 60
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    fx = math.log10 if logx else float
    fy = math.log10 if logy else float

    def ok(x, y):
        return (
            y is not None
            and math.isfinite(y)
            and (not logy or y > 0)
            and x is not None
            and math.isfinite(x)
            and (not logx or x > 0)
        )

    pts = [(fx(x), fy(y)) for s in series for x, y in zip(s["x"], s["y"]) if ok(x, y)] or [(0.0, 0.0), (1.0, 1.0)]
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - 1, y1 + 1
    pad = 0.05 * (y1 - y0)
    y0, y1 = (0.0 if not logy and y0 >= 0 else y0 - pad), y1 + pad

    def px(x, y):  # transformed data -> pixel
        return (L + (x - x0) / (x1 - x0) * (W - L - R), T + (y1 - y) / (y1 - y0) * (H - T - B))

    d.rectangle([L, T, W - R, H - B], outline=(0, 0, 0))
    for i in range(6):  # y grid and labels
        yv = y0 + (y1 - y0) * i / 5
        _, yy = px(x0, yv)
        d.line([L, yy, W - R, yy], fill=(225, 225, 225))
        label = f"{(10**yv) if logy else yv:.3g}"
        d.text((L - 5 - d.textlength(label, font=font), yy - 6), label, fill=(0, 0, 0), font=font)
    ticks = [fx(v) for v in xticks] if xticks else [x0 + (x1 - x0) * i / 5 for i in range(6)]
    for xv in ticks:
        xx, _ = px(xv, y0)
        d.line([xx, T, xx, H - B], fill=(235, 235, 235))
        d.text((xx - 12, H - B + 5), f"{(10**xv) if logx else xv:.3g}", fill=(0, 0, 0), font=font)
    legend = []
    for i, s in enumerate(series):
        c = COLORS[s.get("color", i) % len(COLORS)]
        xy = [px(fx(x), fy(y)) for x, y in zip(s["x"], s["y"]) if ok(x, y)]
        for a, b in zip(xy[:-1], xy[1:]):
            if not s.get("dashed"):
                d.line([a, b], fill=c, width=2)
                continue
            length = math.hypot(b[0] - a[0], b[1] - a[1])
            for u in np.arange(0.0, length, 12.0):  # 7-pixel dashes, 5-pixel gaps
                v = min(u + 7.0, length)
                d.line(
                    [
                        (a[0] + (b[0] - a[0]) * u / length, a[1] + (b[1] - a[1]) * u / length),
                        (a[0] + (b[0] - a[0]) * v / length, a[1] + (b[1] - a[1]) * v / length),
                    ],
                    fill=c,
                    width=2,
                )
        for x, y in xy:
            d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=c)
        legend.append((c, s["label"][:36], s.get("dashed", False)))
    if legend:  # top right, on white
        d.rectangle([W - R - 236, T + 4, W - R - 4, T + 12 + 14 * len(legend)], fill="white", outline=(160, 160, 160))
        for i, (c, label, dashed) in enumerate(legend):
            ly = T + 8 + 14 * i
            for x_a, x_b in (
                ((W - R - 230, W - R - 221), (W - R - 214, W - R - 205)) if dashed else ((W - R - 230, W - R - 205),)
            ):
                d.line([x_a, ly + 6, x_b, ly + 6], fill=c, width=3)
            d.text((W - R - 200, ly), label, fill=(0, 0, 0), font=font)
    d.text((L, 12), title, fill=(0, 0, 0), font=font)
    d.text(((W + L) / 2 - 3 * len(xlabel), H - 25), xlabel, fill=(0, 0, 0), font=font)
    lab = Image.new("RGB", (max(10, 7 * len(ylabel)), 14), "white")
    ImageDraw.Draw(lab).text((0, 0), ylabel, fill=(0, 0, 0), font=font)
    lab = lab.rotate(90, expand=True)
    img.paste(lab, (4, max(0, (H - lab.height) // 2)))
    img.save(path)


def cost_chart(ctx: Ctx) -> str | None:
    """Seed 002's chart: per-epoch cost of its three models on one chart (from the rows so far)."""
    series = []
    for name in SEED002:
        row = ctx.results.get(name)
        if row and row.get("status") == "done" and row.get("history", {}).get("train_loss"):
            ys = row["history"]["train_loss"]
            series.append({"label": name, "x": list(range(1, len(ys) + 1)), "y": ys})
    if not series:
        return None
    path = ctx.fig_dir / "cost-seed002.png"
    line_chart(
        path,
        series,
        "Seed 002: training cost per epoch (MNIST, standardised pixels)",
        "epoch",
        "mean cost per batch of 128 (0.5·SSE [+ KL])",
    )
    return rel(ctx, path)


def code_size_chart(ctx: Ctx) -> str | None:
    series = []
    for colour, ds in enumerate(("mnist", "fashion-mnist")):
        row = ctx.results.get(f"code-size-{ds}")
        if not row or row.get("status") != "done":
            continue
        per = row["metrics"]["by_code_size"]
        ks = sorted(int(k) for k in per)
        series.append({"label": f"AE {ds}", "x": ks, "y": [per[str(k)]["ae_test_mse"] for k in ks], "color": colour})
        series.append(
            {
                "label": f"PCA {ds}",
                "x": ks,
                "y": [per[str(k)]["pca_test_mse"] for k in ks],
                "dashed": True,
                "color": colour,
            }
        )
    if not series:
        return None
    path = ctx.fig_dir / "code-size.png"
    line_chart(
        path,
        series,
        "Test MSE per pixel against code size",
        "code size",
        "test MSE (log scale)",
        logy=True,
        xticks=list(CODE_SIZES),
    )
    return rel(ctx, path)


# ----------------------------------------------------------------------------------------------
# Experiment bodies: each returns the row's fields (metrics, goals, figures, ...)
# ----------------------------------------------------------------------------------------------
def run_preset(ctx: Ctx, exp: Experiment) -> dict:
    name = exp.id
    p = PRESETS[name]
    t = ctx.model(name, name, budget=name in SLOW_PRESETS, reuse=ctx.args.resume)
    row = {
        "preset": name,
        "dataset": t.bundle.name,
        "metrics": standard_metrics(t),
        **train_fields(t),
        "history": t.info.get("history", {}),
        "figures": [],
        "goals": [],
    }
    wall = t.info.get("train_wall_s")
    if t.bundle.kind == "image":
        row["figures"].append(recon_figure(ctx, t, name))
    if p.source == "002":
        w = t.tm.model.first_layer_weight().detach().cpu()
        path = ctx.fig_dir / f"weights-{name}.png"
        save_png(figures.weight_tiles(w, t.bundle.sample_shape), path)
        row["figures"].append(rel(ctx, path))
    if t.tm.model.is_variational:
        z = np.random.default_rng(0).standard_normal((10, t.tm.model.latent_dim)).astype(np.float32)
        path = ctx.fig_dir / f"samples-{name}.png"
        save_png(figures.image_grid([inference.decode(t.tm, z)]), path, FIG_SCALE)
        row["figures"].append(rel(ctx, path))
    if t.bundle.kind == "sequence":
        x, y = t.bundle.test.x[:5], t.bundle.test.target[:5]
        pred = inference.reconstruct(t.tm, x)
        row["examples"] = [
            {"input": a.tolist(), "expected": b.tolist(), "predicted": c.tolist()} for a, b, c in zip(x, y, pred)
        ]
        row["goals"].append(goal("seq2seq-lstm", row["metrics"].get("sequence_accuracy"), wall, experiment=name))
    if name == "conv":
        row["goals"].append(goal("conv", row["metrics"]["bce_per_pixel"], wall, experiment=name))
    if name == "denoising-conv":
        m, noisy, den = denoise_metrics(t.tm, t.bundle.test.x)
        row["metrics"].update(m)
        row["figures"].append(denoise_figure(ctx, t, noisy, den, name))
        row["goals"].append(goal("denoise", m["psnr_gain_db"], wall, experiment=f"{name} ({t.bundle.name})"))
    return row


def run_hinton(ctx: Ctx, exp: Experiment) -> dict:
    t = ctx.model(exp.id, "hinton-30", budget=True, reuse=ctx.args.resume)
    m = standard_metrics(t)
    return {
        "preset": "hinton-30",
        "dataset": t.bundle.name,
        "metrics": m,
        **train_fields(t),
        "history": t.info.get("history", {}),
        "figures": [recon_figure(ctx, t, exp.id)],
        "goals": [goal("hinton-30", m["test_sse_per_item"], t.info.get("train_wall_s"), experiment=exp.id)],
    }


def run_vae_bce(ctx: Ctx, exp: Experiment) -> dict:
    t = ctx.model(exp.id, "vae-mlp-bce", budget=True, reuse=ctx.args.resume)
    m = standard_metrics(t)
    m.update(vae_test_elbo(t.tm, t.bundle.test.x))
    z = np.random.default_rng(0).standard_normal((10, t.tm.model.latent_dim)).astype(np.float32)
    path = ctx.fig_dir / f"samples-{exp.id}.png"
    save_png(figures.image_grid([inference.decode(t.tm, z)]), path, FIG_SCALE)
    return {
        "preset": "vae-mlp-bce",
        "dataset": t.bundle.name,
        "metrics": m,
        **train_fields(t),
        "history": t.info.get("history", {}),
        "figures": [recon_figure(ctx, t, exp.id), rel(ctx, path)],
        "goals": [goal("vae-mlp-bce", m["test_elbo_nats"], t.info.get("train_wall_s"), experiment=exp.id)],
    }


def run_conv_bce(ctx: Ctx, exp: Experiment) -> dict:
    t = ctx.model(exp.id, "conv-bce", budget=True, reuse=ctx.args.resume)
    m = standard_metrics(t)
    return {
        "preset": "conv-bce",
        "dataset": t.bundle.name,
        "metrics": m,
        **train_fields(t),
        "history": t.info.get("history", {}),
        "figures": [recon_figure(ctx, t, exp.id)],
        "goals": [goal("conv-bce", m["bce_per_pixel"], t.info.get("train_wall_s"), experiment=exp.id)],
    }


def denoise_figure(ctx: Ctx, t: Trained, noisy: np.ndarray, den: np.ndarray, fig_id: str, n: int = 10) -> str:
    path = ctx.fig_dir / f"denoise-{fig_id}.png"
    save_png(figures.image_grid([as_float_any(t.bundle.test.x[:n]), noisy[:n], den[:n]]), path, FIG_SCALE)
    return rel(ctx, path)


def run_denoise(ctx: Ctx, exp: Experiment) -> dict:
    ds = exp.id.removeprefix("denoise-")
    t = ctx.model(exp.id, DENOISE_PRESET, dataset=ds, budget=True, reuse=ctx.args.resume)
    m = standard_metrics(t)
    dm, noisy, den = denoise_metrics(t.tm, t.bundle.test.x)
    m.update(dm)
    return {
        "preset": DENOISE_PRESET,
        "dataset": ds,
        "metrics": m,
        **train_fields(t),
        "history": t.info.get("history", {}),
        "figures": [denoise_figure(ctx, t, noisy, den, exp.id)],
        "goals": [goal("denoise", dm["psnr_gain_db"], t.info.get("train_wall_s"), experiment=f"{exp.id}")],
    }


def run_probe(ctx: Ctx, exp: Experiment) -> dict:
    """Logistic regression on the 10-d codes of seed 000's deep-dense model vs on PCA-10."""
    t = ctx.model(PROBE_MODEL, PROBE_MODEL)  # the faithful row's model, reused when it exists
    b = t.bundle
    tr_y, te_y = b.train.labels, b.test.labels
    t0 = time.perf_counter()
    ae = baselines.linear_probe(inference.encode(t.tm, b.train.x), tr_y, inference.encode(t.tm, b.test.x), te_y)
    k = t.tm.model.latent_dim
    pca = baselines.pca_fit(as_float(b.train.x, b), k)
    pc = baselines.linear_probe(pca.transform(b.train.x), tr_y, pca.transform(b.test.x), te_y)
    m = {
        "ae_probe_accuracy": ae,
        "pca_probe_accuracy": pc,
        "probe_margin": ae - pc,
        "code_size": k,
        "ae_model": PROBE_MODEL,
        "probe_s": time.perf_counter() - t0,
    }
    other = ctx.models.get("code-size-fashion-mnist-k10")  # only when this run already has it
    if other is not None:
        ob = other.bundle
        m["curve_ae10_probe_accuracy"] = baselines.linear_probe(
            inference.encode(other.tm, ob.train.x),
            ob.train.labels,
            inference.encode(other.tm, ob.test.x),
            ob.test.labels,
        )
    return {
        "preset": PROBE_MODEL,
        "dataset": b.name,
        "metrics": m,
        **train_fields(t),
        "figures": [],
        "goals": [goal("probe", m["probe_margin"], t.info.get("train_wall_s"), experiment=exp.id)],
    }


def run_anomaly(ctx: Ctx, exp: Experiment) -> dict:
    from sklearn.metrics import roc_auc_score

    t = ctx.model(ANOMALY_MODEL, ANOMALY_MODEL)
    fashion = ctx.data("fashion-mnist")
    normal = inference.per_item_errors(t.tm, t.bundle.test.x)
    odd = inference.per_item_errors(t.tm, fashion.test.x)
    y = np.r_[np.zeros(len(normal)), np.ones(len(odd))]
    auroc = float(roc_auc_score(y, np.r_[normal, odd]))
    m = {
        "auroc": auroc,
        "model": ANOMALY_MODEL,
        "n_mnist": len(normal),
        "n_fashion": len(odd),
        "mnist_mean_error": float(normal.mean()),
        "fashion_mean_error": float(odd.mean()),
    }
    others = {}
    for mid, o in ctx.models.items():  # every other MNIST image model this run already has
        if mid != ANOMALY_MODEL and o.bundle.name == "mnist" and o.bundle.kind == "image":
            e0 = inference.per_item_errors(o.tm, o.bundle.test.x)
            e1 = inference.per_item_errors(o.tm, fashion.test.x)
            others[mid] = float(roc_auc_score(np.r_[np.zeros(len(e0)), np.ones(len(e1))], np.r_[e0, e1]))
    if others:
        m["auroc_other_models"] = others
    lo = np.log10(max(min(normal.min(), odd.min()), 1e-8))
    hi = np.log10(max(normal.max(), odd.max(), 1e-8))
    edges = np.linspace(lo, hi + 1e-9, 41)
    centers = 10 ** ((edges[:-1] + edges[1:]) / 2)
    path = ctx.fig_dir / "anomaly-hist.png"
    series = [
        {
            "label": f"MNIST test ({len(normal):,})",
            "x": centers.tolist(),
            "y": np.histogram(np.log10(np.maximum(normal, 1e-8)), edges)[0].tolist(),
        },
        {
            "label": f"Fashion-MNIST test ({len(odd):,})",
            "x": centers.tolist(),
            "y": np.histogram(np.log10(np.maximum(odd, 1e-8)), edges)[0].tolist(),
        },
    ]
    line_chart(
        path,
        series,
        f"Reconstruction error of the {ANOMALY_MODEL} MNIST model (AUROC {auroc:.4f})",
        "per-image MSE (log scale)",
        "images per bin (log-spaced bins)",
        logx=True,
    )
    return {
        "preset": ANOMALY_MODEL,
        "dataset": "mnist vs fashion-mnist",
        "metrics": m,
        **train_fields(t),
        "figures": [rel(ctx, path)],
        "goals": [goal("anomaly", auroc, t.info.get("train_wall_s"), experiment=exp.id)],
    }


def run_code_size(ctx: Ctx, exp: Experiment) -> dict:
    ds = exp.id.removeprefix("code-size-")
    per, goals, walls, epochs, notes = {}, [], {}, {}, []
    for k in CODE_SIZES:
        t = ctx.model(
            f"{exp.id}-k{k}",
            CURVE_PRESET,
            dataset=ds,
            latent_dim=k,
            epochs=CURVE_EPOCHS,
            budget=True,
            reuse=ctx.args.resume,
        )
        m = t.tm.metrics
        per[str(k)] = {
            "ae_test_mse": m["test_mse"],
            "pca_test_mse": m["pca_test_mse"],
            "ae_psnr_db": m["psnr_db"],
            "pca_psnr_db": m["pca_psnr_db"],
            "pca_components": m["pca_components"],
            "epochs": t.info.get("epochs_run"),
            "train_wall_s": t.info.get("train_wall_s"),
            "model": t.info.get("model_name"),
        }
        walls[str(k)] = t.info.get("train_wall_s")
        epochs[str(k)] = t.info.get("epochs_run")
        if t.info.get("budget_note"):
            notes.append(f"code {k}: {t.info['budget_note']}")
        if k in (2, 10):
            goals.append(
                goal(
                    "code-size",
                    m["test_mse"] - m["pca_test_mse"],
                    t.info.get("train_wall_s"),
                    {"k": k},
                    experiment=f"{exp.id} (k={k})",
                )
            )
            goals[-1]["detail"] = f"AE {m['test_mse']:.5f} vs PCA {m['pca_test_mse']:.5f}"
    total = sum(v for v in walls.values() if v)
    return {
        "preset": f"{CURVE_PRESET} (code size changed)",
        "dataset": ds,
        "metrics": {"by_code_size": per},
        "epochs": epochs,
        "train_wall_s": total,
        "budget_note": "; ".join(notes),
        "figures": [],
        "goals": goals,
        "n_train": len(t.bundle.train),
    }


# ----------------------------------------------------------------------------------------------
# Results: JSON and Markdown
# ----------------------------------------------------------------------------------------------
def _clean(obj):
    """JSON-safe: non-finite floats become None, numpy scalars become Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def write_json(ctx: Ctx) -> None:
    doc = {
        "title": "Autoencoder Studio: quality reproduction",
        "runs": ctx.hardware["runs"],
        "hardware": ctx.hardware["now"],
        "experiments": ctx.results,
    }
    path = ctx.out / "results.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_clean(doc), indent=1, allow_nan=False))
    os.replace(tmp, path)


def _fmt(v, nd: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "–"
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 10 ** -(nd - 1)):
            return f"{v:.{nd - 1}e}"
        return f"{v:.{nd}g}"
    return str(v)


def _dur(s) -> str:
    if s is None:
        return "–"
    s = float(s)
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def _met(g: dict) -> str:
    return {True: "**met**", False: "**missed**", None: "not measured"}[g.get("met")]


def write_markdown(ctx: Ctx) -> None:
    rows = ctx.results
    hw = ctx.hardware["now"]
    last = ctx.hardware["runs"][-1]
    L = [
        "# Quality reproduction",
        "",
        "Written by `bench/quality.py`; every figure below comes from `results.json` beside this file.",
        "",
        f"- last command: `{last['command']}`",
        f"- date: {last['started']}",
        f"- hardware: {hw['device']}; CPU {hw['cpu_model']} ({hw['cpu_count']} logical cores); "
        f"torch {hw['torch']}, Python {hw['python']}, {hw['platform']}",
        f"- load average at start (1, 5, 15 min): {last.get('load_avg_start')}; the machine is shared, so wall "
        "times depend on what else ran (each row records the load average at its start and end)",
        "- reproduce everything: `.venv/bin/python bench/quality.py --data-dir ../shared/data` "
        "(one row: the command in its row; `--resume` continues an interrupted run)",
        "- each row lists its own command, hardware and wall time; rows run with `--limit`, `--eval-limit` "
        "or `--epochs` are smoke runs, not the recipe's figures.",
        "",
    ]
    quick = [r["experiment"] for r in rows.values() if r.get("settings", {}).get("quick")]
    if quick:
        L += [f"> **Smoke-run rows** (trained on a subset or for fewer epochs): {', '.join(quick)}.", ""]

    # Goals
    L += [
        "## Goals",
        "",
        "| goal | experiment | measured | target | result | trained in | within 30 min | note |",
        "|---|---|---:|---:|---|---:|---|---|",
    ]
    for r in rows.values():
        for g in r.get("goals", []):
            note = "; ".join(x for x in (g.get("detail"), r.get("budget_note"), r.get("error")) if x)
            L.append(
                f"| {g['goal']} | {g.get('experiment') or r['experiment']} | {_fmt(g['value'])} | "
                f"{g['op']} {_fmt(g['target'])} | {_met(g)} | {_dur(g.get('train_wall_s'))} | "
                f"{_fmt(g.get('within_budget'))} | {note} |"
            )
    missed = [(r, g) for r in rows.values() for g in r.get("goals", []) if g.get("met") is False]
    failed = [r for r in rows.values() if r.get("status") != "done"]
    if missed or failed:
        L += ["", "### Misses and failures", ""]
        for r, g in missed:
            facts = [f"measured {_fmt(g['value'])} against {g['op']} {_fmt(g['target'])}"]
            if r.get("settings", {}).get("quick"):
                facts.append("smoke-run settings (subset or fewer epochs), not the recipe")
            if r.get("budget_note"):
                facts.append(r["budget_note"])
            if g.get("within_budget") is False:
                facts.append("training took longer than 30 minutes")
            m = r.get("metrics", {})
            if m.get("mean_output") is not None and m["mean_output"] < 0.02:
                facts.append(
                    f"the output is (nearly) all black: test MSE {_fmt(m['test_mse'])} against "
                    f"{_fmt(m['all_black_mse'])} for an all-black image"
                )
            L.append(f"- {g['goal']} ({g.get('experiment')}): " + "; ".join(facts) + ".")
        for r in failed:
            L.append(f"- {r['experiment']} did not finish: {r.get('error', r.get('status'))}")
    notes = ctx.out / "results-notes.md"
    if notes.is_file():
        L += ["", notes.read_text(encoding="utf-8").strip()]

    # Preset rows
    L += [
        "",
        "## Presets and goal models",
        "",
        "Test split of each dataset; MSE per pixel on [0, 1] images (SSE = MSE × 784); PCA fitted on the "
        "training split at the same code size; seed cost = seed 002's 0.5·SSE per test image in "
        "standardised units.",
        "",
        "| experiment | preset | dataset | code | test MSE | SSE/img | PSNR dB | PCA MSE | PCA PSNR | BCE/px | "
        "other | epochs | train | wall | images/s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows.values():
        m = r.get("metrics", {})
        if "by_code_size" in m or r.get("status") != "done":
            continue
        other = []
        for k, label in (
            ("source_cost_per_item", "seed cost"),
            ("test_loss", "test loss"),
            ("sequence_accuracy", "seq acc"),
            ("token_accuracy", "token acc"),
            ("test_elbo_nats", "ELBO nats"),
            ("test_loss_at_mean_nats", "loss at z=mu"),
            ("noisy_psnr_db", "noisy PSNR"),
            ("denoised_psnr_db", "denoised PSNR"),
            ("ae_probe_accuracy", "AE probe"),
            ("pca_probe_accuracy", "PCA probe"),
            ("curve_ae10_probe_accuracy", "curve AE-10 probe"),
            ("auroc", "AUROC"),
        ):
            if m.get(k) is not None:
                other.append(f"{label} {_fmt(m[k])}")
        for mid, v in (m.get("auroc_other_models") or {}).items():
            other.append(f"AUROC {mid} {_fmt(v)}")
        code = _fmt(m.get("latent_dim"))
        if m.get("pca_components") is not None and m.get("pca_components") != m.get("latent_dim"):
            code += f" (PCA {m['pca_components']})"  # PCA has at most min(784, training items) components
        L.append(
            f"| {r['experiment']} | {r.get('preset', '')} | {r.get('dataset', '')} | {code} | "
            f"{_fmt(m.get('test_mse'))} | {_fmt(m.get('test_sse_per_item'))} | {_fmt(m.get('psnr_db'))} | "
            f"{_fmt(m.get('pca_test_mse'))} | {_fmt(m.get('pca_psnr_db'))} | {_fmt(m.get('bce_per_pixel'))} | "
            f"{'; '.join(other)} | {_fmt(r.get('epochs'))} | {_dur(r.get('train_wall_s'))} | "
            f"{_dur(r.get('wall_s'))} | {_fmt(r.get('images_per_s'), 3)} |"
        )

    # Code-size curves
    curves = [r for r in rows.values() if "by_code_size" in r.get("metrics", {}) and r.get("status") == "done"]
    if curves:
        L += [
            "",
            "## Test error against code size",
            "",
            f"Autoencoder: `{CURVE_PRESET}`'s layers with the code size changed, {CURVE_EPOCHS} epochs "
            "(cosine schedule); PCA fitted on the training split.",
            "",
            "| dataset | code | AE MSE | PCA MSE | AE PSNR | PCA PSNR | epochs | train |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in curves:
            for k, v in r["metrics"]["by_code_size"].items():
                L.append(
                    f"| {r['dataset']} | {k} | {_fmt(v['ae_test_mse'])} | {_fmt(v['pca_test_mse'])} | "
                    f"{_fmt(v['ae_psnr_db'])} | {_fmt(v['pca_psnr_db'])} | {_fmt(v['epochs'])} | "
                    f"{_dur(v['train_wall_s'])} |"
                )

    seq = [r for r in rows.values() if r.get("examples")]
    for r in seq:
        L += ["", f"## {r['experiment']}: test sequences", "", "| input | expected | predicted |", "|---|---|---|"]
        for e in r["examples"]:
            L.append(f"| {e['input']} | {e['expected']} | {e['predicted']} |")

    # Figures
    L += ["", "## Figures", ""]
    for r in rows.values():
        for f in r.get("figures", []):
            L.append(f"- {r['experiment']}: `{f}`  \n  ![{r['experiment']}]({f})")
    for f, what in (
        (ctx.results_figs.get("cost"), "seed 002 cost per epoch"),
        (ctx.results_figs.get("code_size"), "test error against code size"),
    ):
        if f:
            L.append(f"- {what}: `{f}`  \n  ![{what}]({f})")

    # Commands and timings
    L += [
        "",
        "## Rows: command, hardware, wall time",
        "",
        "| experiment | status | wall | command | hardware |",
        "|---|---|---:|---|---|",
    ]
    for r in rows.values():
        L.append(
            f"| {r['experiment']} | {r.get('status')} | {_dur(r.get('wall_s'))} | `{r.get('command')}` | "
            f"{r.get('hardware')} |"
        )
    (ctx.out / "results.md").write_text("\n".join(L) + "\n", encoding="utf-8")


def hardware_info(device: str) -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"
    return {
        "device": describe_device(pick_device(device)),
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _load_avg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def row_command(args: argparse.Namespace, exp_id: str) -> str:
    parts = [
        ".venv/bin/python",
        "bench/quality.py",
        "--only",
        exp_id,
        "--data-dir",
        str(args.data_dir_given),
        "--out",
        str(args.out),
    ]
    for flag, v in (("--limit", args.limit), ("--eval-limit", args.eval_limit), ("--epochs", args.epochs)):
        if v is not None:
            parts += [flag, str(v)]
    if args.device != "auto":
        parts += ["--device", args.device]
    if args.budget_min != BUDGET_MIN:
        parts += ["--budget-min", f"{args.budget_min:g}"]
    return shlex.join(parts)


# ----------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------
def _positive_int(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/quality.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder holding MNIST/raw and FashionMNIST/raw (default ../shared/data beside the "
        "repository, else $AECORE_DATA_DIR)",
    )
    p.add_argument("--out", default="docs", help="where results.md, results.json and figures/ go (default docs)")
    p.add_argument("--store", default=None, help="model store for the trained models (default: the app's)")
    p.add_argument("--only", default=None, help="comma-separated experiments or groups")
    p.add_argument("--limit", type=_positive_int, default=None, help="train on the first N training items")
    p.add_argument(
        "--eval-limit",
        type=_positive_int,
        default=None,
        help="evaluate on the first N validation and test items (smoke runs)",
    )
    p.add_argument("--epochs", type=_positive_int, default=None, help="override every recipe's epochs")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="torch threads (default: torch's, or 1 when the load average at start is 1 or more)",
    )
    p.add_argument(
        "--budget-min",
        type=float,
        default=BUDGET_MIN,
        help="training budget of each goal model in minutes (0: none); default 30",
    )
    p.add_argument(
        "--fast-fp32",
        choices=("auto", "off"),
        default="auto",
        help="oneDNN linear layers where bench/fastpath.py says they pay (same fp32 numbers)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="skip experiments already done in results.json; reuse stored models of the same recipe",
    )
    p.add_argument("--fresh", action="store_true", help="start results.json from empty (default: merge rows)")
    p.add_argument(
        "--estimate",
        action="store_true",
        help="predict the wall time of the selected experiments from short probes; train nothing",
    )
    p.add_argument(
        "--merge",
        nargs="+",
        metavar="DIR",
        default=None,
        help="fold the finished rows and figures of other --out folders (runs in parallel processes) "
        "into --out and rewrite its results; train nothing",
    )
    return p


def merge_into(ctx: Ctx, dirs: list[str]) -> int:
    """Parallel runs (``--out`` elsewhere, one thread each) fold into one table here."""
    for d in dirs:
        src = Path(d)
        try:
            doc = json.loads((src / "results.json").read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise SystemExit(f"error: cannot read {src / 'results.json'}: {e}") from e
        rows = {k: r for k, r in doc.get("experiments", {}).items() if r.get("status") == "done"}
        for exp_id, row in rows.items():
            for fig in row.get("figures", []) or []:
                if fig and (src / fig).is_file():
                    (ctx.out / fig).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src / fig, ctx.out / fig)
            ctx.results[exp_id] = row
        ctx.hardware["runs"] += [r for r in doc.get("runs", []) if r not in ctx.hardware["runs"]]
        ctx.log(f"merged {len(rows)} row(s) from {src}: {', '.join(rows) or 'none'}")
    ctx.results_figs["cost"] = cost_chart(ctx)
    ctx.results_figs["code_size"] = code_size_chart(ctx)
    write_json(ctx)
    write_markdown(ctx)
    return 0


def default_data_dir() -> Path:
    shared = ROOT.parent / "shared" / "data"
    if shared.is_dir() or not os.environ.get("AECORE_DATA_DIR"):
        return shared
    return Path(os.environ["AECORE_DATA_DIR"])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    load = _load_avg()
    if args.threads:
        torch.set_num_threads(args.threads)
    elif load and load[0] >= 1.0 and torch.get_num_threads() > 1:
        # Other work holds the cores: one thread each is faster than two that wait on each other
        # (measured here under load: the conv presets 2x, the rest about equal).
        torch.set_num_threads(1)
        print(f"load average {load[0]:.1f} at start: training with 1 torch thread (--threads N overrides)")
    args.data_dir_given = args.data_dir or os.path.relpath(default_data_dir(), ROOT)
    data_dir = Path(args.data_dir).expanduser() if args.data_dir else default_data_dir()
    if not data_dir.is_absolute():
        data_dir = (Path.cwd() / data_dir).resolve()
    out = Path(args.out)
    out = out if out.is_absolute() else (Path.cwd() / out)
    exps = select(args.only)
    args.quick = any(v is not None for v in (args.limit, args.eval_limit, args.epochs))
    store = ModelStore(args.store) if args.store else ModelStore()
    now = hardware_info(args.device)
    ctx = Ctx(args, out, data_dir, store, {"now": now, "runs": []})
    if args.estimate:
        return estimate(ctx, exps)

    out.mkdir(parents=True, exist_ok=True)
    ctx.fig_dir.mkdir(parents=True, exist_ok=True)
    old = out / "results.json"
    if old.is_file() and not args.fresh:
        try:
            doc = json.loads(old.read_text())
            ctx.results = doc.get("experiments", {})
            ctx.hardware["runs"] = doc.get("runs", [])
        except (OSError, json.JSONDecodeError) as e:
            ctx.log(f"ignoring unreadable {old}: {e}")
    if args.merge:
        return merge_into(ctx, args.merge)
    command = shlex.join([".venv/bin/python", "bench/quality.py", *argv])
    run = {
        "command": command,
        "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "hardware": now,
        "load_avg_start": _load_avg(),
    }
    ctx.hardware["runs"].append(run)
    hw_short = f"{now['device']}; {now['cpu_model']}; torch {now['torch']}"
    ctx.log(f"{len(exps)} experiment(s) into {out}; data from {data_dir}; {hw_short}")
    t_all = time.perf_counter()
    for exp in exps:
        prev = ctx.results.get(exp.id)
        if args.resume and prev and prev.get("status") == "done":
            ctx.log(f"{exp.id}: done in an earlier run, skipped (--resume)")
            continue
        ctx.log(f"{exp.id}: {exp.title}")
        t0 = time.perf_counter()
        load0 = _load_avg()
        base = {
            "experiment": exp.id,
            "kind": exp.kind,
            "title": exp.title,
            "command": row_command(args, exp.id),
            "hardware": hw_short,
            "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "settings": {
                "limit": args.limit,
                "eval_limit": args.eval_limit,
                "epochs_override": args.epochs,
                "budget_min": args.budget_min,
                "quick": args.quick,
            },
        }
        try:
            fields = exp.run(ctx, exp)
            row = {**base, **fields, "status": "done"}
        except Exception as e:  # noqa: BLE001 - one failed experiment must not lose the others
            traceback.print_exc()
            row = {**base, "status": "failed", "error": f"{type(e).__name__}: {e}", "goals": []}
        row["wall_s"] = time.perf_counter() - t0
        row["load_avg"] = {"start": load0, "end": _load_avg()}
        ctx.results[exp.id] = row
        ctx.results_figs["cost"] = cost_chart(ctx)
        ctx.results_figs["code_size"] = code_size_chart(ctx)
        run["finished"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
        run["wall_s"] = time.perf_counter() - t_all
        write_json(ctx)
        write_markdown(ctx)
        for g in row.get("goals", []):
            ctx.log(f"  goal: {g['goal']}: {_fmt(g['value'])} ({_met(g).strip('*')})")
        ctx.log(f"{exp.id}: {row['status']} in {_dur(row['wall_s'])}")
    # figures from rows of earlier runs too
    ctx.results_figs["cost"] = cost_chart(ctx)
    ctx.results_figs["code_size"] = code_size_chart(ctx)
    write_json(ctx)
    write_markdown(ctx)
    ctx.log(f"all done in {_dur(time.perf_counter() - t_all)}: {out / 'results.md'}")
    return 0


# ----------------------------------------------------------------------------------------------
# --estimate: the time a full run would take here, from short probes
# ----------------------------------------------------------------------------------------------
def planned_models(exp: Experiment) -> list[dict]:
    """The models an experiment trains (dependencies included), as ctx.model's arguments."""
    if exp.kind == "preset":
        return [{"model_id": exp.id, "preset": exp.id}]
    if exp.id in ("hinton-30", "vae-mlp-bce", "conv-bce"):
        return [{"model_id": exp.id, "preset": exp.id, "budget": True}]
    if exp.id.startswith("denoise-"):
        return [
            {"model_id": exp.id, "preset": DENOISE_PRESET, "dataset": exp.id.removeprefix("denoise-"), "budget": True}
        ]
    if exp.id.startswith("probe-"):
        return [{"model_id": PROBE_MODEL, "preset": PROBE_MODEL}]
    if exp.id.startswith("anomaly-"):
        return [{"model_id": ANOMALY_MODEL, "preset": ANOMALY_MODEL}]
    ds = exp.id.removeprefix("code-size-")
    return [
        {
            "model_id": f"{exp.id}-k{k}",
            "preset": CURVE_PRESET,
            "dataset": ds,
            "latent_dim": k,
            "epochs": CURVE_EPOCHS,
            "budget": True,
        }
        for k in CODE_SIZES
    ]


def estimate(ctx: Ctx, exps: list[Experiment]) -> int:
    a = ctx.args
    seen, total = set(), 0.0
    print(f"{'model':34s} {'items':>7s} {'epochs':>6s} {'images/s':>9s} {'s/epoch':>8s} {'minutes':>8s}")
    for exp in exps:
        for spec in planned_models(exp):
            if spec["model_id"] in seen:
                continue
            seen.add(spec["model_id"])
            req = TrainRequest(
                preset=spec["preset"],
                dataset=spec.get("dataset"),
                epochs=a.epochs or spec.get("epochs"),
                latent_dim=spec.get("latent_dim"),
                limit=a.limit,
                device=a.device,
                data_dir=str(ctx.data_dir),
            )
            bundle, tm, cfg = prepare(req)
            bundle = ctx.limit_eval(bundle)
            epoch_s, ips = estimate_epoch_s(tm, bundle, cfg, fast=a.fast_fp32)
            epochs = cfg.epochs
            secs = epochs * epoch_s
            budget = ctx.budget_s() if spec.get("budget") else None
            if budget is not None and secs > budget:
                secs, epochs = budget, max(1, int(0.8 * budget / epoch_s))
            secs += 15  # evaluation, PCA and figures
            total += secs
            print(
                f"{spec['model_id']:34s} {len(bundle.train):7,d} {epochs:6d} {ips:9,.0f} {epoch_s:8.1f} "
                f"{secs / 60:8.1f}",
                flush=True,
            )
    print(f"total: {total / 60:.0f} min ({total / 3600:.1f} h) at the load of this moment (load average {_load_avg()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
