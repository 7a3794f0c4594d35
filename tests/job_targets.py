"""Targets for aecore.runs.process.run_in_process in tests: importable by name in a spawned process."""

import os
import signal

from aecore.runs.process import Result


def die(payload, relay, control):
    # No pause before the kill: the relay writes to a pipe, and a message already
    # in the pipe's kernel buffer is read by the parent after this process is gone.
    relay.status("running", "about to die")
    os.kill(os.getpid(), signal.SIGKILL)


def boom(payload, relay, control):
    raise RuntimeError(f"boom {payload}")


def wait_for_stop(payload, relay, control):
    relay.status("running", "waiting")
    control.stop_event.wait(payload)  # the stop, or ``payload`` seconds if it never comes
    return Result("stopped" if control.stopped else "done", "ok", pid=os.getpid())


def impostor(payload, relay, control):
    relay.conn.send({"saved_as": "someone-elses-model", "name": "x"})  # not a protocol message
    return Result("done", "never read")
