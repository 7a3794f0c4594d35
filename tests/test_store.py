"""aecore.store: exact round trips, safe names, no unpickling, atomic saves that survive crashes."""

from __future__ import annotations

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO

from aecore.errors import StoreError
from aecore.explore import inference
from aecore.models import ConvConfig, DenseConfig, DenseVAEConfig, Seq2SeqConfig, build_model
from aecore.models.trained import TrainedModel
from aecore.normalise import Normaliser
from aecore.records import epoch_record
from aecore.store import FILES, ModelStore, validate_name

SHAPE = (1, 8, 8)
CONFIGS = {
    "dense": (lambda: DenseConfig(input_shape=SHAPE, hidden=[16], latent_dim=4), "image"),
    "dense_tied": (lambda: DenseConfig(input_shape=SHAPE, hidden=[16], latent_dim=4, tied=True), "image"),
    "conv": (lambda: ConvConfig(input_shape=SHAPE, channels=[16, 8, 8], valid_layer=2), "image"),
    "vae": (lambda: DenseVAEConfig(input_shape=SHAPE, hidden=[16], latent_dim=3), "image"),
    "seq": (lambda: Seq2SeqConfig(input_shape=(6,), vocab=11, hidden=16, output_len=3), "sequence"),
}


def make_tm(name: str = "dense", seed: int = 0, normaliser: Normaliser | None = None, **meta) -> TrainedModel:
    make_cfg, kind = CONFIGS[name]
    torch.manual_seed(seed)
    model = build_model(make_cfg())
    normaliser = normaliser or Normaliser("unit")
    model.data_range = normaliser.model_range()
    model.eval()
    return TrainedModel(
        model,
        normaliser,
        {"data_kind": kind, "preset": "test", "dataset": "digits", **meta},
        history=[epoch_record(1, {"recon": 0.5}, 0.25, {"recon": 0.25}, 1000.0, 1.5)],
        metrics={"test_mse": 0.125},
    )


def batch_for(tm: TrainedModel) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    if tm.data_kind == "sequence":
        return torch.randint(1, 11, (5, 6), generator=g)
    return torch.rand(5, *SHAPE, generator=g)


def outputs(tm: TrainedModel, x: torch.Tensor) -> torch.Tensor:
    tm.model.eval()
    with torch.no_grad():
        return tm.model.reconstruct(x)


# --- round trips -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", CONFIGS)
def test_round_trip_reproduces_outputs_exactly(store, name):
    tm = make_tm(name)
    # change every weight away from its initial value, so a fresh init cannot pass by chance
    with torch.no_grad():
        for p in tm.model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    x = batch_for(tm)
    store.save("m1", tm)
    back = store.load("m1")
    assert torch.equal(outputs(back, x), outputs(tm, x))
    for k, v in tm.model.state_dict().items():
        assert torch.equal(back.model.state_dict()[k], v), k
    assert back.model.config == tm.model.config
    assert back.history == tm.history and back.metrics == tm.metrics
    assert back.meta.preset == "test" and back.data_kind == tm.data_kind
    assert back.name == "m1"


def test_round_trip_keeps_standardisation_statistics(store, digits):
    norm = Normaliser.fit("standardize", digits.train.x)
    tm = make_tm("dense", normaliser=norm)
    store.save("std", tm)
    back = store.load("std")
    assert back.normaliser.kind == "standardize"
    assert torch.equal(back.normaliser.mean, norm.mean) and torch.equal(back.normaliser.std, norm.std)
    assert back.model.data_range == tm.model.data_range
    x = digits.test.x[:20]
    np.testing.assert_array_equal(inference.reconstruct(back, x), inference.reconstruct(tm, x))


def test_conv_adaptations_are_saved(store):
    torch.manual_seed(0)
    model = build_model(ConvConfig(input_shape=(3, 32, 32), channels=[4, 4, 4], valid_layer=2))
    assert model.adaptations
    store.save("adapted", TrainedModel(model, Normaliser("unit"), {"data_kind": "image"}))
    assert store.load("adapted").model.adaptations == model.adaptations
    assert json.loads((store.root / "adapted" / "config.json").read_text())["adaptations"] == model.adaptations


def test_files_written(store):
    store.save("plain", make_tm())
    assert sorted(os.listdir(store.root / "plain")) == sorted(FILES)
    tm = make_tm()
    opt = torch.optim.Adam(tm.model.parameters())
    tm.model.train()
    tm.model(batch_for(tm)).loss.backward()
    opt.step()
    tm.optimizer_state = opt.state_dict()
    store.save("with-opt", tm)
    assert sorted(os.listdir(store.root / "with-opt")) == sorted([*FILES, "optimizer.safetensors"])
    back = store.load("with-opt", with_optimizer=True)
    saved = opt.state_dict()["state"]
    for idx, entry in saved.items():
        for k, v in entry.items():
            assert torch.equal(torch.as_tensor(back.optimizer_state["state"][idx][k]), torch.as_tensor(v))
    # the loaded state can be given back to an optimizer
    torch.optim.Adam(back.model.parameters()).load_state_dict(back.optimizer_state)


# --- names -----------------------------------------------------------------------------------
BAD_NAMES = [
    "a/b",
    "../escape",
    "..",
    "a..b",
    "bad\x00name",
    ".hidden",
    "",
    "x" * 81,
    "name\n",
    "-flag",
    "back\\slash",
    "space name",
]


@pytest.mark.parametrize("bad", BAD_NAMES, ids=repr)
def test_bad_names_are_refused(store, tmp_path, bad):
    with pytest.raises(StoreError):
        validate_name(bad)
    with pytest.raises(StoreError):
        store.save(bad, make_tm())
    with pytest.raises(StoreError):
        store.load(bad)
    assert store.names() == []
    assert not (tmp_path / "escape").exists()


def test_good_names_are_accepted():
    for good in ["m", "vanilla-digits-20260101-120000", "a.b_c-d", "x" * 80, "9lives"]:
        assert validate_name(good) == good


def test_existing_name_needs_overwrite(store):
    old = make_tm(seed=0)
    store.save("taken", old)
    x = batch_for(old)
    with pytest.raises(StoreError, match="exists"):
        store.save("taken", make_tm(seed=1))
    assert torch.equal(outputs(store.load("taken"), x), outputs(old, x))
    new = make_tm(seed=1)
    store.save("taken", new, overwrite=True)
    assert torch.equal(outputs(store.load("taken"), x), outputs(new, x))
    assert store.names() == ["taken"]


# --- hostile and damaged folders ----------------------------------------------------------------
class Trap:
    """Unpickling this creates ``marker``: proof that a pickle was executed."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_disguised_as_safetensors_is_refused_unexecuted(store, tmp_path):
    store.save("evil", make_tm())
    marker = tmp_path / "PWNED"
    (store.root / "evil" / "weights.safetensors").write_bytes(pickle.dumps(Trap(marker)))
    with pytest.raises(StoreError, match="safetensors"):
        store.load("evil")
    assert not marker.exists()
    # the optimizer file is never unpickled either
    (store.root / "evil" / "optimizer.safetensors").write_bytes(pickle.dumps(Trap(marker)))
    store.save("evil", make_tm(), overwrite=True)
    (store.root / "evil" / "optimizer.safetensors").write_bytes(pickle.dumps(Trap(marker)))
    back = store.load("evil", with_optimizer=True)
    assert back.optimizer_state is None
    assert not marker.exists()


def test_a_dropped_model_pt_is_ignored(store, tmp_path):
    tm = make_tm()
    store.save("with-pt", tm)
    marker = tmp_path / "PWNED"
    (store.root / "with-pt" / "model.pt").write_bytes(pickle.dumps(Trap(marker)))
    x = batch_for(tm)
    assert torch.equal(outputs(store.load("with-pt"), x), outputs(tm, x))
    assert not marker.exists()


def edit_config(store: ModelStore, name: str, change) -> None:
    path = store.root / name / "config.json"
    cfg = json.loads(path.read_text())
    change(cfg)
    path.write_text(json.dumps(cfg))


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda c: c["model"].update(kind="transformer"), "kind"),
        (lambda c: c.pop("model"), "model section"),
        (lambda c: c.update(model="dense"), "model section"),
        (lambda c: c["model"].update(hidden=[100_000, 100_000]), "parameters"),
        (lambda c: c["model"].update(latent_dim=-1), "latent_dim"),
        (lambda c: c["model"].update(unknown_field=1), "unknown"),
        (lambda c: c.update(format="something-else/9"), "format"),
    ],
    ids=["unknown-kind", "no-model", "model-not-object", "absurd-size", "negative", "unknown-field", "format"],
)
def test_bad_config_json_is_refused(store, change, fragment):
    store.save("cfg", make_tm())
    edit_config(store, "cfg", change)
    t0 = time.perf_counter()
    with pytest.raises(StoreError, match=fragment):
        store.load("cfg")
    assert time.perf_counter() - t0 < 10  # refused from the config, nothing huge allocated


def test_config_json_that_is_not_json(store):
    store.save("cfg", make_tm())
    (store.root / "cfg" / "config.json").write_bytes(b"\xff\xfe not json")
    with pytest.raises(StoreError, match="JSON"):
        store.load("cfg")


def test_weights_that_disagree_with_the_config_are_refused(store):
    store.save("shape", make_tm())
    edit_config(store, "shape", lambda c: c["model"].update(latent_dim=5))
    with pytest.raises(StoreError, match="match"):
        store.load("shape")
    store.save("missing", make_tm())
    edit_config(store, "missing", lambda c: c["model"].update(hidden=[16, 16]))
    with pytest.raises(StoreError):
        store.load("missing")
    store.save("noweights", make_tm())
    (store.root / "noweights" / "weights.safetensors").unlink()
    with pytest.raises(StoreError, match="weights"):
        store.load("noweights")


def test_list_reports_broken_models_instead_of_raising(store):
    store.save("good", make_tm())
    for name in ("bad-json", "bad-kind", "no-config", "config-is-a-folder"):
        store.save(name, make_tm())
    (store.root / "bad-json" / "config.json").write_text("{ nope")
    edit_config(store, "bad-kind", lambda c: c.update(format=None))
    (store.root / "no-config" / "config.json").unlink()
    (store.root / "config-is-a-folder" / "config.json").unlink()
    (store.root / "config-is-a-folder" / "config.json").mkdir()
    infos = {i.name: i for i in store.list()}
    assert set(infos) == {"good", "bad-json", "bad-kind", "no-config", "config-is-a-folder"}
    assert infos["good"].ok and infos["good"].error is None
    assert infos["good"].kind == "dense" and infos["good"].latent_dim == 4
    assert infos["good"].metrics == {"test_mse": 0.125}
    for name in ("bad-json", "bad-kind", "no-config", "config-is-a-folder"):
        assert not infos[name].ok and infos[name].error, name


# --- atomic saving -------------------------------------------------------------------------------
def test_recovery_after_a_crash_between_the_two_renames(tmp_path):
    root = tmp_path / "store"
    store = ModelStore(root)
    tm = make_tm(seed=0)
    store.save("victim", tm)
    # crash after "move the old folder to the trash", before "move the new one into place"
    (root / ".trash").mkdir()
    os.replace(root / "victim", root / ".trash" / f"victim--{uuid.uuid4().hex}")
    (root / ".staging" / f"victim--{uuid.uuid4().hex}").mkdir(parents=True)  # the half-written new one
    reopened = ModelStore(root)
    assert reopened.names() == ["victim"]
    x = batch_for(tm)
    assert torch.equal(outputs(reopened.load("victim"), x), outputs(tm, x))
    trash = root / ".trash"
    assert not trash.exists() or not any(trash.iterdir())  # the old copy went back, not duplicated


def test_recovery_after_a_crash_before_emptying_the_trash(tmp_path):
    root = tmp_path / "store"
    store = ModelStore(root)
    store.save("victim", make_tm(seed=0))
    new = make_tm(seed=1)
    store.save("other", new)
    # both renames done, the old copy still in the trash
    (root / ".trash").mkdir()
    os.replace(root / "victim", root / ".trash" / f"victim--{uuid.uuid4().hex}")
    os.replace(root / "other", root / "victim")
    reopened = ModelStore(root)
    x = batch_for(new)
    assert torch.equal(outputs(reopened.load("victim"), x), outputs(new, x))
    assert reopened.names() == ["victim"]


WRITER = r"""
import sys, torch
torch.set_num_threads(1)
from aecore.models import DenseConfig, build_model
from aecore.normalise import Normaliser
from aecore.store import ModelStore
from aecore.models.trained import TrainedModel
from aecore.records import epoch_record
store = ModelStore(sys.argv[1])
i = 1
while True:
    torch.manual_seed(i)
    model = build_model(DenseConfig(input_shape=(1, 8, 8), hidden=[512, 256], latent_dim=32))
    tm = TrainedModel(model, Normaliser("unit"), {"data_kind": "image", "version": i},
                      history=[epoch_record(i, {"recon": float(i)}, None, {}, 1.0, 1.0)], metrics={"version": i})
    store.save("victim", tm, overwrite=True)
    if i == 1:
        print("ready", flush=True)  # one complete save exists; every later one replaces it
    i += 1
"""


def writer_model(version: int):
    torch.manual_seed(version)
    return build_model(DenseConfig(input_shape=(1, 8, 8), hidden=[512, 256], latent_dim=32))


def kill_writers_at_random_moments(roots: list[Path], rng: random.Random) -> list[float]:
    """Start one writer per store, and SIGKILL each at its own random moment; returns the moments."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for root in roots
    ]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
        start = time.perf_counter()
        # one save takes ~30 ms here: random moments over a few hundred ms hit every phase of it
        moments = [rng.uniform(0.0, 0.3) for _ in procs]
        for at, p in sorted(zip(moments, procs), key=lambda t: t[0]):
            # Sleeping to a moment is the test itself: the kill must land at a random
            # time in the save, not after any condition the writer could reach.
            time.sleep(max(0.0, start + at - time.perf_counter()))
            p.send_signal(signal.SIGKILL)
        for p in procs:
            p.wait(10)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return moments


def test_sigkill_during_saves_never_leaves_a_half_model(tmp_path):
    # two writers at once, each in its own store; twice, so the second writer opens a store
    # that the first left killed mid-save
    roots = [tmp_path / f"store{i}" for i in range(2)]
    rng = random.Random()
    for round_ in range(2):
        moments = kill_writers_at_random_moments(roots, rng)
        for root in roots:
            store = ModelStore(root)  # opening the store repairs an interrupted replace
            where = (round_, moments, root)
            assert store.names() == ["victim"], (where, sorted(os.listdir(root)))  # no .staging "models"
            assert [i.ok for i in store.list()] == [True], where
            back = store.load("victim")
            v = back.meta.extra["version"]
            assert v >= 1, where
            assert back.metrics["version"] == v and back.history[0]["epoch"] == v, where
            expected = writer_model(v).state_dict()
            for k, w in back.model.state_dict().items():  # weights and config come from the same save
                assert torch.equal(w, expected[k]), (where, v, k)


def test_two_threads_saving_one_name(store):
    x = batch_for(make_tm())
    for attempt in range(3):
        candidates = [make_tm(seed=10 * attempt + i) for i in range(2)]
        barrier = threading.Barrier(2)
        errors = []

        def save(tm, barrier=barrier, errors=errors):
            try:
                barrier.wait()
                store.save("shared", tm, overwrite=True)
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=save, args=(tm,)) for tm in candidates]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == []
        got = outputs(store.load("shared"), x)
        assert any(torch.equal(got, outputs(tm, x)) for tm in candidates)
        assert store.names() == ["shared"]


def test_leftovers_of_killed_saves_are_cleared_once_stale(tmp_path):
    root = tmp_path / "store"
    ModelStore(root).save("kept", make_tm(seed=0))
    old = root / ".staging" / f"kept--{uuid.uuid4().hex}"
    fresh = root / ".staging" / f"kept--{uuid.uuid4().hex}"  # possibly another process's save in progress
    for d in (old, fresh):
        d.mkdir(parents=True)
        (d / "weights.safetensors").write_bytes(b"half")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    reopened = ModelStore(root)
    assert not old.exists()
    assert fresh.exists()
    assert reopened.names() == ["kept"]
