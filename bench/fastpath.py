"""fp32 linear layers through oneDNN instead of MKL, for CPUs where MKL is held back.

What it does
------------
``enable_fast_fp32(model)`` switches every ``nn.Linear`` of ``model`` (in place,
weights and state_dict keys untouched) to :class:`FastLinear`, whose forward and
both backward GEMMs run through oneDNN's matmul (``torch.ops.mkldnn._linear_pointwise``)
instead of ``addmm``/``mm``, which go to MKL's sgemm:

* forward       y  = x @ W.T + b        (oneDNN, bias fused)
* input grad    gx = gy @ W             (oneDNN, W passed transposed, no copy)
* weight grad   gW = gy.T @ x           (oneDNN, both operands passed transposed, no copy)
* bias grad     gb = gy.sum(0)

Everything stays IEEE fp32: no TF32 or bf16 down-conversion is involved
(``torch.backends.mkldnn`` fp32 precision is left as it is, "none"/"ieee"). Measured
against an fp64 reference, the gradients of the seed-000 deep dense model are within
3e-7 relative, the same order as stock fp32 (bench/speed.py checks this on every run).
Under autocast (``precision="bf16"``), for non-fp32 inputs, or off the CPU, the layer
falls back to ``F.linear``, so the bf16 path and GPUs are unaffected.

When it applies
---------------
torch's MKL picks its AVX2 kernels on non-Intel CPUs, while oneDNN uses whatever the
CPU has. On AMD Zen 4/5 (AVX-512) ../shared/notes/speed.md measured the forward GEMM at
~400 GFLOP/s through oneDNN against ~180 through MKL. Where the CPU has no AVX-512
(AVX2 only, e.g. Zen 2/3) both libraries run AVX2 kernels and MKL is the faster of the
two: on a 2-core Zen 3, bench/speed.py measured training with this switch at 0.81-0.94x of
stock fp32 (deep-dense 0.90x, vanilla 0.91x, vae-mlp 0.94x on a quiet machine; 0.85-0.93x
under contention; 0.81-0.90x with one thread). On Intel CPUs MKL already uses AVX-512.
Whether the switch pays in training on an AVX-512 AMD CPU (speed.md's figure is a forward
GEMM only) has not been measured yet: the bench's "aecore+fastpath" row shows it there.
``enable_fast_fp32`` therefore switches layers only where :func:`fast_fp32_support` says
it may pay (a non-Intel x86 CPU whose ATen capability is AVX-512), unless ``force=True``
(what the benchmark uses to measure it anywhere).

The switch is undone by :func:`disable_fast_fp32`. It does not change what a saved model
holds: the store saves the state_dict, whose keys and tensors are the same.
"""

from __future__ import annotations

import functools
import platform

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FastLinear", "OneDNNLinearFunction", "disable_fast_fp32", "enable_fast_fp32", "fast_fp32_support"]


def _linear_op():
    try:
        return torch.ops.mkldnn._linear_pointwise
    except (AttributeError, RuntimeError):
        return None


def _cpu_vendor() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@functools.lru_cache(maxsize=1)
def fast_fp32_support() -> tuple[bool, str]:
    """Whether switching fp32 linear layers to oneDNN is expected to pay on this CPU, and why."""
    if _linear_op() is None or not torch.backends.mkldnn.is_available():
        return False, "this torch build has no oneDNN linear operator"
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False, f"only x86-64 CPUs are covered (this is {platform.machine()})"
    capability = torch.backends.cpu.get_cpu_capability()
    vendor = _cpu_vendor()
    if "AVX512" not in capability:
        return False, (
            f"the CPU offers {capability} at most, the same kernels MKL already uses "
            "(oneDNN measured at ~0.9x of MKL on AVX2)"
        )
    if vendor == "GenuineIntel":
        return False, "MKL already uses AVX-512 on Intel CPUs"
    return True, f"{vendor} with {capability}: MKL's sgemm takes its AVX2 path, oneDNN uses AVX-512"


def _use_onednn(x: Tensor, weight: Tensor) -> bool:
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and x.dim() >= 1
        and not torch.is_autocast_enabled("cpu")
    )


class OneDNNLinearFunction(torch.autograd.Function):
    """y = x @ W.T + b with the forward and both backward GEMMs in oneDNN (fp32)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        op = torch.ops.mkldnn._linear_pointwise
        shape = x.shape
        x2 = x.reshape(-1, shape[-1]) if x.dim() != 2 else x
        if not x2.is_contiguous():
            x2 = x2.contiguous()
        w = weight if weight.is_contiguous() else weight.contiguous()
        y = op(x2, w, bias, "none", [], "")
        ctx.save_for_backward(x2, w)
        ctx.has_bias = bias is not None
        ctx.in_shape = shape
        return y.reshape(*shape[:-1], y.shape[-1]) if x.dim() != 2 else y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy: Tensor):
        op = torch.ops.mkldnn._linear_pointwise
        x2, w = ctx.saved_tensors
        gy2 = gy.reshape(-1, gy.shape[-1])
        if not gy2.is_contiguous():  # e.g. an expanded gradient with zero strides
            gy2 = gy2.contiguous()
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = op(gy2, w.t(), None, "none", [], "").reshape(ctx.in_shape)  # (B, out) @ (out, in)
        if ctx.needs_input_grad[1]:
            gw = op(gy2.t(), x2.t(), None, "none", [], "")  # (out, B) @ (B, in)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = gy2.sum(0)
        return gx, gw, gb


class FastLinear(nn.Linear):
    """An ``nn.Linear`` whose fp32 CPU GEMMs run through oneDNN (same parameters, same state_dict)."""

    def forward(self, x: Tensor) -> Tensor:
        if _use_onednn(x, self.weight):
            return OneDNNLinearFunction.apply(x, self.weight, self.bias)
        return F.linear(x, self.weight, self.bias)


def enable_fast_fp32(model: nn.Module, force: bool = False) -> bool:
    """Switch the model's ``nn.Linear`` layers to :class:`FastLinear` where it pays.

    Returns True when at least one layer was switched. Without ``force`` nothing is
    switched unless :func:`fast_fp32_support` says so (a non-Intel x86 CPU with
    AVX-512); ``force=True`` switches anyway where the operator exists (for
    measurements and tests). Layers of subclasses of ``nn.Linear`` other than the
    plain class are left alone, and so are models with no linear layer (the conv presets'
    convolutions already run in oneDNN)."""
    if _linear_op() is None:
        return False
    if not force and not fast_fp32_support()[0]:
        return False
    switched = 0
    for m in model.modules():
        if type(m) is nn.Linear:
            m.__class__ = FastLinear
            switched += 1
    return switched > 0


def disable_fast_fp32(model: nn.Module) -> int:
    """Undo :func:`enable_fast_fp32`; returns how many layers went back to ``nn.Linear``."""
    n = 0
    for m in model.modules():
        if type(m) is FastLinear:
            m.__class__ = nn.Linear
            n += 1
    return n
