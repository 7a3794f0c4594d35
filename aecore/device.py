"""Choosing and describing the compute device, in one place."""

from __future__ import annotations

import os

import torch

from aecore.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "mps")


def pick_device(prefer: str = "auto") -> torch.device:
    """``auto`` takes CUDA, then Apple MPS, then the CPU; a named device that is
    missing is an error, not a silent fallback."""
    if prefer not in DEVICES and not prefer.startswith("cuda:"):
        raise ConfigError(f"device must be one of {', '.join(DEVICES)}; got {prefer!r}.")
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if prefer == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if has_mps else torch.device("cpu")
    if prefer.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is visible; use --device auto or cpu.")
    if prefer == "mps" and not has_mps:
        raise ConfigError("device 'mps' was asked for but Apple's Metal backend is not available here.")
    return torch.device(prefer)


def device_choices() -> list[str]:
    """What a device picker offers on this machine: auto, the CPU, each CUDA GPU, MPS."""
    out = ["auto", "cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append("mps")
    return out


def describe_device(device: torch.device | str | None = None) -> str:
    device = pick_device("auto") if device is None else torch.device(device)
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "GPU: Apple Metal (MPS)"
    return f"CPU: {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def bf16_support(device: torch.device) -> tuple[bool, str]:
    """Whether bf16 autocast pays on this device, and why not when it does not."""
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return ok, "" if ok else "this GPU has no bf16 support"
    if device.type == "cpu":
        try:
            ok = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            ok = False
        return ok, "" if ok else "this CPU has neither AVX512-BF16 nor AMX, so bf16 would be slower, not faster"
    return False, f"bf16 training is not offered on {device.type}"
