"""The model store: one folder per model, JSON and safetensors only.

    <store>/<name>/config.json          everything needed to rebuild and reuse the model
                   weights.safetensors  model weights (+ the normaliser's statistics)
                   optimizer.safetensors optimizer state, so training can resume
                   history.json         per-epoch losses by term
                   metrics.json         final and test metrics
                   timeline.safetensors codes of a probe set over training (aecore.timeline)

Saving is atomic: a model is written completely into ``.staging/`` and then
renamed into place; replacing an existing one moves the old folder to
``.trash/`` first, and any crash between those two renames is repaired the
next time the store is opened (the old model comes back). Nothing is ever
unpickled: a ``.pt`` or pickle file in a model folder is simply never read.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import stat
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from aecore.errors import AecoreError, ConfigError, StoreError
from aecore.models import build_model, config_from_dict
from aecore.models.trained import TrainedModel
from aecore.normalise import Normaliser
from aecore.records import STORE_FIELDS, ModelMeta, history_from_json
from aecore.timeline import FILE as TIMELINE_FILE
from aecore.timeline import Timeline, load_timeline, save_timeline

FORMAT = "aecore-model/1"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
MAX_JSON_BYTES = 4 * 1024 * 1024
FILES = ("config.json", "weights.safetensors", "history.json", "metrics.json")


def default_store_dir() -> Path:
    return Path(os.environ.get("AECORE_STORE") or Path(__file__).resolve().parents[1] / "models_store")


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or name.endswith(".") or ".." in name:
        raise StoreError(
            f"invalid model name {name!r}: use 1-80 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (no '/', '..' or control characters)."
        )
    return name


@dataclass
class ModelInfo:
    name: str
    ok: bool
    preset: str | None = None
    dataset: str | None = None
    kind: str | None = None
    created: str | None = None
    latent_dim: int | None = None
    metrics: dict = field(default_factory=dict)
    error: str | None = None
    data_kind: str | None = None  # image, vector or sequence


def _read_json(path: Path) -> object:
    try:
        st = path.stat()
        if stat.S_ISREG(st.st_mode) and st.st_size > MAX_JSON_BYTES:
            raise StoreError(f"{path.name} in {path.parent.name} is larger than {MAX_JSON_BYTES // 2**20} MiB.")
        if not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
            # a link to /dev/zero or a FIFO would never finish reading
            raise StoreError(f"{path.name} of model {path.parent.name!r} is not a regular file.")
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise StoreError(f"model {path.parent.name!r} has no {path.name}.") from e
    except OSError as e:  # a folder or an unreadable file where a JSON file should be
        raise StoreError(f"{path.name} of model {path.parent.name!r} cannot be read ({e.strerror}).") from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StoreError(f"{path.name} of model {path.parent.name!r} is not valid JSON ({e}).") from e
    except RecursionError as e:  # "[[[[..." a few hundred kB deep
        raise StoreError(f"{path.name} of model {path.parent.name!r} is nested too deeply to be a model's JSON.") from e


def _optimizer_to_tensors(state: dict) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    tensors, scalars = {}, {}
    for idx, entry in state.get("state", {}).items():
        for k, v in entry.items():
            if torch.is_tensor(v):
                tensors[f"state.{idx}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{k}"] = v
    return tensors, {"param_groups": json.dumps(state.get("param_groups", [])), "scalars": json.dumps(scalars)}


def _optimizer_from_file(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state: dict = {}
            for key in f.keys():
                _, idx, name = key.split(".", 2)
                state.setdefault(int(idx), {})[name] = f.get_tensor(key)
        for key, v in json.loads(meta.get("scalars", "{}")).items():
            idx, name = key.split(".", 1)
            state.setdefault(int(idx), {})[name] = v
        return {"state": state, "param_groups": json.loads(meta.get("param_groups", "[]"))}
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError):
        return None  # optimizer state is optional: resume then starts a fresh optimizer


class ModelStore:
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_store_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        self._recover()

    # --- locking and crash recovery ----------------------------------------
    @contextlib.contextmanager
    def _lock(self):
        """One writer at a time per store (two sessions saving one name)."""
        try:
            import fcntl
        except ImportError:  # Windows: renames are still atomic, only serialisation is lost
            yield
            return
        with open(self.root / ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _recover(self) -> None:
        staging = self.root / ".staging"
        if staging.is_dir():
            # A save killed mid-write leaves its folder here; an hour is far longer than any save takes.
            cutoff = time.time() - 3600
            for leftover in staging.iterdir():
                with contextlib.suppress(OSError):
                    if leftover.stat().st_mtime < cutoff:
                        shutil.rmtree(leftover, ignore_errors=True)
        trash, deleted = self.root / ".trash", self.root / ".trash-delete"
        if not trash.is_dir() and not deleted.is_dir():
            return
        with self._lock():
            # A delete killed between its rename and its rmtree: that model was already gone
            shutil.rmtree(deleted, ignore_errors=True)
            for old in sorted(trash.iterdir()) if trash.is_dir() else []:
                name = old.name.rsplit("--", 1)[0]
                target = self.root / name
                if NAME_RE.fullmatch(name) and not target.exists():
                    os.replace(old, target)  # the crash came between the two renames: undo the first
                else:
                    shutil.rmtree(old, ignore_errors=True)

    def path(self, name: str) -> Path:
        return self.root / validate_name(name)

    def weights_stamp(self, name: str) -> int:
        """When the model's weights were last written (ns; 0 when there are none): a
        cache of a loaded model or of its codes is stale once this changes."""
        p = self.path(name) / "weights.safetensors"
        return p.stat().st_mtime_ns if p.exists() else 0

    def exists(self, name: str) -> bool:
        return (self.path(name) / "config.json").is_file()

    # --- saving --------------------------------------------------------------
    def save(self, name: str, tm: TrainedModel, overwrite: bool = False) -> Path:
        validate_name(name)
        staging = self.root / ".staging" / f"{name}--{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        try:
            self._write(staging, name, tm)
            with self._lock():
                target = self.root / name
                if target.exists():
                    if not overwrite:
                        raise StoreError(
                            f"a model named {name!r} already exists; choose another name or overwrite it explicitly."
                        )
                    trash = self.root / ".trash"
                    trash.mkdir(exist_ok=True)
                    os.replace(target, trash / f"{name}--{uuid.uuid4().hex}")
                    os.replace(staging, target)
                    shutil.rmtree(trash, ignore_errors=True)
                else:
                    os.replace(staging, target)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        tm.name = name
        return target

    def _write(self, folder: Path, name: str, tm: TrainedModel) -> None:
        model = tm.model
        config = {
            "format": FORMAT,
            "name": name,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "model": model.config.to_dict(),
            "normalisation": tm.normaliser.kind,
            "adaptations": list(model.adaptations),
            **{k: v for k, v in tm.meta.to_dict().items() if k not in ("name", "created", *STORE_FIELDS)},
        }
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        tensors.update(tm.normaliser.state_tensors())

        def write_json(fname, obj):
            with open(folder / fname, "w", encoding="utf-8") as fh:
                json.dump(obj, fh, indent=2, allow_nan=False, default=float)
                fh.flush()
                os.fsync(fh.fileno())

        save_file(tensors, str(folder / "weights.safetensors"), metadata={"format": FORMAT})
        if tm.optimizer_state:
            t, meta = _optimizer_to_tensors(tm.optimizer_state)
            save_file(t, str(folder / "optimizer.safetensors"), metadata=meta)
        if tm.timeline is not None and tm.timeline.frames:
            save_timeline(tm.timeline, folder / TIMELINE_FILE)
        write_json("history.json", _finite(tm.history))
        write_json("metrics.json", _finite(tm.metrics))
        write_json("config.json", _finite(config))  # written last: its presence marks a complete folder

    # --- loading ---------------------------------------------------------------
    def read_config(self, name: str) -> dict:
        folder = self.path(name)
        if not folder.is_dir():
            raise StoreError(f"no model named {name!r} in {self.root}; `python -m aecore models` lists them.")
        cfg = _read_json(folder / "config.json")
        if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
            raise StoreError(
                f"model {name!r} has a config.json this version does not understand (expected format {FORMAT!r})."
            )
        if not isinstance(cfg.get("model"), dict):
            raise StoreError(f"config.json of model {name!r} has no model section.")
        # Every other field has a default, but without these two the weights cannot be checked
        missing = [k for k in ("kind", "input_shape") if k not in cfg["model"]]
        if missing:
            raise StoreError(f"config.json of model {name!r} lacks {' and '.join(missing)} in its model section.")
        adaptations = cfg.get("adaptations", [])
        if not (isinstance(adaptations, list) and all(isinstance(a, str) for a in adaptations)):
            raise StoreError(f"config.json of model {name!r} has adaptations that are not a list of words.")
        return cfg

    def load(self, name: str, device: str | torch.device = "cpu", with_optimizer: bool = False) -> TrainedModel:
        cfg = self.read_config(name)
        folder = self.path(name)
        try:
            model_cfg = config_from_dict(cfg["model"])
            model = build_model(model_cfg)  # refuses absurd sizes before allocating
        except ConfigError as e:
            raise StoreError(f"model {name!r} has an unusable config: {e}") from e
        expected = model.state_dict()
        weights = folder / "weights.safetensors"
        try:
            with safe_open(str(weights), framework="pt") as f:
                keys = set(f.keys())
                want = {f"model.{k}" for k in expected}
                if not want <= keys:
                    missing = sorted(want - keys)[:3]
                    raise StoreError(f"weights of model {name!r} lack {', '.join(missing)}.")
                state = {}
                for k, v in expected.items():
                    sl = f.get_slice(f"model.{k}")
                    if tuple(sl.get_shape()) != tuple(v.shape):
                        raise StoreError(
                            f"weights of model {name!r} do not match its config: {k} has shape "
                            f"{tuple(sl.get_shape())}, expected {tuple(v.shape)}."
                        )
                    state[k] = f.get_tensor(f"model.{k}")
                extra = {k: f.get_tensor(k) for k in keys if k.startswith("normaliser.")}
        except FileNotFoundError as e:
            raise StoreError(f"model {name!r} has no weights.safetensors.") from e
        except (SafetensorError, OSError) as e:
            raise StoreError(f"weights of model {name!r} are not a readable safetensors file ({e}).") from e
        model.load_state_dict(state)
        model.adaptations = list(cfg.get("adaptations", []))
        try:
            normaliser = Normaliser.from_state(cfg.get("normalisation", "unit"), extra, model_cfg.input_shape)
        except AecoreError as e:
            raise StoreError(f"model {name!r}: {e}") from e
        model.data_range = normaliser.model_range()
        model.to(device).eval()
        history = _read_json(folder / "history.json") if (folder / "history.json").exists() else []
        history = history_from_json(history, name)
        metrics = _read_json(folder / "metrics.json") if (folder / "metrics.json").exists() else {}
        meta = ModelMeta.from_dict(cfg, name)
        opt = _optimizer_from_file(folder / "optimizer.safetensors") if with_optimizer else None
        return TrainedModel(model, normaliser, meta, history, metrics if isinstance(metrics, dict) else {}, opt, name)

    def timeline(self, name: str) -> Timeline | None:
        """The model's timeline; None for a model trained before timelines were
        recorded. A damaged file is a StoreError: the model itself still loads."""
        path = self.path(name) / TIMELINE_FILE
        if not path.exists():
            return None
        return load_timeline(path, name)

    def update_metrics(self, name: str, metrics: dict) -> None:
        """Merge metrics into metrics.json atomically (write a temp file, rename)."""
        folder = self.path(name)
        with self._lock():
            current = _read_json(folder / "metrics.json") if (folder / "metrics.json").exists() else {}
            current = {**(current if isinstance(current, dict) else {}), **metrics}
            tmp = folder / f".metrics-{uuid.uuid4().hex}.json"
            tmp.write_text(json.dumps(_finite(current), indent=2, allow_nan=False))
            os.replace(tmp, folder / "metrics.json")

    # --- listing -----------------------------------------------------------------
    def names(self) -> list[str]:
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and not p.name.startswith(".") and NAME_RE.fullmatch(p.name)
        )

    def list(self) -> list[ModelInfo]:
        out = []
        for name in self.names():
            try:
                cfg = self.read_config(name)
                m = cfg["model"]
                metrics = (
                    _read_json(self.path(name) / "metrics.json") if (self.path(name) / "metrics.json").exists() else {}
                )
                out.append(
                    ModelInfo(
                        name,
                        True,
                        cfg.get("preset"),
                        cfg.get("dataset"),
                        m.get("kind"),
                        cfg.get("created"),
                        m.get("latent_dim"),
                        metrics if isinstance(metrics, dict) else {},
                        data_kind=cfg.get("data_kind"),
                    )
                )
            except AecoreError as e:
                out.append(ModelInfo(name, False, error=str(e)))
        return out

    def delete(self, name: str) -> None:
        folder = self.path(name)
        if not folder.is_dir():
            raise StoreError(f"no model named {name!r}.")
        with self._lock():
            trash = self.root / ".trash-delete"
            trash.mkdir(exist_ok=True)
            dest = trash / uuid.uuid4().hex
            os.replace(folder, dest)
            shutil.rmtree(trash, ignore_errors=True)


def _finite(obj):
    """JSON has no NaN: non-finite numbers are stored as null."""
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):
        return _finite(obj.item())
    return obj
