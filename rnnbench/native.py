"""The fused LSTM recurrence of K language-model members as C++ for CPUs (rnnbench/lstm_cpu.cpp).

At the grammar study's sizes (hidden 16, batch 32) torch's operations make one pass over all K
members' memory per operation and time step; the C++ loop runs one member's whole sequence at a
time with its weights in the L1 cache: 1.9x rnnbench.fused.LSTMFunction's torch ops on the
recurrence alone, 2.1x on a fused group's epoch (BENCHMARKS.md, issue 18). It is compiled on first use with torch.utils.cpp_extension, once
per machine, and cached; where it cannot be built (no C++ compiler), the group trains on
LSTMFunction and says so once.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import platform
import shutil
import sys
import warnings
from pathlib import Path
from types import ModuleType

import ninja
import torch
from torch import Tensor

SOURCE = Path(__file__).with_name("lstm_cpu.cpp")
# Vector instructions per torch's view of the CPU: named exactly rather than -march=native, so a
# build cached on a shared home directory never runs on a CPU that lacks what it was built for.
ISA_FLAGS = {
    "AVX512": ["-mavx512f", "-mavx512vl", "-mavx512dq", "-mavx512bw", "-mavx2", "-mfma"],
    "AVX2": ["-mavx2", "-mfma"],
}
# -fno-trapping-math lets exp's float-to-int step vectorize; no other math flag: NaN must stay NaN
# (a diverged member's loss is how it leaves the group).
CFLAGS = ["-O3", "-std=c++20", "-fno-trapping-math"]
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (glibc's malloc.h)


@functools.cache
def native_lstm() -> ModuleType | None:
    """The compiled module (`forward`, `backward`), or None where it cannot be built."""
    # its import warns, on a CUDA build of torch without a GPU, that it found no CUDA runtime: true, and no concern here
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    from torch.utils import cpp_extension

    isa = torch.backends.cpu.get_cpu_capability()
    name = f"rnnbench_lstm_{isa.lower()}"
    root = Path(os.environ.get("TORCH_EXTENSIONS_DIR", Path.home() / ".cache" / "torch_extensions"))
    build = root / f"{name}_torch{torch.__version__.replace('+', '_')}_py{sys.version_info[0]}{sys.version_info[1]}"
    if shutil.which("ninja") is None:  # the ninja package's binary, where its bin folder is not on PATH
        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
    try:
        if not any(build.glob(f"{name}*.so")):
            print("rnnbench: compiling the C++ LSTM recurrence (once per machine, ~30 s)", file=sys.stderr, flush=True)
        build.mkdir(parents=True, exist_ok=True)
        module = cpp_extension.load(name, [str(SOURCE)], extra_cflags=CFLAGS + ISA_FLAGS.get(isa, []), build_directory=str(build))
    except Exception as error:  # no compiler, no ninja, a failed build: all mean the same here
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        warnings.warn(
            f"rnnbench: the C++ LSTM recurrence could not be built ({first_line}); fused LSTMs on the CPU use "
            "torch operations, ~2x slower; install a C++ compiler (g++) to get it",
            stacklevel=2,
        )
        return None
    keep_freed_memory()
    return module


def keep_freed_memory() -> None:
    """A fused step allocates its activations afresh (~14 MB at K = 60), and glibc gives blocks of
    that size back to the OS when they are freed and gets them again page by page: ~3,500 page
    faults a step, 10% of its time (BENCHMARKS.md, issue 18). Raising glibc's mmap and trim
    thresholds (mallopt(3)) keeps them in the heap for the next step; elsewhere this does nothing."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return
    libc = ctypes.CDLL(None)
    libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)  # the largest glibc accepts
    libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)


def available_for(x: Tensor) -> bool:
    """Whether NativeLSTMFunction can run on `x`: a float32 CPU tensor and a built module."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and native_lstm() is not None


class NativeLSTMFunction(torch.autograd.Function):
    """The LSTM recurrence of rnnbench.fused.LSTMFunction (gates i, f, g, o; biases in the input)
    with member-major layouts: x, the input projections `[K, T, B, 4H]`, or, for a first layer, each
    member's input table `[K, V, 4H]` (embedding @ W_ih^T + both biases) with `ids` `[K, T, B]`, the
    member-local token ids, looked up inside the loop; w_hh `[K, 4H, H]` as nn.LSTM stores it →
    hidden states `[K, T, B, H]`."""

    @staticmethod
    def forward(ctx, x: Tensor, w_hh: Tensor, ids: Tensor | None = None) -> Tensor:
        x, w_hh = x.contiguous(), w_hh.contiguous()
        ids = None if ids is None else ids.contiguous()
        hs, cs, tanh_cs, acts = native_lstm().forward(x, w_hh, ids)
        ctx.save_for_backward(x, w_hh, ids, hs, cs, tanh_cs, acts)
        return hs

    @staticmethod
    def backward(ctx, grad_hs: Tensor) -> tuple[Tensor, Tensor, None]:
        grad_x, grad_w = native_lstm().backward(grad_hs.contiguous(), *ctx.saved_tensors)
        return grad_x, grad_w, None
