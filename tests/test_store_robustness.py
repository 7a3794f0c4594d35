"""The model store against hostile folders, concurrent sessions and killed saves.

Builds on tests/test_store.py, which already covers: unknown kind, no model
section, a 10^10-parameter config and negative sizes (test_bad_config_json_is_refused),
weights that disagree with the config (test_weights_that_disagree_with_the_config_are_refused),
a pickle disguised as safetensors and a dropped model.pt (test_pickle_disguised_...,
test_a_dropped_model_pt_is_ignored), names with '/', '..', NUL or newline
(test_bad_names_are_refused), two threads saving one name, and writers killed at
random moments (test_sigkill_during_saves_never_leaves_a_half_model).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import re
import resource
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO

from aecore.errors import StoreError
from aecore.models import MAX_PARAMETERS, DenseConfig, build_model
from aecore.models.trained import TrainedModel
from aecore.normalise import Normaliser
from aecore.records import epoch_record
from aecore.store import ModelStore, validate_name

SHAPE = (1, 8, 8)
FORK = multiprocessing.get_context("fork")


def make_tm(version: int, hidden: int = 64) -> TrainedModel:
    """A model whose weights, metrics and history all say which save they came from."""
    torch.manual_seed(version)
    model = build_model(DenseConfig(input_shape=SHAPE, hidden=[hidden], latent_dim=4))
    return TrainedModel(
        model,
        Normaliser("unit"),
        {"data_kind": "image", "version": version},
        history=[epoch_record(version, {"recon": float(version)}, None, {}, 1.0, 1.0)],
        metrics={"version": version},
    )


def assert_is_version(tm: TrainedModel, version: int) -> None:
    """Config, weights, history and metrics all come from save ``version``: never half of one."""
    assert tm.meta.extra["version"] == version and tm.metrics["version"] == version
    assert [(h["epoch"], h["train_loss"]) for h in tm.history] == [(version, float(version))]
    expected = make_tm(version, hidden=tm.model.config.hidden[0]).model.state_dict()
    for k, w in tm.model.state_dict().items():
        assert torch.equal(w, expected[k]), (version, k)


def edit_config(root: Path, name: str, change) -> None:
    path = root / name / "config.json"
    cfg = json.loads(path.read_text())
    change(cfg)
    path.write_text(json.dumps(cfg))


# ---------------------------------------------------------------- configs refused before allocating


def test_a_trillion_parameter_config_is_refused_at_once_naming_the_cap(store):
    store.save("huge", make_tm(1))
    # 50 million inputs into 100,000 units and back: about 10^13 parameters, 40 TB of float32
    edit_config(store.root, "huge", lambda c: c["model"].update(input_shape=[3, 4096, 4096], hidden=[100_000]))
    t0 = time.perf_counter()
    with pytest.raises(StoreError, match=rf"parameters, above the limit of {MAX_PARAMETERS:,}"):
        store.load("huge")
    assert time.perf_counter() - t0 < 2


def test_a_config_just_above_the_cap_allocates_nothing(store):
    store.save("big", make_tm(1))
    # 64 -> 100,000 -> 1,000 -> 4 and back: 213 million parameters, 850 MB if built
    edit_config(store.root, "big", lambda c: c["model"].update(hidden=[100_000, 1000]))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with pytest.raises(StoreError, match=rf"above the limit of {MAX_PARAMETERS:,}"):
        store.load("big")
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 200, f"peak memory grew by {grown_mib:.0f} MiB: the model was built"


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda c: c["model"].pop("input_shape"), "lacks input_shape in its model section"),
        (lambda c: c["model"].pop("kind"), "lacks kind in its model section"),
        (lambda c: (c["model"].pop("kind"), c["model"].pop("input_shape")), "lacks kind and input_shape"),
        (lambda c: c.update(adaptations=5), "adaptations that are not a list of words"),
        (lambda c: c.update(adaptations=[{"x": 1}]), "adaptations that are not a list of words"),
    ],
    ids=["no-input-shape", "no-kind", "neither", "adaptations-int", "adaptations-objects"],
)
def test_missing_or_ill_typed_fields_are_refused_and_listed_as_broken(store, change, fragment):
    store.save("good", make_tm(1))
    store.save("cfg", make_tm(1))
    edit_config(store.root, "cfg", change)
    with pytest.raises(StoreError, match=fragment):
        store.load("cfg")
    infos = {i.name: i for i in store.list()}
    assert infos["good"].ok
    assert not infos["cfg"].ok and re.search(fragment, infos["cfg"].error)


def test_a_deeply_nested_config_is_refused_not_a_crash(store):
    store.save("good", make_tm(1))
    store.save("deep", make_tm(1))
    (store.root / "deep" / "config.json").write_text("[" * 100_000 + "]" * 100_000)  # 200 kB
    with pytest.raises(StoreError, match="nested too deeply"):
        store.load("deep")
    assert [(i.name, i.ok) for i in store.list()] == [("deep", False), ("good", True)]


def test_a_config_that_is_a_pipe_is_not_read(store):
    """A FIFO (or a link to /dev/zero: the same check) where config.json should be."""
    store.save("pipe", make_tm(1))
    (store.root / "pipe" / "config.json").unlink()
    os.mkfifo(store.root / "pipe" / "config.json")  # opening it would block for ever

    def stop(signum, frame):
        raise TimeoutError("config.json was opened: a pipe blocks")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(20)
    try:
        with pytest.raises(StoreError, match="config.json of model 'pipe' is not a regular file"):
            store.load("pipe")
        assert [i.ok for i in store.list()] == [False]
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_a_delete_killed_midway_is_finished_when_the_store_is_opened(tmp_path):
    root = tmp_path / "store"
    ModelStore(root).save("gone", make_tm(1))
    (root / ".trash-delete").mkdir()
    os.replace(root / "gone", root / ".trash-delete" / "0123abcd")  # renamed, never removed
    assert ModelStore(root).names() == []
    assert not (root / ".trash-delete").exists()


def test_truncated_weights_are_refused(store):
    store.save("cut", make_tm(1))
    weights = store.root / "cut" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(StoreError, match="not a readable safetensors file"):
        store.load("cut")


# ---------------------------------------------------------------- pickles are never loaded


class Trap:
    """Unpickling this creates ``marker``: proof that a pickle was executed."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickles_anywhere_in_the_store_are_never_unpickled(store, tmp_path):
    marker = tmp_path / "PWNED"
    trap = pickle.dumps(Trap(marker))
    torch.save({"x": Trap(marker)}, tmp_path / "trap.pt")  # a real torch checkpoint holding the trap
    checkpoint = (tmp_path / "trap.pt").read_bytes()
    # a folder that holds only what other tools save: no config.json
    (store.root / "torch-model").mkdir()
    for fname, data in {
        "model.pt": checkpoint,
        "pytorch_model.bin": checkpoint,
        "model.pkl": trap,
        "weights.pt": checkpoint,
    }.items():
        (store.root / "torch-model" / fname).write_bytes(data)
    (store.root / "loose.pt").write_bytes(checkpoint)  # next to the models
    store.save("real", make_tm(1))
    (store.root / "real" / "model.pt").write_bytes(checkpoint)
    (store.root / "real" / "history.pkl").write_bytes(trap)
    infos = {i.name: i for i in store.list()}
    assert set(infos) == {"torch-model", "real"}
    assert infos["real"].ok and not infos["torch-model"].ok
    with pytest.raises(StoreError, match="has no config.json"):
        store.load("torch-model")
    assert_is_version(store.load("real", with_optimizer=True), 1)
    assert not marker.exists()


def test_the_engine_has_no_way_to_unpickle():
    """No torch.load, pickle.load or allow_pickle=True anywhere in aecore: pickles cannot be read."""
    pattern = re.compile(
        r"torch\.load\(|pickle\.loads?\(|allow_pickle\s*=\s*True|weights_only\s*=\s*False"
        r"|import dill|joblib\.load"
    )
    offenders = [
        f"{p.relative_to(REPO)}:{i}"
        for p in (REPO / "aecore").rglob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


# ---------------------------------------------------------------- names


@pytest.mark.parametrize(
    "bad",
    [
        "tab\there",
        "cr\r",
        "esc\x1b[31m",
        "del\x7f",
        "bell\x07",
        "a/../b",
        "trailing.",
        "modèle",
        "/abs",
        "C:\\x",
        "\u202eevil",
    ],
    ids=repr,
)
def test_more_bad_names_are_refused(store, bad):
    with pytest.raises(StoreError, match="invalid model name"):
        validate_name(bad)
    with pytest.raises(StoreError, match="invalid model name"):
        store.save(bad, make_tm(1))
    with pytest.raises(StoreError, match="invalid model name"):
        store.load(bad)


def test_folders_with_unusable_names_are_not_listed(store):
    store.save("good", make_tm(1))
    for odd in ("with space", "esc\x1bname", ".hidden", "-flag"):
        shutil.copytree(store.root / "good", store.root / odd)
    assert store.names() == ["good"]
    assert [i.name for i in store.list()] == ["good"]


# ---------------------------------------------------------------- two sessions at once


def _slow_renames() -> None:
    """In a child: every rename takes 20 ms, as on a slow disk, so that two unserialised
    saves would interleave between "is the name taken?" and "move the folder in"."""
    real_replace = os.replace

    def replace(src, dst):
        time.sleep(0.02)  # the slow disk itself, not a wait for anything
        real_replace(src, dst)

    os.replace = replace


def _save_many(root: str, versions: list[int], start) -> None:
    _slow_renames()
    start.wait(30)
    store = ModelStore(root)
    for v in versions:
        store.save("shared", make_tm(v), overwrite=True)


def _create_once(root: str, version: int, start, results) -> None:
    _slow_renames()
    start.wait(30)
    try:
        ModelStore(root).save("fresh", make_tm(version))
        results.put((version, "saved"))
    except Exception as e:  # the parent reports it
        results.put((version, f"{type(e).__name__}: {e}"))


def test_two_processes_saving_one_name_never_mix_their_models(tmp_path):
    root = tmp_path / "store"
    ModelStore(root)
    start = FORK.Event()
    procs = [FORK.Process(target=_save_many, args=(str(root), list(range(first, 21, 2)), start)) for first in (1, 2)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = ModelStore(root)
    assert store.names() == ["shared"]
    tm = store.load("shared")
    assert tm.meta.extra["version"] in (19, 20)  # the last save of one of them, whole
    assert_is_version(tm, tm.meta.extra["version"])
    assert not any((root / ".staging").iterdir())


def test_two_processes_creating_one_name_one_wins_the_other_is_told(tmp_path):
    root = tmp_path / "store"
    ModelStore(root)
    start, results = FORK.Event(), FORK.Queue()
    procs = [FORK.Process(target=_create_once, args=(str(root), v, start, results)) for v in (1, 2)]
    for p in procs:
        p.start()
    start.set()
    outcome = dict(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(30)
    winners = [v for v, r in outcome.items() if r == "saved"]
    assert len(winners) == 1, outcome
    loser = ({1, 2} - set(winners)).pop()
    assert outcome[loser].startswith("StoreError: a model named 'fresh' already exists"), outcome
    assert_is_version(ModelStore(root).load("fresh"), winners[0])


# ---------------------------------------------------------------- a save killed at each step


def _save_and_freeze_at(root: str, phase: str, reached) -> None:
    """Save version 2 over version 1, stopping for good at ``phase`` (the parent then SIGKILLs)."""
    import aecore.store as st

    def freeze():
        reached.set()
        # Stuck mid-save until the parent, woken by ``reached``, SIGKILLs this
        # process; the 600 s only bounds an orphan whose parent died first.
        time.sleep(600)

    if phase == "weights-written":  # staging holds weights but no config.json yet
        real_save_file = st.save_file

        def save_file(tensors, filename, metadata=None):
            real_save_file(tensors, filename, metadata=metadata)
            freeze()

        st.save_file = save_file
    elif phase == "old-model-in-trash":  # the old folder moved away, the new not yet in place
        real_replace = os.replace

        def replace(src, dst):
            real_replace(src, dst)
            if Path(dst).parent.name == ".trash":
                freeze()

        st.os.replace = replace
    elif phase == "trash-not-emptied":  # the new folder in place, the old one still in the trash
        real_rmtree = shutil.rmtree

        def rmtree(path, *args, **kwargs):
            if Path(path).name == ".trash":
                freeze()
            return real_rmtree(path, *args, **kwargs)

        st.shutil.rmtree = rmtree
    ModelStore(root).save("victim", make_tm(2, hidden=512), overwrite=True)
    os._exit(3)  # never reached when the phase is hit


@pytest.mark.parametrize(
    "phase, survivor", [("weights-written", 1), ("old-model-in-trash", 1), ("trash-not-emptied", 2)]
)
def test_a_save_killed_at_each_step_leaves_the_old_model_or_the_new(tmp_path, phase, survivor):
    root = tmp_path / "store"
    ModelStore(root).save("victim", make_tm(1, hidden=512))
    reached = FORK.Event()
    child = FORK.Process(target=_save_and_freeze_at, args=(str(root), phase, reached))
    child.start()
    try:
        assert reached.wait(60), f"the save never reached {phase}"
        os.kill(child.pid, signal.SIGKILL)  # the lock is held in the last two phases
        child.join(30)
        assert child.exitcode == -signal.SIGKILL
    finally:
        if child.is_alive():
            child.kill()
    store = ModelStore(root)  # opening repairs what the kill left
    assert store.names() == ["victim"]
    assert [(i.name, i.ok) for i in store.list()] == [("victim", True)]
    tm = store.load("victim")
    assert_is_version(tm, survivor)
    assert tm.model.config.hidden == [512]
    # and the store still works: the lock was released with the process
    store.save("victim", make_tm(3), overwrite=True)
    assert_is_version(ModelStore(root).load("victim"), 3)


def test_a_first_save_killed_midway_leaves_no_model(tmp_path):
    root = tmp_path / "store"
    ModelStore(root)
    reached = FORK.Event()

    def first_save():
        import aecore.store as st

        real_save_file = st.save_file

        def save_file(tensors, filename, metadata=None):
            real_save_file(tensors, filename, metadata=metadata)
            reached.set()
            time.sleep(600)  # stuck mid-save until the parent's SIGKILL (see freeze above)

        st.save_file = save_file
        ModelStore(root).save("newborn", make_tm(1))

    child = FORK.Process(target=first_save)
    child.start()
    assert reached.wait(60)
    os.kill(child.pid, signal.SIGKILL)
    child.join(30)
    store = ModelStore(root)
    assert store.names() == [] and store.list() == []
    with pytest.raises(StoreError, match="no model named 'newborn'"):
        store.load("newborn")
    store.save("newborn", make_tm(2))  # the name is free, the half-written folder no obstacle
    assert_is_version(store.load("newborn"), 2)
