"""Targets for aecore.runs.jobs.run_in_process in tests: importable by name in a spawned process."""

import os
import signal
import time


def die(payload, relay, stop):
    relay.set(message="about to die")
    time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGKILL)


def boom(payload, relay, stop):
    raise RuntimeError(f"boom {payload}")


def wait_for_stop(payload, relay, stop):
    relay.set(status="running", message="waiting")
    deadline = time.time() + payload
    while not stop.is_set() and time.time() < deadline:
        time.sleep(0.01)
    return {"status": "stopped" if stop.is_set() else "done", "message": "ok", "pid": os.getpid()}
