"""Hook of scripts/check_gate.py, not part of minicluster: when GATE_EXTRA_MATMULS is set to N > 0,
every rank runs N extra GATE_MATMUL_SIZE x GATE_MATMUL_SIZE fp32 matmuls after each optimizer
step (torch's global optimizer hook): more compute per step, the way a slower kernel or a larger
layer costs time, not a sleep."""

import os

_N = int(os.environ.get("GATE_EXTRA_MATMULS") or 0)
if _N > 0:
    import torch
    import torch.optim.optimizer as _opt

    _size = int(os.environ.get("GATE_MATMUL_SIZE") or 256)
    _a = torch.randn(_size, _size)
    _b = torch.randn(_size, _size)

    def _extra(_optimizer, _args, _kwargs):
        for _ in range(_N):
            torch.mm(_a, _b)

    _opt.register_optimizer_step_post_hook(_extra)
