"""Seeding that makes CPU runs bitwise repeatable and GPU runs as repeatable as the kernels allow."""

from __future__ import annotations

import os
import random
import sys

import numpy as np


def seed_everything(seed: int, *, deterministic: bool = True, threads: int | None = None):
    """Seed Python, NumPy and torch; return a NumPy Generator and a torch Generator for explicit use.

    Draw every random quantity from the returned generators (or after this call), never at import or
    DAG-parse time, so that the same seed gives the same run.
    """
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if threads is not None:
        torch.set_num_threads(threads)
    if deterministic:
        # torch.use_deterministic_algorithms also sets inductor's flag, and importing inductor costs
        # seconds per job; nothing here compiles, so set inductor's flag only if it is already loaded.
        torch._C._set_deterministic_algorithms(True, warn_only=True)
        if "torch._inductor.config" in sys.modules:
            sys.modules["torch._inductor.config"].deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return np.random.default_rng(seed), torch.Generator().manual_seed(seed)
