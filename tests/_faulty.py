"""A small MLP state_dict with planted faults, shared by the CLI/config/plot tests."""

from __future__ import annotations

import torch
import torch.nn as nn


def save_model(path, zero=(2,), nan=(4,)) -> str:
    """Linear layers named 0, 2, 4, 6; layers in ``zero`` all zeros (IC002), in ``nan`` with one NaN (IC001)."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                      nn.Linear(64, 64))
    with torch.no_grad():
        for i in zero:
            m[i].weight.zero_()
        for i in nan:
            m[i].weight[0, 0] = float("nan")
    torch.save(m.state_dict(), path)
    return str(path)
