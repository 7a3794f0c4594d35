"""``python -m aecore``: the engine from the command line.

A user mistake prints one line, ``error: ...``, on stderr and exits with 2;
only a bug shows a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
from pathlib import Path

import numpy as np

from aecore.device import DEVICES
from aecore.errors import AecoreError, ConfigError
from aecore.forms import choices
from aecore.train import TrainConfig


def _int_at_least(lo: int):
    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {s!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be at least {lo}, got {v}")
        return v

    return parse


_positive_int, _nonneg_int = _int_at_least(1), _int_at_least(0)


def _positive_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {s}")
    return v


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, same shape as every other user error
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m aecore", description="Train and explore autoencoders from the command line.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add_store(sp):
        sp.add_argument("--store", help="model store folder (default: $AECORE_STORE or ./models_store)")

    def add_data(sp):
        sp.add_argument(
            "--data-dir",
            help="folder holding MNIST/raw, FashionMNIST/raw, KMNIST/raw (default: $AECORE_DATA_DIR or ./data)",
        )

    sp = sub.add_parser("presets", help="list the presets")
    sp.add_argument("--json", action="store_true")
    sp = sub.add_parser("datasets", help="list the datasets and which are available")
    add_data(sp)
    sp.add_argument("--json", action="store_true")
    sp = sub.add_parser("models", help="list saved models")
    add_store(sp)
    sp.add_argument("--json", action="store_true")

    sp = sub.add_parser("train", help="train a preset and save it")
    sp.add_argument("--preset", required=True)
    sp.add_argument(
        "--dataset", help="registry name or csv:PATH, idx:PATH, npz:PATH, images:PATH (default: the preset's)"
    )
    sp.add_argument("--epochs", type=_positive_int)
    sp.add_argument("--batch-size", type=_positive_int)
    sp.add_argument("--lr", type=_positive_float)
    sp.add_argument("--latent-dim", type=_positive_int)
    sp.add_argument("--optimizer", choices=choices(TrainConfig, "optimizer"))
    sp.add_argument(
        "--precision",
        choices=choices(TrainConfig, "precision"),
        help="bf16: opt-in fast mode where the hardware has it",
    )
    sp.add_argument("--limit", type=_positive_int, help="train on the first N training items")
    sp.add_argument("--device", default="auto", choices=DEVICES)
    sp.add_argument("--seed", type=_nonneg_int, help="RNG seed (default 0; a continued model keeps its own)")
    sp.add_argument("--name", help="model name in the store (default: <preset>-<dataset>-<time>)")
    sp.add_argument("--overwrite", action="store_true", help="replace a saved model of the same name")
    sp.add_argument("--resume", metavar="NAME", help="continue training a saved model (saved back under NAME)")
    sp.add_argument("--download", action="store_true", help="fetch MNIST-like data through torchvision")
    sp.add_argument("--no-progress", action="store_true")
    sp.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    add_data(sp)
    add_store(sp)

    sp = sub.add_parser("eval", help="test metrics of a saved model, with PCA at the same code size")
    sp.add_argument("name")
    sp.add_argument("--dataset", help="default: the dataset the model was trained on")
    sp.add_argument("--json", action="store_true")
    add_data(sp)
    add_store(sp)

    sp = sub.add_parser("score", help="reconstruction error of every item (anomaly score)")
    sp.add_argument("name")
    sp.add_argument("--dataset", required=True)
    sp.add_argument("--split", choices=["train", "val", "test"], default="test")
    sp.add_argument("--json", action="store_true")
    add_data(sp)
    add_store(sp)

    sp = sub.add_parser("reconstruct", help="reconstruct (or denoise) image files")
    sp.add_argument("name")
    sp.add_argument("files", nargs="+")
    sp.add_argument("--out", required=True, help="folder for the output PNGs")
    sp.add_argument("--noise", type=float, default=0.0, help="add N(0, S) noise first (denoising demo)")
    sp.add_argument("--invert", choices=["auto", "yes", "no"], default="auto")
    sp.add_argument("--seed", type=_nonneg_int, default=0)
    add_store(sp)

    sp = sub.add_parser("generate", help="decode a latent vector into an image")
    sp.add_argument("name")
    sp.add_argument("--z", required=True, help="comma-separated code values, one per latent dimension")
    sp.add_argument("--out", required=True, help="PNG file to write")
    sp.add_argument("--scale", type=_positive_int, default=4, help="upscale factor of the PNG")
    add_store(sp)
    return p


def _store(args):
    from aecore.store import ModelStore

    return ModelStore(args.store)


def _print_table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


def cmd_presets(args) -> int:
    from aecore.presets import PRESETS

    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": p.name,
                        "source": p.source,
                        "dataset": p.dataset,
                        "summary": p.summary,
                        "epochs": p.train.epochs,
                        "batch_size": p.train.batch_size,
                        "lr": p.train.lr,
                        "notes": p.notes,
                    }
                    for p in PRESETS.values()
                ],
                indent=2,
            )
        )
        return 0
    _print_table(
        [[p.name, p.source or "-", p.dataset, p.train.epochs, p.train.batch_size, p.summary] for p in PRESETS.values()],
        ["preset", "seed", "dataset", "epochs", "batch", "model"],
    )
    return 0


def cmd_datasets(args) -> int:
    from aecore.data import DATASETS, resolve_data_dir

    rows = [
        {
            "name": d.name,
            "kind": d.kind,
            "offline": d.builtin,
            "available": d.available(args.data_dir),
            "description": d.description,
        }
        for d in DATASETS.values()
    ]
    if args.json:
        print(json.dumps({"data_dir": str(resolve_data_dir(args.data_dir)), "datasets": rows}, indent=2))
        return 0
    _print_table(
        [
            [
                r["name"],
                r["kind"],
                "built in" if r["offline"] else ("yes" if r["available"] else "no"),
                r["description"],
            ]
            for r in rows
        ],
        ["dataset", "kind", "available", "description"],
    )
    print(f"\ndata dir: {resolve_data_dir(args.data_dir)}; your own files: csv:PATH, idx:PATH, npz:PATH, images:PATH")
    return 0


def cmd_models(args) -> int:
    infos = _store(args).list()
    if args.json:
        print(json.dumps([i.__dict__ for i in infos], indent=2, default=str))
        return 0
    if not infos:
        print("no saved models yet; train one with `python -m aecore train --preset vanilla --dataset digits`")
        return 0

    def fmt(v):
        return f"{v:.4g}" if isinstance(v, (int, float)) else "-"

    _print_table(
        [
            [
                i.name,
                i.preset or "-",
                i.dataset or "-",
                i.latent_dim or "-",
                fmt(i.metrics.get("test_mse")),
                fmt(i.metrics.get("pca_test_mse")),
                "" if i.ok else f"BROKEN: {i.error}",
            ]
            for i in infos
        ],
        ["model", "preset", "dataset", "code", "test_mse", "pca_mse", ""],
    )
    return 0


class _Progress:
    """A tqdm bar over all steps of the run."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None

    def on_train_start(self, info):
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(
                total=info["epochs"] * info["steps_per_epoch"],
                unit="step",
                file=sys.stderr,
                dynamic_ncols=True,
                mininterval=0.5,
            )

    def on_step_end(self, ev):
        if self.bar is not None:
            self.bar.update(1)
            if ev.step == ev.steps_per_epoch or ev.global_step % 20 == 0:
                self.bar.set_postfix(epoch=ev.epoch, loss=f"{ev.loss:.4g}", img_s=f"{ev.images_per_s:,.0f}")

    def on_epoch_end(self, ev):
        if self.bar is not None:
            val = "-" if ev.val_loss is None else f"{ev.val_loss:.5g}"
            self.bar.write(
                f"epoch {ev.epoch}/{ev.epochs}  train {ev.train_loss:.5g}  val {val}  {ev.images_per_s:,.0f} img/s"
            )

    def on_train_end(self, result):
        if self.bar is not None:
            self.bar.close()


def cmd_train(args) -> int:
    from aecore import distributed

    # Under torchrun: join the process group; every rank trains its shard, rank 0 alone saves and prints.
    dist_info, args.device = distributed.init_from_env(args.device)
    try:
        return _train(args, dist_info)
    finally:
        distributed.shutdown()


def _train(args, dist_info) -> int:
    from aecore.runs.pipeline import train_and_save
    from aecore.runs.request import TrainRequest

    store = _store(args)
    seed = args.seed
    if seed is None:  # a continued model keeps the seed that drew its splits
        seed = store.load(args.resume).meta.seed if args.resume else 0
    request = TrainRequest(
        preset=args.preset,
        dataset=args.dataset,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        latent_dim=args.latent_dim,
        optimizer=args.optimizer,
        precision=args.precision,
        limit=args.limit,
        device=args.device,
        seed=seed,
        data_dir=args.data_dir,
        download=args.download,
    )
    request.preset_obj()  # unknown preset: fail before loading any data
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())  # Ctrl-C: stop after this batch, keep the model
    try:
        progress = _Progress(dist_info.is_main and not args.no_progress and not args.json)
        out = train_and_save(
            request,
            store,
            args.name,
            overwrite=args.overwrite,
            resume_from=args.resume,
            callbacks=[progress],
            stop_event=stop,
            save=dist_info.is_main,
            world_size=dist_info.world_size,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    result, tm = out.result, out.tm
    if not dist_info.is_main:
        return 0 if result.status not in ("diverged", "failed") else 1
    summary = {
        "name": out.saved_as,
        "path": str(store.path(out.saved_as)) if out.saved_as else None,
        "status": result.status,
        "message": out.message,
        "notes": out.notes,
        **tm.metrics,
    }
    if args.json:
        print(json.dumps(summary, indent=2, default=float))
    else:
        m = tm.metrics
        print(f"{result.status}: {result.message}")
        for note in out.notes:
            print(f"note: {note}")
        if out.saved_as:
            print(f"saved as {out.saved_as!r} in {store.root}")
        if "test_mse" in m:
            print(
                f"test MSE {m['test_mse']:.5f} (PSNR {m['psnr_db']:.2f} dB); PCA with {m['pca_components']} "
                f"components: {m['pca_test_mse']:.5f} ({m['pca_psnr_db']:.2f} dB); {m['images_per_s']:,.0f} img/s"
            )
        elif "sequence_accuracy" in m:
            print(f"sequence accuracy {m['sequence_accuracy']:.4f}, token accuracy {m['token_accuracy']:.4f}")
    if result.status in ("diverged", "failed"):
        print(f"error: {result.message}", file=sys.stderr)
        return 1
    return 0


def _model_and_data(args, dataset: str | None):
    from aecore.runs.request import model_data

    tm = _store(args).load(args.name)
    return tm, model_data(tm, getattr(args, "data_dir", None), dataset)


def cmd_eval(args) -> int:
    from aecore.explore.metrics import evaluate

    tm, bundle = _model_and_data(args, args.dataset)
    metrics = evaluate(tm, bundle)
    metrics["dataset"] = bundle.name
    if args.dataset in (None, tm.meta.dataset):
        _store(args).update_metrics(args.name, {k: v for k, v in metrics.items() if k != "test_terms"})
    if args.json:
        print(json.dumps(metrics, indent=2, default=float))
        return 0
    for k, v in metrics.items():
        print(f"{k:20s} {v:.6g}" if isinstance(v, float) else f"{k:20s} {v}")
    return 0


def cmd_score(args) -> int:
    from aecore.explore import inference

    tm, bundle = _model_and_data(args, args.dataset)
    s = getattr(bundle, args.split)
    errors = (
        inference.per_item_errors(tm, s.x, target=s.target)
        if bundle.kind == "sequence"
        else inference.per_item_errors(tm, s.x)
    )
    if args.json:
        print(
            json.dumps(
                {"model": args.name, "dataset": bundle.name, "split": args.split, "errors": [float(e) for e in errors]}
            )
        )
        return 0
    order = np.argsort(errors)[::-1]
    print(f"{len(errors)} items; mean error {errors.mean():.6g}, median {np.median(errors):.6g}")
    print("worst 10 (index, error):")
    for i in order[:10]:
        print(f"  {i:6d}  {errors[i]:.6g}")
    return 0


def cmd_reconstruct(args) -> int:
    from PIL import Image

    from aecore.explore import baselines, inference
    from aecore.explore.figures import to_png_array
    from aecore.explore.uploads import prepare_image

    if not (0 <= args.noise <= 10):
        raise ConfigError(f"--noise must be between 0 and 10; got {args.noise}.")
    tm = _store(args).load(args.name)
    shape = tuple(tm.model.config.input_shape)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    failures = 0
    for f in args.files:
        try:
            prep = prepare_image(
                Path(f), shape, invert=args.invert, dark_background=tm.meta.dark_background is not False
            )
        except AecoreError as e:
            print(f"error: {e}", file=sys.stderr)
            failures += 1
            continue
        clean = prep.array
        noisy = (
            np.clip(clean + args.noise * rng.standard_normal(clean.shape).astype(np.float32), 0, 1)
            if args.noise > 0
            else clean
        )
        rec = inference.reconstruct(tm, noisy[None])[0]
        panels = [clean] + ([noisy] if args.noise > 0 else []) + [rec]
        strip = np.concatenate([to_png_array(p, scale=4) for p in panels], axis=1)
        dest = out / f"{Path(f).stem}_recon.png"
        Image.fromarray(strip).save(dest)
        mse = float(np.mean((rec - clean) ** 2))
        line = f"{f}: {'; '.join(prep.steps)} -> {dest} (PSNR {baselines.psnr(mse):.2f} dB vs the clean input"
        if args.noise > 0:
            line += f"; noisy input {baselines.psnr(float(np.mean((noisy - clean) ** 2))):.2f} dB"
        print(line + ")")
    return 1 if failures else 0


def cmd_generate(args) -> int:
    from PIL import Image

    from aecore.explore import inference
    from aecore.explore.figures import to_png_array

    tm = _store(args).load(args.name)
    try:
        z = np.array([float(v) for v in args.z.split(",")], dtype=np.float32)
    except ValueError:
        raise ConfigError(f"--z must be comma-separated numbers; got {args.z!r}.") from None
    if not np.all(np.isfinite(z)):
        raise ConfigError("--z values must be finite numbers.")
    if len(z) != tm.model.latent_dim:
        raise ConfigError(
            f"model {args.name!r} has a {tm.model.latent_dim}-dimensional code; --z gave {len(z)} value(s)."
        )
    if tm.data_kind != "image":
        raise ConfigError("generate writes images; this model's data are not images.")
    img = inference.decode(tm, z[None])[0]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_png_array(img, scale=args.scale)).save(args.out)
    print(f"wrote {args.out}")
    return 0


COMMANDS = {
    "presets": cmd_presets,
    "datasets": cmd_datasets,
    "models": cmd_models,
    "train": cmd_train,
    "eval": cmd_eval,
    "score": cmd_score,
    "reconstruct": cmd_reconstruct,
    "generate": cmd_generate,
}


def _join_negative_values(argv: list[str]) -> list[str]:
    """``--z -1,2`` would read as an unknown option to argparse; ``--z=-1,2`` does not."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] == "--z" and i + 1 < len(argv) and argv[i + 1].startswith("-"):
            out.append(f"--z={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(_join_negative_values(list(argv)))
    try:
        return COMMANDS[args.command](args)
    except AecoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
