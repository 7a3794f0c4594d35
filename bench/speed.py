"""Training and inference speed of aecore against the loops it replaces, in one run.

    .venv/bin/python bench/speed.py            # full run (about 10-15 minutes on 2 cores)
    .venv/bin/python bench/speed.py --quick    # smoke run, under a minute

What it measures, on the same synthetic MNIST-shaped data (uint8, N x 1 x 28 x 28) for the
presets deep-dense, vanilla, vae-mlp and conv (see bench/README.md for the method):

1. aecore's Trainer as the CLI runs it (the DataBundle, model and normaliser built as
   aecore.runs.request.prepare builds them; a progress-style callback attached);
2. aecore in its fastest honest mode: bf16 autocast where aecore accepts it, and fp32 with
   bench/fastpath.py (oneDNN linear layers) as its own row;
3. the seeds' loop: a DataLoader over a Dataset whose __getitem__ applies ToTensor +
   Normalize to one uint8 image, shuffle=True, Adam, the plain PyTorch loop;
4. a DataLoader over a TensorDataset, same loop;
5. pythae's TrainingPipeline on its default AE beside aecore's Trainer on the same layers;
6. the GEMM rate of the machine (torch.mm fp32 and bf16, (256x784)@(784x1500)) and each
   model's achieved GFLOP/s (forward + backward ~ 3x the forward matmul/conv FLOPs) as a share;
7. decode latency of one latent vector (p50, p99) and the rate of encoding 10,000 images;
plus the test loss after the same epochs for aecore vs the seeds' loop and bf16 vs fp32
(real MNIST / Fashion-MNIST from ../shared/data when present, else synthetic).

Every variant runs in its own worker process (so aecore's malloc tuning and oneDNN state
never leak into the baselines) and the variants of a preset take turns, window by window,
so that drift from other work on the machine affects all of them alike.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import datetime as dt
import json
import math
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, Path(__file__).resolve().parent):  # aecore, and bench/fastpath.py
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

PRESET_NAMES = ("deep-dense", "vanilla", "vae-mlp", "conv")
_USER_OMP_WAIT = os.environ.get("OMP_WAIT_POLICY")  # read before anything imports aecore, which sets it
BATCH_OVERRIDE = {"deep-dense": 2048}  # the issue asks for deep-dense at 2048 (its preset's own batch size)
GEMM_SHAPE = (256, 784, 1500)
GOAL_VS_SEEDS = 3.0
GOAL_VS_PYTHAE = 1.5
GOAL_MM_SHARE = 0.90
GOAL_DECODE_MS = 2.0
GOAL_QUALITY = 1.02
GOAL_DASHBOARD = 0.90
GOAL_TIMELINE = 0.03  # recording a run's timeline costs at most this share of its training time

# ---------------------------------------------------------------------------------------------
# Shared helpers (main process and workers)
# ---------------------------------------------------------------------------------------------


def synthetic_images(n: int, seed: int):
    """MNIST-shaped uint8 images: ten blurred stroke prototypes, shifted, scaled and noised.

    Deterministic for (n, seed), so every worker builds the same arrays without shipping them."""
    import numpy as np

    rng = np.random.default_rng(seed)
    protos = np.zeros((10, 28, 28), np.float32)
    for c in range(10):
        for _ in range(3):  # three strokes per prototype
            r0, c0 = rng.integers(6, 22, 2)
            dr, dc = rng.normal(0, 1, 2)
            for t in np.linspace(-6, 6, 25):
                r, cc = int(round(r0 + t * dr)), int(round(c0 + t * dc))
                if 1 <= r < 27 and 1 <= cc < 27:
                    protos[c, r - 1 : r + 2, cc - 1 : cc + 2] = 1.0
    labels = rng.integers(0, 10, n)
    shifts = rng.integers(-2, 3, (n, 2))
    out = np.empty((n, 28, 28), np.float32)
    for sr in range(-2, 3):
        for sc in range(-2, 3):
            m = (shifts[:, 0] == sr) & (shifts[:, 1] == sc)
            out[m] = np.roll(protos[labels[m]], (sr, sc), axis=(1, 2))
    out *= rng.uniform(0.6, 1.0, (n, 1, 1)).astype(np.float32)
    out += rng.normal(0, 0.05, out.shape).astype(np.float32)
    x = (np.clip(out, 0, 1) * 255).astype(np.uint8)[:, None]  # (N, 1, 28, 28)
    return x, labels


def synthetic_bundle(preset_name: str, n: int, n_test: int, seed: int):
    """The DataBundle aecore.runs.request.load_data would return for these arrays: the preset's
    train/validation split (its val_fraction, else MNIST's 5,000 of 60,000), uint8 kept uint8."""
    from aecore.data import DEFAULT_VAL_FRACTION
    from aecore.data.base import DataBundle, Split, split_train_val
    from aecore.presets import PRESETS

    p = PRESETS[preset_name]
    x, y = synthetic_images(n, seed)
    xt, yt = synthetic_images(n_test, seed + 1)
    vf = DEFAULT_VAL_FRACTION if p.val_fraction is None else p.val_fraction
    train, val = split_train_val(x, y, vf, seed)
    return DataBundle(
        "synthetic-mnist",
        "image",
        train,
        val,
        Split(xt, yt),
        class_names=[str(i) for i in range(10)],
        info={"scale": 255},
    )


def prepare_like_workflow(preset_name: str, bundle, seed: int, batch_size: int | None = None):
    """Model, normaliser and TrainConfig exactly as aecore.runs.request.prepare builds them
    (the model is built after torch.manual_seed(seed) so that every variant starts alike)."""
    import torch

    from aecore.data import as_float
    from aecore.models import build_model
    from aecore.normalise import Normaliser
    from aecore.runs.request import TrainRequest, model_config_for

    req = TrainRequest(preset=preset_name, device="cpu", seed=seed, batch_size=batch_size)
    cfg = req.train_config()
    mcfg = model_config_for(req, bundle)
    kind = req.preset_obj().normalisation
    normaliser = Normaliser.fit(kind, as_float(bundle.train.x, bundle)) if kind == "standardize" else Normaliser(kind)
    torch.manual_seed(seed)
    model = build_model(mcfg)
    return model, normaliser, cfg


def forward_flops_per_image(model, sample_shape) -> float:
    """Matmul/conv FLOPs of one forward pass per image (2 x multiply-adds), counted with hooks."""
    import torch
    from torch import nn

    total = [0.0]

    def lin(m, inp, out):
        total[0] += 2.0 * m.in_features * m.out_features * (inp[0].numel() // m.in_features)

    def conv(m, inp, out):
        kh, kw = m.kernel_size
        total[0] += 2.0 * (m.in_channels // m.groups) * kh * kw * out.numel()

    hooks = [
        m.register_forward_hook(lin if isinstance(m, nn.Linear) else conv)
        for m in model.modules()
        if isinstance(m, (nn.Linear, nn.Conv2d))
    ]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.rand(2, *sample_shape))
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    return total[0] / 2


def load_avg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def cpu_info() -> dict:
    import torch

    info = {"model": platform.processor() or "?", "vendor": "?", "flags": [], "logical_cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                k = k.strip()
                if k == "model name":
                    info["model"] = v.strip()
                elif k == "vendor_id":
                    info["vendor"] = v.strip()
                elif k == "cpu family":
                    info["family"] = int(v)
                elif k == "model":
                    info["model_id"] = int(v)
                elif k == "flags":
                    flags = v.split()
                    info["flags"] = sorted(f for f in flags if f.startswith(("avx", "amx", "fma")))
                    break
    except OSError:
        pass
    info["aten_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    return info


# ---------------------------------------------------------------------------------------------
# Worker side: one process per variant, driven by commands over a pipe
# ---------------------------------------------------------------------------------------------

VARIANTS = {
    "aecore": "aecore Trainer, CLI defaults (fp32)",
    "aecore-dashboard": "aecore Trainer as the dashboard runs it (job process, live snapshots relayed, Train page polled)",
    "aecore-bf16": "aecore Trainer, precision=bf16",
    "aecore-fastpath": "aecore Trainer, fp32 + fastpath (oneDNN linear)",
    "aecore-ompdefault": "aecore Trainer, CLI defaults, but torch loaded before aecore: OpenMP's default wait policy",
    "seeds": "seeds' loop: DataLoader, per-item ToTensor+Normalize (OpenMP default wait, as the seeds run)",
    "seeds-passive": "seeds' loop in a process with OMP_WAIT_POLICY=PASSIVE (aecore's policy)",
    "tensords": "DataLoader over a TensorDataset, OMP_WAIT_POLICY=PASSIVE",
    "pythae": "pythae TrainingPipeline (default AE; OpenMP default wait, as pythae runs)",
    "pythae-passive": "pythae TrainingPipeline in a process with OMP_WAIT_POLICY=PASSIVE",
}


class SeedStyleDataset:
    """Seed 001's ``transforms.Compose([ToTensor(), Normalize(mean, std)])`` per item, without PIL
    (torchvision's ToTensor on an HxWxC uint8 array, then Normalize, written out: torchvision
    does not import beside this CPU build of torch)."""

    def __init__(self, images_uint8, mean: float, std: float, scale: float = 255.0):
        import torch

        self.x = images_uint8.transpose(0, 2, 3, 1)  # (N, H, W, C), as the seed's images arrive
        self.mean = torch.tensor([mean], dtype=torch.float32)
        self.std = torch.tensor([std], dtype=torch.float32)
        self.scale = scale

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        import torch

        pic = self.x[i]
        img = torch.from_numpy(pic.transpose((2, 0, 1))).contiguous()  # ToTensor: HWC -> CHW
        img = img.to(dtype=torch.float32).div(self.scale)
        return img.sub(self.mean[:, None, None]).div(self.std[:, None, None])  # Normalize


def _normalize_args(normaliser):
    """mean/std for Normalize that give the preset's model space from [0, 1] pixels."""
    if normaliser.kind == "symmetric":
        return 0.5, 0.5
    if normaliser.kind == "unit":
        return 0.0, 1.0
    raise ValueError("the seeds' loop here covers unit and symmetric normalisation only")


class _TrainerWindow:
    """Callback timing whole training steps of aecore's Trainer: each interval runs from the end
    of one step to the end of the next inside an epoch (the first step of every epoch, which
    follows validation and the snapshot, is not counted); it stops the trainer when done."""

    def __init__(self, stop, seconds, warm, min_steps, n_train, bs, drop_last):
        self.stop, self.seconds, self.warm, self.min_steps = stop, seconds, warm, min_steps
        self.n, self.bs, self.drop_last = n_train, bs, drop_last
        self.k = 0
        self.images = 0
        self.t = 0.0
        self.steps = 0
        self.t_prev = None
        self.done = False

    def on_train_start(self, info):
        self.t_prev = None

    def on_step_end(self, ev):
        now = time.perf_counter()
        self.k += 1
        if self.t_prev is not None and ev.step > 1 and self.k > self.warm:
            last = ev.step == ev.steps_per_epoch and not self.drop_last
            self.images += self.n - (ev.steps_per_epoch - 1) * self.bs if last else self.bs
            self.t += now - self.t_prev
            self.steps += 1
        self.t_prev = now
        if self.t >= self.seconds and (self.steps >= self.min_steps or self.t >= 3 * self.seconds):
            self.done = True
            self.stop.set()


class Worker:
    def __init__(self, variant: str, threads: int):
        import torch

        torch.set_num_threads(threads)
        self.variant = variant
        self.base = variant.removesuffix("-passive")  # what runs; the suffix only names the process's policy
        self.s: dict = {}

    # -- setup ---------------------------------------------------------------------------------
    def setup(
        self, preset: str, n: int, n_test: int, seed: int, batch_size: int | None = None, arch: str | None = None
    ) -> dict:

        self.s = {
            "preset": preset,
            "setup": {"preset": preset, "n": n, "n_test": n_test, "seed": seed, "batch_size": batch_size},
        }
        bundle = synthetic_bundle(preset, n, n_test, seed)
        if arch == "pythae-ae":
            return self._setup_pythae_arch(bundle, seed, batch_size)
        model, normaliser, cfg = prepare_like_workflow(preset, bundle, seed, batch_size)
        self.s.update(bundle=bundle, model=model, normaliser=normaliser, cfg=cfg)
        if self.variant == "aecore-fastpath":
            from fastpath import enable_fast_fp32

            self.s["fastpath_switched"] = enable_fast_fp32(model, force=True)
        if self.base in ("seeds", "tensords"):
            self._setup_loader(bundle, normaliser, cfg, seed)
        return {
            "n_train": len(bundle.train),
            "n_val": len(bundle.val),
            "batch_size": cfg.batch_size,
            "flops_per_image": forward_flops_per_image(model, bundle.sample_shape),
            "latent_dim": model.latent_dim,
            "drop_last": cfg.drop_last,
            "fastpath_switched": self.s.get("fastpath_switched"),
        }

    def _setup_loader(self, bundle, normaliser, cfg, seed):
        import torch
        from torch.utils.data import DataLoader, TensorDataset

        from aecore.data import as_float

        torch.manual_seed(seed)
        if self.base == "seeds":
            mean, std = _normalize_args(normaliser)
            ds = SeedStyleDataset(bundle.train.x, mean, std, float(bundle.info.get("scale", 255)))
        else:
            x = normaliser.forward(torch.as_tensor(as_float(bundle.train.x, bundle)))
            ds = TensorDataset(x)
        self.s["loader"] = DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, drop_last=cfg.drop_last)
        self.s["opt"] = torch.optim.Adam(self.s["model"].parameters(), lr=cfg.lr)

    def _setup_pythae_arch(self, bundle, seed, batch_size):
        import torch

        from aecore.data import as_float
        from aecore.models import DenseConfig, LossSpec, build_model
        from aecore.normalise import Normaliser
        from aecore.train import TrainConfig

        # pythae's default AE: Encoder_AE_MLP 784-512 ReLU -> 10 (linear), Decoder_AE_MLP
        # 10-512 ReLU -> 784 sigmoid, PyTorch's default init, loss = per-item summed squared
        # error averaged over the batch; its trainer: Adam, lr 1e-4.
        if self.base == "pythae":
            from pythae.models import AE, AEConfig

            torch.manual_seed(seed)
            self.s["pythae_model"] = AE(AEConfig(input_dim=tuple(bundle.sample_shape), latent_dim=10))
            self.s["pythae_x"] = as_float(bundle.train.x, bundle)
            self.s["batch_size"] = batch_size
            self.s["tmp"] = tempfile.mkdtemp(prefix="bench-pythae-")
            n_params = sum(p.numel() for p in self.s["pythae_model"].parameters())
            return {"n_train": len(bundle.train), "batch_size": batch_size, "parameters": n_params}
        mcfg = DenseConfig(
            input_shape=tuple(bundle.sample_shape),
            hidden=[512],
            latent_dim=10,
            activations=["relu"],
            code_activation="linear",
            output_activation="sigmoid",
            init="default",
            loss=LossSpec("mse", "sum"),
        )
        torch.manual_seed(seed)
        model = build_model(mcfg)
        cfg = TrainConfig(epochs=1, batch_size=batch_size, lr=1e-4, device="cpu", seed=seed)
        self.s.update(bundle=bundle, model=model, normaliser=Normaliser("unit"), cfg=cfg)
        return {
            "n_train": len(bundle.train),
            "batch_size": batch_size,
            "parameters": sum(p.numel() for p in model.parameters()),
            "flops_per_image": forward_flops_per_image(model, bundle.sample_shape),
        }

    # -- timed windows -------------------------------------------------------------------------
    def window(self, seconds: float, warm: int, min_steps: int) -> dict:
        if self.variant == "aecore-dashboard":
            return self._dashboard_window(seconds, warm, min_steps)
        if self.variant.startswith("aecore"):
            return self._trainer_window(seconds, warm, min_steps)
        if self.base == "pythae":
            return self._pythae_window(seconds, warm, min_steps)
        return self._loop_window(seconds, warm, min_steps)

    def _trainer_window(self, seconds, warm, min_steps):
        import threading

        from aecore.train import Trainer

        s = self.s
        cfg = dataclasses.replace(
            s["cfg"], epochs=100_000, precision="bf16" if self.variant == "aecore-bf16" else "fp32"
        )
        n_train = len(s["bundle"].train)
        bs = min(cfg.batch_size, n_train)
        stop = threading.Event()
        cb = _TrainerWindow(stop, seconds, warm, min_steps, n_train, bs, cfg.drop_last)
        statuses = []
        for _ in range(50):  # a fit that ends early (early stopping) is simply continued
            res = Trainer(cfg, [cb], stop_event=stop).fit(s["model"], s["bundle"], s["normaliser"])
            statuses.append(res.status)
            if cb.done or res.status in ("diverged", "failed"):
                break
        return {"images": cb.images, "seconds": cb.t, "steps": cb.steps, "status": statuses[-1]}

    def _dashboard_window(self, seconds, warm, min_steps):
        """The dashboard's path: the job's own training process (aecore.runs.process.run_in_process, as
        the Train button starts it) trains the same synthetic data with live snapshots relayed
        to the job, while this process runs the Train page attached to the job once per poll
        interval through Streamlit's AppTest. AppTest reruns the whole page where the browser
        reruns only the live fragment, so this charges the dashboard more than it costs. The
        window is timed inside the training process, after its set-up and warm-up steps."""
        import threading

        import torch

        from aecore.runs.jobs import TrainingJob
        from aecore.runs.process import run_in_process
        from aecore.runs.request import TrainRequest

        s = self.s
        poll_s = _train_page_poll_s()
        seconds = max(seconds, 4 * poll_s)  # a window sees several page polls and snapshots
        job = TrainingJob(
            f"bench-{s['preset']}",
            TrainRequest(preset=s["preset"], dataset="synthetic"),
            f"bench-{s['preset']}",
            "cpu",
            epochs=100_000,
        )
        at = _train_page_for(job)
        payload = {
            "setup": s["setup"],
            "threads": torch.get_num_threads(),
            "seconds": seconds,
            "warm": warm,
            "min_steps": min_steps,
            "poll_s": poll_s,
        }
        out = {}

        def train():
            try:
                out.update(run_in_process("speed:dashboard_target", payload, job))
            except Exception:
                out["error"] = traceback.format_exc()

        th = threading.Thread(target=train, daemon=True)
        th.start()
        polls, errors = 0, []
        while th.is_alive():
            t0 = time.perf_counter()
            at.run()
            polls += 1
            errors += [e.value for e in at.exception]
            th.join(max(0.0, poll_s - (time.perf_counter() - t0)))
        if "images" not in out:
            raise RuntimeError(f"the dashboard's training process failed: {out.get('error') or out}")
        return {
            "images": out["images"],
            "seconds": out["seconds"],
            "steps": out["steps"],
            "status": out["status"],
            "page_polls": polls,
            "page_errors": errors[:3],
        }

    def _loop_window(self, seconds, warm, min_steps):
        s = self.s
        model, opt, loader = s["model"], s["opt"], s["loader"]
        model.train()
        images, t, steps, k, running = 0, 0.0, 0, 0, 0.0
        while True:
            first = True
            t_prev = time.perf_counter()
            for batch in loader:
                xb = batch[0] if isinstance(batch, (list, tuple)) else batch
                opt.zero_grad()
                out = model(xb)
                out.loss.backward()
                running += out.loss.item()
                opt.step()
                now = time.perf_counter()
                k += 1
                if not first and k > warm:
                    images += len(xb)
                    t += now - t_prev
                    steps += 1
                first = False
                t_prev = now
                if t >= seconds and (steps >= min_steps or t >= 3 * seconds):
                    return {"images": images, "seconds": t, "steps": steps, "status": "ok"}

    def _pythae_window(self, seconds, warm, min_steps):
        import logging

        from pythae.pipelines import TrainingPipeline
        from pythae.trainers import BaseTrainerConfig
        from pythae.trainers.training_callbacks import TrainingCallback

        for name in list(logging.root.manager.loggerDict):
            if name.startswith("pythae"):
                logging.getLogger(name).setLevel(logging.WARNING)
        s = self.s
        n, bs = len(s["pythae_x"]), s["batch_size"]
        steps_per_epoch = math.ceil(n / bs)

        class WindowDone(Exception):
            pass

        class Timer(TrainingCallback):
            def __init__(self):
                self.k, self.t, self.images, self.steps, self.t_prev = 0, 0.0, 0, 0, None

            def on_train_step_end(self, training_config, **kw):  # pythae calls it after every batch
                now = time.perf_counter()
                self.k += 1
                # the same rule as the other loops: not the epoch's first batch (the DataLoader's
                # start-up), not the warm-up batches; full batches only
                if self.t_prev is not None and self.k > max(1, warm) and self.k < steps_per_epoch:
                    self.t += now - self.t_prev
                    self.images += bs
                    self.steps += 1
                self.t_prev = now
                if self.t >= seconds and (self.steps >= min_steps or self.t >= 3 * seconds):
                    raise WindowDone  # ends pythae's epoch here; the model keeps its weights

        cfg = BaseTrainerConfig(
            output_dir=s["tmp"], num_epochs=1, per_device_train_batch_size=bs, keep_best_on_train=True, no_cuda=True
        )
        timer = Timer()
        status = "epochs ended before the window did"
        for _ in range(20):  # an epoch shorter than the window is followed by another
            pipe = TrainingPipeline(model=s["pythae_model"], training_config=cfg)
            timer.k, timer.t_prev = 0, None
            try:
                with (
                    open(os.devnull, "w") as devnull,
                    contextlib.redirect_stderr(devnull),
                    contextlib.redirect_stdout(devnull),
                ):
                    pipe(train_data=s["pythae_x"], callbacks=[timer])
            except WindowDone:
                status = "ok"
                break
        return {"images": timer.images, "seconds": timer.t, "steps": timer.steps, "status": status}

    # -- inference ------------------------------------------------------------------------------
    def latency(self, calls: int, encode_items: int, encode_reps: int) -> dict:
        import torch

        from aecore.data import as_float

        s = self.s
        model = s["model"]
        model.eval()
        x_all = s["normaliser"].forward(torch.as_tensor(as_float(s["bundle"].train.x[:encode_items], s["bundle"])))
        out = {}
        with torch.inference_mode():
            z = torch.randn(1, model.latent_dim)
            for _ in range(max(20, calls // 20)):
                model.decode(z)
            ts = []
            for _ in range(calls):
                t0 = time.perf_counter_ns()
                model.decode(z)
                ts.append(time.perf_counter_ns() - t0)
            ts.sort()
            out["decode_p50_ms"] = ts[len(ts) // 2] / 1e6
            out["decode_p99_ms"] = ts[min(len(ts) - 1, int(len(ts) * 0.99))] / 1e6
            out["decode_calls"] = calls
            model.encode(x_all[:256])
            rates = []
            for _ in range(encode_reps):
                t0 = time.perf_counter()
                model.encode(x_all)
                rates.append(len(x_all) / (time.perf_counter() - t0))
            out["encode_images_per_s"] = statistics.median(rates)
            out["encode_items"] = len(x_all)
        model.train()
        return out

    # -- quality ---------------------------------------------------------------------------------
    def quality(
        self,
        preset: str,
        epochs: int,
        data_dir: str | None,
        limit: int | None,
        seed: int,
        n: int,
        n_test: int,
        test_limit: int | None = None,
        train_seed: int | None = None,
    ) -> dict:
        import torch

        from aecore.data import DATASETS
        from aecore.presets import PRESETS
        from aecore.runs.request import TrainRequest, prepare
        from aecore.train import Trainer, evaluate, split_tensors

        self.s = {}
        p = PRESETS[preset]
        spec = DATASETS[p.dataset]
        real = data_dir is not None and spec.available(data_dir)
        if real:
            req = TrainRequest(preset=preset, epochs=epochs, device="cpu", seed=seed, data_dir=data_dir, limit=limit)
            torch.manual_seed(seed)  # prepare builds the model after loading the data: same init everywhere
            bundle, tm, cfg = prepare(req)
            model, normaliser = tm.model, tm.normaliser
            data = f"{p.dataset} (real, {len(bundle.train)} train / {len(bundle.test)} test)"
        else:
            bundle = synthetic_bundle(preset, n, n_test, seed)
            if limit:
                bundle = bundle.limit(limit)
            model, normaliser, cfg = prepare_like_workflow(preset, bundle, seed)
            data = f"synthetic ({len(bundle.train)} train / {len(bundle.test)} test)"
        if test_limit:
            bundle = dataclasses.replace(bundle, test=bundle.test.head(test_limit))
            data = data.replace(" test)", f" test, first {len(bundle.test)} used)")
        cfg = dataclasses.replace(
            cfg,
            epochs=epochs,
            precision="bf16" if self.variant == "aecore-bf16" else "fp32",
            seed=seed if train_seed is None else train_seed,
        )  # same init; another shuffle
        t0 = time.perf_counter()
        if self.variant.startswith("aecore"):
            if self.variant == "aecore-fastpath":
                from fastpath import disable_fast_fp32, enable_fast_fp32

                enable_fast_fp32(model, force=True)
            res = Trainer(cfg).fit(model, bundle, normaliser)
            if self.variant == "aecore-fastpath":
                disable_fast_fp32(model)
            status = res.status
        else:  # the seeds' loop, for the epochs asked
            self.s = {"model": model}
            self._setup_loader(bundle, normaliser, cfg, seed)
            opt, loader = self.s["opt"], self.s["loader"]
            model.train()
            for _ in range(epochs):
                for xb in loader:
                    opt.zero_grad()
                    out = model(xb)
                    out.loss.backward()
                    opt.step()
            status = "done"
        wall = time.perf_counter() - t0
        x, t = split_tensors(bundle, "test", normaliser, torch.device("cpu"))
        batch_sum = model.config.loss.reduction == "batch_sum"
        loss, terms = evaluate(model, x, t, cfg.batch_size if batch_sum else max(cfg.batch_size, 1024))
        self.s = {}
        return {
            "data": data,
            "real": real,
            "epochs": epochs,
            "test_loss": loss,
            "test_terms": terms,
            "train_wall_s": wall,
            "status": status,
        }

    def timeline_cost(self, preset: str, n: int, n_test: int, seed: int, epochs: int, rounds: int) -> dict:
        """Whole runs of ``epochs`` epochs on the synthetic data with and without the timeline
        (alternating, each from the same initial weights): the wall-time ratio, and the
        trainer's own count of the seconds its frames took (TrainResult.timeline_s)."""
        import copy

        import numpy as np

        from aecore.timeline import Timeline, choose_probe
        from aecore.train import Trainer

        bundle = synthetic_bundle(preset, n, n_test, seed)
        model0, normaliser, cfg = prepare_like_workflow(preset, bundle, seed, BATCH_OVERRIDE.get(preset))
        cfg = dataclasses.replace(cfg, epochs=epochs)
        walls: dict[str, list[float]] = {"off": [], "on": []}
        shares, frames = [], 0
        for r in range(rounds):
            for mode in ("off", "on") if r % 2 == 0 else ("on", "off"):
                tl = None
                if mode == "on":
                    probe = choose_probe(len(bundle.val), seed, model0.latent_dim)
                    tl = Timeline("image", probe, np.asarray(bundle.val.labels)[probe].astype(np.int64), None)
                t0 = time.perf_counter()
                res = Trainer(cfg).fit(copy.deepcopy(model0), bundle, normaliser, timeline=tl)
                walls[mode].append(time.perf_counter() - t0)
                if tl is not None:
                    shares.append(res.timeline_s / max(res.wall_s - res.timeline_s, 1e-9))
                    frames = len(tl.frames)
        off, on = statistics.median(walls["off"]), statistics.median(walls["on"])
        return {
            "epochs": epochs,
            "frames": frames,
            "wall_off_s": walls["off"],
            "wall_on_s": walls["on"],
            "wall_ratio": on / off,
            "recording_share": statistics.median(shares),
        }

    def release(self) -> None:
        self.s = {}

    def gemm(self, seconds: float, rounds: int) -> dict:
        return gemm_rates(seconds, rounds)


def _train_page_poll_s() -> float:
    from aecore.runs.jobs import LIVE_POLL_S

    return LIVE_POLL_S


def _train_page_for(job):
    """An AppTest of the dashboard on the Train page, attached to ``job`` by its id in the URL,
    as a browser that started the job sees it."""
    from streamlit.testing.v1 import AppTest

    import pages._common as common

    common.registry()._jobs[job.id] = job  # the page's registry: cache_resource is process-wide
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/train.py")
    at.query_params["job"] = job.id
    at.run()
    return at


def dashboard_target(payload, relay, control):
    """The dashboard row's training process (run by aecore.runs.process.run_in_process): aecore's
    Trainer with the job's relay, live snapshots and run control, timed by a _TrainerWindow."""
    from aecore.runs.jobs import LIVE_SNAPSHOT_ITEMS
    from aecore.train import Trainer

    w = Worker("aecore", payload["threads"])
    w.setup(**payload["setup"])
    s = w.s
    cfg = dataclasses.replace(s["cfg"], epochs=100_000)
    n_train = len(s["bundle"].train)
    bs = min(cfg.batch_size, n_train)
    stop = control.stop_event
    cb = _TrainerWindow(stop, payload["seconds"], payload["warm"], payload["min_steps"], n_train, bs, cfg.drop_last)
    status = None
    for _ in range(50):  # a fit that ends early (early stopping) is simply continued
        res = Trainer(
            cfg, [relay, cb], snapshot_every_s=payload["poll_s"], snapshot_items=LIVE_SNAPSHOT_ITEMS, control=control
        ).fit(s["model"], s["bundle"], s["normaliser"])
        status = res.status
        if cb.done or res.status in ("diverged", "failed"):
            break
    return {"images": cb.images, "seconds": cb.t, "steps": cb.steps, "status": status}


def worker_main(conn, variants: list[str], threads: int, aecore_first: bool) -> None:
    try:
        if aecore_first:
            import aecore  # noqa: F401  (before torch, as `python -m aecore` does: it sets OMP_WAIT_POLICY)
        policy = os.environ.get("OMP_WAIT_POLICY")  # what torch's OpenMP runtime reads when it loads now
        workers = {v: Worker(v, threads) for v in variants}
        conn.send(("ok", {"pid": os.getpid(), "variants": variants, "omp_wait_policy_at_torch_load": policy}))
    except Exception:
        conn.send(("err", traceback.format_exc()))
        return
    while True:
        msg = conn.recv()
        if msg is None:
            break
        variant, cmd, kw = msg
        try:
            conn.send(("ok", getattr(workers[variant], cmd)(**kw)))
        except Exception:
            conn.send(("err", traceback.format_exc()))


# Which variants share a process. aecore's variants share one (they are all aecore, malloc
# tuning and denormal flushing included); the plain-PyTorch baselines share another that never
# runs aecore's Trainer; pythae has its own.
PROCESS_GROUPS = {
    "aecore": ("aecore", "aecore-dashboard", "aecore-bf16", "aecore-fastpath"),
    "aecore-ompdefault": ("aecore-ompdefault",),
    "baselines": ("seeds", "pythae"),
    "baselines-passive": ("seeds-passive", "tensords", "pythae-passive"),
}
# aecore/__init__.py sets OMP_WAIT_POLICY=PASSIVE (unless the user set it) before torch loads
# its OpenMP runtime, so aecore's own process imports aecore first, as the CLI does. Every
# other process loads torch first with the environment the user started the bench with, as
# the seeds and pythae run; "aecore-ompdefault" is aecore in such a process (OpenMP's default
# policy, which spins at every barrier: speed.md's "two threads collapse" under contention).
AECORE_FIRST = {"aecore"}
PROCESS_ENV = {"baselines-passive": {"OMP_WAIT_POLICY": "PASSIVE"}}


class Pool:
    """The worker processes, started together, driven one call at a time."""

    def __init__(self, variants, threads):
        ctx = mp.get_context("spawn")
        self.conn_of, self.procs, conns = {}, [], []
        for group in PROCESS_GROUPS.values():
            members = [v for v in group if v in variants]
            if not members:
                continue
            name = next(g for g, vs in PROCESS_GROUPS.items() if vs == group)
            a, b = ctx.Pipe()
            # Not daemonic: the dashboard row's worker starts the job's training process, as the
            # server does (a daemonic process may not have children); close() ends them all.
            p = ctx.Process(target=worker_main, args=(b, members, threads, name in AECORE_FIRST), daemon=False)
            # A spawned child starts with os.environ as it is now; importing aecore in this
            # process has set OMP_WAIT_POLICY, so give every child the user's own value back.
            current = os.environ.get("OMP_WAIT_POLICY")
            wanted = PROCESS_ENV.get(name, {}).get("OMP_WAIT_POLICY", _USER_OMP_WAIT)
            if wanted is None:
                os.environ.pop("OMP_WAIT_POLICY", None)
            else:
                os.environ["OMP_WAIT_POLICY"] = wanted
            try:
                p.start()
            finally:
                if current is None:
                    os.environ.pop("OMP_WAIT_POLICY", None)
                else:
                    os.environ["OMP_WAIT_POLICY"] = current
            self.procs.append(p)
            conns.append((members, a))
            for v in members:
                self.conn_of[v] = a
        self.info = []
        for members, c in conns:
            status, payload = c.recv()
            if status != "ok":
                raise RuntimeError(f"worker {members} failed to start:\n{payload}")
            self.info.append(payload)
        self.conns = [c for _, c in conns]

    def call(self, variant, cmd, **kw):
        c = self.conn_of[variant]
        c.send((variant, cmd, kw))
        status, payload = c.recv()
        if status != "ok":
            raise RuntimeError(f"worker {variant} failed in {cmd}:\n{payload}")
        return payload

    def close(self):
        for c in self.conns:
            try:
                c.send(None)
            except (BrokenPipeError, OSError):
                pass
        for p in self.procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()


# ---------------------------------------------------------------------------------------------
# Main-process measurements
# ---------------------------------------------------------------------------------------------


def gemm_rates(seconds: float, rounds: int) -> dict:
    """GFLOP/s of (256x784)@(784x1500): torch.mm fp32, torch.mm bf16, and fp32 through oneDNN
    (for reference), interleaved in rounds; medians."""
    import torch

    M, K, N = GEMM_SHAPE
    flops = 2.0 * M * K * N
    torch.manual_seed(0)
    a, b = torch.randn(M, K), torch.randn(K, N)
    ab, bb = a.bfloat16(), b.bfloat16()
    wt = b.t().contiguous()
    cands = {"mm_fp32": lambda: torch.mm(a, b), "mm_bf16": lambda: torch.mm(ab, bb)}
    try:
        op = torch.ops.mkldnn._linear_pointwise
        op(a, wt, None, "none", [], "")
        cands["onednn_fp32"] = lambda: op(a, wt, None, "none", [], "")
    except (AttributeError, RuntimeError):
        pass
    per_call = {}
    for k, f in cands.items():
        f()
        t0 = time.perf_counter()
        f()
        per_call[k] = max(time.perf_counter() - t0, 1e-6)
    samples = {k: [] for k in cands}
    for _ in range(rounds):
        for k, f in cands.items():
            reps = max(1, int(seconds / rounds / len(cands) / per_call[k]))
            t0 = time.perf_counter()
            for _ in range(reps):
                f()
            samples[k].append(flops * reps / (time.perf_counter() - t0) / 1e9)
    return {k: {"gflops": statistics.median(v), "samples": [round(x, 1) for x in v]} for k, v in samples.items()}


def fastpath_numerics() -> dict:
    """Gradients of one step with bench/fastpath.py against stock fp32, both against fp64."""
    import torch
    from fastpath import enable_fast_fp32

    from aecore.models import build_model
    from aecore.presets import PRESETS

    out = {}
    for name in ("deep-dense", "vanilla"):
        torch.manual_seed(0)
        m = build_model(PRESETS[name].model_config((1, 28, 28)))
        fast = copy.deepcopy(m)
        if not enable_fast_fp32(fast, force=True):
            return {"available": False}
        ref = copy.deepcopy(m).double()
        x = torch.rand(256, 1, 28, 28)
        for mod, xi in ((m, x), (fast, x), (ref, x.double())):
            mod(xi).loss.backward()
        worst = {"stock_fp32": 0.0, "fastpath_fp32": 0.0}
        for pr, ps, pf in zip(ref.parameters(), m.parameters(), fast.parameters()):
            n = pr.grad.norm()
            worst["stock_fp32"] = max(worst["stock_fp32"], float((ps.grad.double() - pr.grad).norm() / n))
            worst["fastpath_fp32"] = max(worst["fastpath_fp32"], float((pf.grad.double() - pr.grad).norm() / n))
        out[name] = {"max_rel_grad_error_vs_fp64": worst}
    return out


def median_rate(samples: list[dict]) -> float | None:
    rates = [s["images"] / s["seconds"] for s in samples if s["seconds"] > 0 and s["images"] > 0]
    return statistics.median(rates) if rates else None


def fmt(v, spec=",.0f", none="-"):
    return none if v is None else format(v, spec)


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(r):
        cells = (str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
        return "| " + " | ".join(cells) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *map(line, rows)])


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="small N, short windows: a smoke run in under a minute")
    ap.add_argument("--n", type=int, help="synthetic images (default 60000; quick 4000)")
    ap.add_argument("--rounds", type=int, help="timed windows per variant after one warm-up round (default 3; quick 1)")
    ap.add_argument("--seconds", type=float, help="length of a timed window in seconds (default 2; quick 0.25)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads in every process (default 2)")
    ap.add_argument("--presets", nargs="+", default=list(PRESET_NAMES), choices=PRESET_NAMES)
    ap.add_argument(
        "--pythae-batch",
        type=int,
        default=64,
        help="batch size of the pythae comparison (default 64, pythae's own default)",
    )
    ap.add_argument("--quality-epochs", type=int, help="epochs of the test-loss comparison (default 2; quick 1)")
    ap.add_argument(
        "--data-dir",
        default=str(ROOT.parent / "shared" / "data"),
        help="folder with MNIST/raw and FashionMNIST/raw for the quality check",
    )
    ap.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["train", "pythae", "latency", "quality", "gemm", "dashboard", "timeline"],
        help="sections to leave out (development only)",
    )
    ap.add_argument(
        "--no-ompdefault", action="store_true", help="leave out the row of aecore under OpenMP's default wait policy"
    )
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"), help="folder for the JSON results")
    args = ap.parse_args(argv)

    q = args.quick
    n = args.n or (4000 if q else 60000)
    n_test = 2000 if q else 10000
    rounds = args.rounds or (1 if q else 3)
    seconds = args.seconds or (0.25 if q else 2.0)
    warm, min_steps = (1, 1) if q else (2, 3)
    q_epochs = args.quality_epochs or (1 if q else 2)
    q_limit = 1000 if q else None
    lat_calls, enc_items, enc_reps = (200, 10000, 2) if q else (2000, 10000, 5)
    seed = 0
    gemm_args = (0.5, 2) if q else (6.0, 8)
    first_round = 1 if q else 0  # round 0 is a warm-up round whose windows are not counted (full runs)

    import torch
    from fastpath import fast_fp32_support

    from aecore.device import bf16_support

    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    started = dt.datetime.now()
    bf16_ok, bf16_why = bf16_support(torch.device("cpu"))
    fp_auto, fp_why = fast_fp32_support()
    try:
        import pythae  # noqa: F401

        have_pythae = True
    except Exception:
        have_pythae = False
    result: dict = {
        "started": started.isoformat(timespec="seconds"),
        "quick": q,
        "settings": {
            "n": n,
            "n_test": n_test,
            "rounds": rounds,
            "window_s": seconds,
            "warm_steps": warm,
            "min_steps": min_steps,
            "threads": args.threads,
            "pythae_batch": args.pythae_batch,
            "quality_epochs": q_epochs,
            "quality_limit": q_limit,
            "seed": seed,
        },
        "machine": {
            "cpu": cpu_info(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "load_avg_start": load_avg(),
        },
        "bf16": {"supported": bf16_ok, "why_not": bf16_why},
        "fastpath": {"auto_enabled_here": fp_auto, "why": fp_why},
    }
    print(
        f"aecore speed bench {'(quick) ' if q else ''}- {started:%Y-%m-%d %H:%M}, torch {torch.__version__}, "
        f"{args.threads} threads, load {load_avg()}",
        flush=True,
    )
    print(
        f"CPU: {result['machine']['cpu']['model']} ({result['machine']['cpu']['vendor']}), ATen "
        f"{result['machine']['cpu']['aten_cpu_capability']}, flags {' '.join(result['machine']['cpu']['flags'])}"
    )
    print(
        f"bf16: {'supported' if bf16_ok else 'refused by aecore: ' + bf16_why}; fastpath auto: "
        f"{'on' if fp_auto else 'off'} ({fp_why})",
        flush=True,
    )

    fastest_variant = "aecore-bf16" if bf16_ok else ("aecore-fastpath" if fp_auto else "aecore")
    result["fastest_mode"] = {
        "variant": fastest_variant,
        "label": VARIANTS[fastest_variant],
        "rule": "bf16 where aecore accepts it, else fp32 + fastpath where it is auto-enabled, else the default",
    }

    result["fastpath_numerics"] = fastpath_numerics()
    variants = (
        ["aecore"]
        + ([] if "dashboard" in args.skip else ["aecore-dashboard"])
        + (["aecore-bf16"] if bf16_ok else [])
        + ["aecore-fastpath"]
        + ([] if args.no_ompdefault or q else ["aecore-ompdefault"])
        + ["seeds", "seeds-passive", "tensords"]
    )
    gemm_procs = [v for v in ("aecore", "aecore-ompdefault") if v in variants]
    pythae_variants = ["pythae", "pythae-passive"] if have_pythae and "pythae" not in args.skip else []
    pool_variants = list(variants) + pythae_variants
    marks: dict[str, float] = {}
    mark = lambda name: marks.__setitem__(name, round(time.perf_counter() - t_start, 1))  # noqa: E731
    mark("numerics_done")
    pool = Pool(pool_variants, args.threads)
    result["processes"] = pool.info
    mark("workers_started")
    try:
        # ---- GEMM rate, in aecore's worker process(es), at the start and again at the end ----
        if "gemm" not in args.skip:
            result["gemm_start"] = {
                v: pool.call(v, "gemm", seconds=gemm_args[0], rounds=gemm_args[1]) for v in gemm_procs
            }
            g = result["gemm_start"]["aecore"]
            print("GEMM: " + ", ".join(f"{k} {v['gflops']:.0f} GFLOP/s" for k, v in g.items()), flush=True)
            mark("gemm_done")
        # ---- training throughput, interleaved per preset ----
        train_res: dict = {}
        if "train" not in args.skip or "latency" not in args.skip:
            for preset in args.presets:
                bs = BATCH_OVERRIDE.get(preset)
                info = {
                    v: pool.call(v, "setup", preset=preset, n=n, n_test=n_test, seed=seed, batch_size=bs)
                    for v in variants
                }
                active = [v for v in variants if v != "aecore-fastpath" or info[v]["fastpath_switched"]]
                samples = {v: [] for v in active}
                mm_during: dict[str, list[float]] = {}
                if "train" not in args.skip:
                    for r in range(first_round, rounds + 1):
                        # the GEMM reference takes its turn with the variants, in aecore's process,
                        # so that a model's share of it compares like with like
                        order = ["gemm", *active]
                        order = order[r % len(order) :] + order[: r % len(order)]
                        for v in order:
                            if v == "gemm":
                                if "gemm" not in args.skip:
                                    g = pool.call("aecore", "gemm", seconds=0.5 if q else 2.0, rounds=1)
                                    if r > 0:
                                        for k, val in g.items():
                                            mm_during.setdefault(k, []).extend(val["samples"])
                                continue
                            w = pool.call(v, "window", seconds=seconds, warm=warm, min_steps=min_steps)
                            w["load_avg"] = load_avg()
                            if r > 0:
                                samples[v].append(w)
                lat = (
                    pool.call("aecore", "latency", calls=lat_calls, encode_items=enc_items, encode_reps=enc_reps)
                    if "latency" not in args.skip
                    else None
                )
                for v in variants:
                    pool.call(v, "release")
                a = info["aecore"]
                train_res[preset] = {
                    "batch_size": a["batch_size"],
                    "n_train": a["n_train"],
                    "latent_dim": a["latent_dim"],
                    "forward_gflop_per_image": a["flops_per_image"] / 1e9,
                    "images_per_s": {v: median_rate(samples[v]) for v in active},
                    "windows": samples,
                    "latency": lat,
                    "gemm_during": {k: {"gflops": statistics.median(v), "samples": v} for k, v in mm_during.items()},
                    "not_run": {v: "no nn.Linear layer to switch" for v in variants if v not in active},
                }
                ips = train_res[preset]["images_per_s"]
                print(
                    f"{preset}: "
                    + ", ".join(f"{v} {fmt(ips[v])}" for v in active)
                    + " img/s"
                    + (f"; decode p50 {lat['decode_p50_ms']:.3f} ms" if lat else ""),
                    flush=True,
                )
        result["training"] = train_res
        mark("training_done")

        # ---- pythae beside aecore on pythae's default AE ----
        if have_pythae and "pythae" not in args.skip:
            pb = args.pythae_batch
            pvars = ["aecore", *pythae_variants]
            pinfo = {
                v: pool.call(
                    v, "setup", preset="vanilla", n=n, n_test=n_test, seed=seed, batch_size=pb, arch="pythae-ae"
                )
                for v in pvars
            }
            ps = {v: [] for v in pvars}
            for r in range(first_round, rounds + 1):
                for v in pvars[r % len(pvars) :] + pvars[: r % len(pvars)]:
                    w = pool.call(v, "window", seconds=seconds, warm=warm, min_steps=min_steps)
                    w["load_avg"] = load_avg()
                    if r > 0:
                        ps[v].append(w)
            for v in pvars:
                pool.call(v, "release")
            result["pythae"] = {
                "architecture": "784-512-10-512-784, ReLU, linear code, sigmoid output (pythae AE defaults)",
                "batch_size": pb,
                "parameters": pinfo["aecore"]["parameters"],
                "parameters_pythae": pinfo["pythae"]["parameters"],
                "forward_gflop_per_image": pinfo["aecore"]["flops_per_image"] / 1e9,
                "images_per_s": {v: median_rate(ps[v]) for v in ps},
                "windows": ps,
            }
            pr = result["pythae"]["images_per_s"]
            print(
                f"pythae AE (batch {pb}): " + ", ".join(f"{v} {fmt(x)}" for v, x in pr.items()) + " img/s", flush=True
            )
            mark("pythae_done")
        elif not have_pythae:
            result["pythae"] = {"skipped": "pythae is not installed (pip install -r bench/requirements.txt)"}

        # ---- quality: test loss after the same epochs ----
        if "quality" not in args.skip:
            qres = {}
            # the seeds' loop trains in the PASSIVE process: the same arithmetic, without the wait
            # that the default OpenMP policy adds on a busy machine
            qvars = (
                ["aecore", "seeds-passive"] + (["aecore-bf16"] if bf16_ok else []) + ([] if q else ["aecore-fastpath"])
            )
            for preset in args.presets:
                qres[preset] = {}
                for v in qvars:
                    if v == "aecore-fastpath" and preset == "conv":
                        continue
                    qres[preset][v.removesuffix("-passive")] = pool.call(
                        v,
                        "quality",
                        preset=preset,
                        epochs=q_epochs,
                        data_dir=args.data_dir,
                        limit=q_limit,
                        seed=seed,
                        n=n,
                        n_test=n_test,
                        test_limit=2000 if q else None,
                    )
                if not q:  # run-to-run noise: aecore again from the same weights with another shuffle order
                    qres[preset]["aecore-reshuffled"] = pool.call(
                        "aecore",
                        "quality",
                        preset=preset,
                        epochs=q_epochs,
                        data_dir=args.data_dir,
                        limit=q_limit,
                        seed=seed,
                        n=n,
                        n_test=n_test,
                        train_seed=seed + 1,
                    )
                line = ", ".join(f"{v} {r['test_loss']:.5g}" for v, r in qres[preset].items())
                print(f"quality {preset} [{next(iter(qres[preset].values()))['data']}]: {line}", flush=True)
            result["quality"] = qres
            mark("quality_done")
        # ---- timeline: what recording it costs a whole short run ----
        if "timeline" not in args.skip:
            result["timeline"] = {
                preset: pool.call(
                    "aecore",
                    "timeline_cost",
                    preset=preset,
                    n=n,
                    n_test=n_test,
                    seed=seed,
                    epochs=2,
                    rounds=1 if q else 2,
                )
                for preset in args.presets
            }
            for preset, t in result["timeline"].items():
                print(
                    f"timeline {preset}: {t['frames']} frames, recording {100 * t['recording_share']:.2f}% of "
                    f"training, wall x{t['wall_ratio']:.3f}",
                    flush=True,
                )
            mark("timeline_done")
        if "gemm" not in args.skip:
            result["gemm_end"] = {
                v: pool.call(v, "gemm", seconds=gemm_args[0], rounds=gemm_args[1]) for v in gemm_procs
            }
            result["gemm"] = {
                p: {
                    k: {
                        "gflops": statistics.median(
                            result["gemm_start"][p][k]["samples"] + result["gemm_end"][p][k]["samples"]
                        )
                    }
                    for k in result["gemm_start"][p]
                }
                for p in gemm_procs
            }
    finally:
        pool.close()
    result["machine"]["load_avg_end"] = load_avg()
    result["wall_s"] = time.perf_counter() - t_start
    result["section_marks_s"] = marks

    report, goals = render(result)
    result["goals"] = goals
    print()
    print(report)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "speed-quick" if q else "speed"
    dated = out / f"{stem}-{started:%Y-%m-%d-%H%M%S}.json"
    result["table"] = report
    text = json.dumps(result, indent=1, default=float)
    dated.write_text(text)
    (out / f"{stem}-latest.json").write_text(text)
    print(f"\nwrote {dated} and {out / f'{stem}-latest.json'} ({result['wall_s']:.0f} s)")
    return 0


def render(res: dict) -> tuple[str, list[dict]]:
    """The printed report and the list of goals with their ratios."""
    out, goals = [], []
    pol = {v: p["omp_wait_policy_at_torch_load"] for p in res.get("processes", []) for v in p["variants"]}
    gemm_all = res.get("gemm", {})
    gemm = gemm_all.get("aecore", {})
    mm32 = gemm.get("mm_fp32", {}).get("gflops")
    M, K, N = GEMM_SHAPE
    if gemm:
        out.append(
            f"GEMM ({M}x{K})@({K}x{N}), {res['settings']['threads']} threads, in aecore's worker process "
            "(OMP_WAIT_POLICY as aecore sets it); median of the samples at the start and end of the run:"
        )
        rows = []
        for p, g in gemm_all.items():
            for k, v in g.items():
                samples = res["gemm_start"][p][k]["samples"] + res["gemm_end"][p][k]["samples"]
                rows.append(
                    [
                        k.replace("_", " ") + ("" if p == "aecore" else " (OpenMP default wait)"),
                        f"{v['gflops']:.0f}",
                        " ".join(f"{x:.0f}" for x in samples),
                    ]
                )
        out.append(table(rows, ["kernel", "GFLOP/s", "samples (start ... end)"]))
        out.append(
            "mm fp32 = MKL sgemm (what nn.Linear uses); onednn fp32 = torch.ops.mkldnn._linear_pointwise "
            "(what bench/fastpath.py uses); mm bf16 = what bf16 autocast uses."
        )
        out.append("")

    tr = res.get("training", {})
    fastest = res["fastest_mode"]["variant"]
    if tr and any(v["images_per_s"] for v in tr.values()):
        s = res["settings"]
        out.append(
            f"Training throughput, images/s (median of {s['rounds']} windows of >= {s['window_s']} s "
            f"{'(quick: no warm-up round)' if res['quick'] else 'after a warm-up round'}, variants "
            f"interleaved; N={s['n']} synthetic):"
        )
        names = {
            "aecore": "aecore (CLI)",
            "aecore-dashboard": "aecore (dashboard)",
            "aecore-bf16": "aecore bf16",
            "aecore-fastpath": "aecore+fastpath",
            "aecore-ompdefault": "aecore, OMP default",
            "seeds": "seeds' loop",
            "seeds-passive": "seeds' loop, PASSIVE",
            "tensords": "DL(TensorDataset), PASSIVE",
        }
        present = {v for r in tr.values() for v in r["images_per_s"]}
        cols = [
            c
            for c in names
            if c in present or (c == "aecore-bf16" and not res["bf16"]["supported"]) or (c == "aecore-fastpath")
        ]
        rows = []
        for preset, r in tr.items():
            ips = r["images_per_s"]
            row = [preset, str(r["batch_size"])]
            for c in cols:
                if c in ips:
                    row.append(fmt(ips[c]))
                elif c == "aecore-bf16" and not res["bf16"]["supported"]:
                    row.append("refused")
                else:
                    row.append("n/a")
            a = ips.get("aecore")
            for base in ("seeds", "seeds-passive"):
                b = ips.get(base)
                row.append(fmt(a / b if a and b else None, ".2f") + "x")
            d = ips.get("aecore-dashboard")
            row.append(fmt(d / a if a and d else None, ".0%"))
            if fastest != "aecore":
                f, b = ips.get(fastest), ips.get("seeds")
                row.append(fmt(f / b if f and b else None, ".2f") + "x")
            rows.append(row)
        out.append(
            table(
                rows,
                ["preset", "batch", *[names[c] for c in cols], "aecore/seeds", "aecore/seeds PASSIVE", "dashboard/CLI"]
                + (["fastest/seeds"] if fastest != "aecore" else []),
            )
        )
        out.append(
            f"OMP_WAIT_POLICY when torch loaded: aecore {pol.get('aecore')} (aecore/__init__.py sets it, as in "
            f"the CLI); seeds' loop {pol.get('seeds')} (the environment the bench was started with); "
            f"'PASSIVE' rows {pol.get('seeds-passive')}"
            + (f"; 'OMP default' row {pol.get('aecore-ompdefault')}" if "aecore-ompdefault" in cols else "")
            + "."
        )
        out.append(f"Fastest honest mode here: {res['fastest_mode']['label']} ({res['fastest_mode']['rule']}).")
        if not res["bf16"]["supported"]:
            out.append(f"bf16 refused by aecore on this CPU: {res['bf16']['why_not']}.")
        out.append(
            f"fastpath rows are forced; auto-enabled here: {res['fastpath']['auto_enabled_here']} "
            f"({res['fastpath']['why']})."
        )
        num = res.get("fastpath_numerics", {})
        if num.get("deep-dense"):
            out.append(
                "fastpath numerics (one step's gradients, max relative error vs fp64 over all parameters): "
                + "; ".join(
                    f"{p} stock {v['max_rel_grad_error_vs_fp64']['stock_fp32']:.1e}, fastpath "
                    f"{v['max_rel_grad_error_vs_fp64']['fastpath_fp32']:.1e}"
                    for p, v in num.items()
                )
                + " (fp32 rounding; bf16 would be ~1e-2, TF32 ~1e-3)."
            )
        out.append("")

        if any(r.get("gemm_during") for r in tr.values()):
            out.append(
                "Achieved GFLOP/s (3 x forward matmul/conv FLOPs x images/s) and share of the torch.mm fp32 "
                "rate measured in the same rounds (its turn among the variants, in aecore's process):"
            )
            gcols = [
                c for c in ("aecore", "aecore-fastpath", "aecore-ompdefault", "seeds", "seeds-passive") if c in present
            ]
            rows = []
            for preset, r in tr.items():
                g = r["forward_gflop_per_image"] * 3
                ips = r["images_per_s"]
                d32 = r.get("gemm_during", {}).get("mm_fp32", {}).get("gflops")
                d16 = r.get("gemm_during", {}).get("mm_bf16", {}).get("gflops")
                cells = [preset, f"{r['forward_gflop_per_image'] * 1e3:.2f}", fmt(d32, ".0f")]
                for c in gcols:
                    v = ips.get(c)
                    cells.append("-" if v is None or not d32 else f"{v * g:.0f} ({v * g / d32:.0%})")
                if res["bf16"]["supported"]:
                    v = ips.get("aecore-bf16")
                    cells.append("-" if v is None or not d16 else f"{v * g:.0f} ({v * g / d16:.0%} of bf16 mm)")
                rows.append(cells)
            out.append(
                table(
                    rows,
                    ["preset", "fwd MFLOP/img", "mm fp32 then", *[names[c] for c in gcols]]
                    + (["aecore bf16"] if res["bf16"]["supported"] else []),
                )
            )
            out.append("")

        lat_rows = [
            [
                p,
                f"{r['latency']['decode_p50_ms']:.3f}",
                f"{r['latency']['decode_p99_ms']:.3f}",
                fmt(r["latency"]["encode_images_per_s"]),
            ]
            for p, r in tr.items()
            if r.get("latency")
        ]
        if lat_rows:
            out.append("Inference (aecore model, inference_mode, batch 1 decode; one call encodes 10,000 images):")
            out.append(table(lat_rows, ["preset", "decode p50 ms", "decode p99 ms", "encode images/s"]))
            out.append("")

    py = res.get("pythae", {})
    if py.get("images_per_s"):
        pr = py["images_per_s"]
        a = pr.get("aecore")
        out.append(
            f"pythae 0.1.2 TrainingPipeline vs aecore Trainer on pythae's default AE ({py['architecture']}; "
            f"batch {py['batch_size']}, {py['parameters']:,} parameters):"
        )
        label = {
            "pythae": f"pythae TrainingPipeline (OMP_WAIT_POLICY {pol.get('pythae')})",
            "pythae-passive": "pythae TrainingPipeline, PASSIVE",
            "aecore": "aecore Trainer (fp32)",
        }
        rows = [
            [label[v], fmt(x), "-" if v == "aecore" else fmt(a / x if a and x else None, ".2f") + "x"]
            for v, x in pr.items()
        ]
        out.append(table(rows, ["loop", "images/s", "aecore/this"]))
        out.append("")
    elif py.get("skipped"):
        out.append(f"pythae: skipped ({py['skipped']}).")
        out.append("")

    qr = res.get("quality", {})
    if qr:
        out.append("Test loss after the same epochs (model units; same initial weights; evaluated in fp32):")
        rows = []
        for preset, r in qr.items():
            a, sd = r["aecore"]["test_loss"], r["seeds"]["test_loss"]
            b = r.get("aecore-bf16", {}).get("test_loss")
            fp = r.get("aecore-fastpath", {}).get("test_loss")
            a2 = r.get("aecore-reshuffled", {}).get("test_loss")
            rows.append(
                [
                    preset,
                    r["aecore"]["data"],
                    str(r["aecore"]["epochs"]),
                    f"{a:.5g}",
                    f"{sd:.5g}",
                    f"{a / sd:.4f}",
                    "-" if a2 is None else f"{a2 / a:.4f}",
                    "refused" if b is None and not res["bf16"]["supported"] else fmt(b, ".5g"),
                    "-" if b is None else f"{b / a:.4f}",
                    fmt(fp, ".5g"),
                    "-" if fp is None else f"{fp / a:.4f}",
                ]
            )
        out.append(
            table(
                rows,
                [
                    "preset",
                    "data",
                    "epochs",
                    "aecore",
                    "seeds' loop",
                    "aecore/seeds",
                    "reshuffled/aecore",
                    "aecore bf16",
                    "bf16/fp32",
                    "fastpath",
                    "fastpath/fp32",
                ],
            )
        )
        out.append(
            "reshuffled/aecore: aecore again from the same weights with another shuffle order "
            "(the run-to-run noise the 2% goal sits in)."
        )
        out.append("")

    # ---- goals ----
    def goal(name, ratios, met, detail):
        goals.append({"goal": name, "met": met, "detail": detail, "ratios": ratios})

    if tr and any(v["images_per_s"] for v in tr.values()):
        checks = [("aecore", "seeds", "aecore default vs the seeds' loop as the seeds run")]
        if fastest != "aecore":
            checks.append((fastest, "seeds", "aecore fastest mode vs the seeds' loop"))
        checks += [
            ("aecore", "seeds-passive", "aecore default vs the seeds' loop with aecore's OpenMP policy"),
            ("aecore-ompdefault", "seeds", "aecore under OpenMP's default policy vs the seeds' loop"),
        ]
        for key, base, label in checks:
            ratios = {
                p: r["images_per_s"][key] / r["images_per_s"][base]
                for p, r in tr.items()
                if r["images_per_s"].get(key) and r["images_per_s"].get(base)
            }
            if ratios:
                goal(
                    f"every preset >= {GOAL_VS_SEEDS:g}x the seeds' loop ({label})",
                    ratios,
                    all(v >= GOAL_VS_SEEDS for v in ratios.values()),
                    ", ".join(f"{p} {v:.2f}x" for p, v in ratios.items()),
                )
    if py.get("images_per_s"):
        pr = py["images_per_s"]
        for base, label in (("pythae", "as pythae runs"), ("pythae-passive", "pythae with aecore's OpenMP policy")):
            if pr.get(base) and pr.get("aecore"):
                ratio = pr["aecore"] / pr[base]
                goal(
                    f">= {GOAL_VS_PYTHAE:g}x pythae on its architecture ({label})",
                    {"aecore/pythae": ratio},
                    ratio >= GOAL_VS_PYTHAE,
                    f"{ratio:.2f}x at batch {py['batch_size']}",
                )
    dd = tr.get("deep-dense", {})
    d32 = dd.get("gemm_during", {}).get("mm_fp32", {}).get("gflops")
    if d32 and dd["images_per_s"].get("aecore"):
        got = dd["images_per_s"]["aecore"] * 3 * dd["forward_gflop_per_image"]
        share = got / d32
        ratios = {"share_same_rounds": share}
        detail = f"{share:.0%} ({got:.0f} of {d32:.0f} GFLOP/s, mm measured in the same rounds"
        if mm32:
            ratios["share_run_start_end"] = got / mm32
            detail += f"; {got / mm32:.0%} of the start/end median {mm32:.0f}"
        goal(
            f"deep-dense fp32 >= {GOAL_MM_SHARE:.0%} of the torch.mm fp32 rate",
            ratios,
            share >= GOAL_MM_SHARE,
            detail + ")",
        )
        fpi = dd["images_per_s"].get("aecore-fastpath")
        if fpi:
            goals[-1]["detail"] += f"; with fastpath {fpi * 3 * dd['forward_gflop_per_image'] / d32:.0%}"
    dash = {
        p: r["images_per_s"]["aecore-dashboard"] / r["images_per_s"]["aecore"]
        for p, r in tr.items()
        if r["images_per_s"].get("aecore-dashboard") and r["images_per_s"].get("aecore")
    }
    if dash:
        goal(
            f"dashboard (Train page polling) >= {GOAL_DASHBOARD:.0%} of the CLI's images/s",
            dash,
            all(v >= GOAL_DASHBOARD for v in dash.values()),
            ", ".join(f"{p} {v:.0%}" for p, v in dash.items()),
        )
    tlc = res.get("timeline", {})
    if tlc:
        out.append("Timeline recording: whole 2-epoch runs with and without it (median of alternating runs)")
        rows = [
            [p, str(t["frames"]), f"{100 * t['recording_share']:.2f}%", f"{t['wall_ratio']:.3f}"]
            for p, t in tlc.items()
        ]
        out.append(table(rows, ["preset", "frames", "recording / training time", "wall with / without"]))
        out.append("")
        shares = {p: t["recording_share"] for p, t in tlc.items()}
        goal(
            f"timeline recording <= {GOAL_TIMELINE:.0%} of training time",
            shares,
            all(v <= GOAL_TIMELINE for v in shares.values()),
            ", ".join(f"{p} {v:.2%}" for p, v in shares.items()),
        )
    lats = {p: r["latency"]["decode_p50_ms"] for p, r in tr.items() if r.get("latency")}
    if lats:
        goal(
            f"decode p50 <= {GOAL_DECODE_MS:g} ms",
            lats,
            all(v <= GOAL_DECODE_MS for v in lats.values()),
            ", ".join(f"{p} {v:.3f} ms" for p, v in lats.items()),
        )
    if qr:
        ratios = {p: r["aecore"]["test_loss"] / r["seeds"]["test_loss"] for p, r in qr.items()}
        goal(
            f"aecore test loss <= {GOAL_QUALITY:g}x the seeds' loop",
            ratios,
            all(v <= GOAL_QUALITY for v in ratios.values()),
            ", ".join(f"{p} {v:.4f}" for p, v in ratios.items()),
        )
        if res["bf16"]["supported"]:
            ratios = {
                p: r["aecore-bf16"]["test_loss"] / r["aecore"]["test_loss"] for p, r in qr.items() if "aecore-bf16" in r
            }
            goals.append(
                {
                    "goal": "bf16 vs fp32 test loss (reported, no goal)",
                    "met": None,
                    "detail": ", ".join(f"{p} {v:.4f}" for p, v in ratios.items()),
                    "ratios": ratios,
                }
            )
    if goals:
        out.append("Goals:")
        for g in goals:
            mark = "----" if g["met"] is None else ("MET" if g["met"] else "NOT MET")
            out.append(f"  [{mark}] {g['goal']}: {g['detail']}")
    la = res["machine"]
    out.append(
        f"(load average start {la.get('load_avg_start')}, end {la.get('load_avg_end')}; "
        f"wall {res.get('wall_s', 0):.0f} s)"
    )
    return "\n".join(out), goals


if __name__ == "__main__":
    sys.exit(main())
