"""MonoMSK's networks (paper §3.2.1–3.2.2) and the per-frame MLP baseline.

- IKT: markers (B, T, M*3) -> q (B, T, C), root translation and rotation included.
- IDT: f_t = [q_t, q̇_t] (B, T, 2C) -> MLP encoder -> sinusoidal positions -> transformer encoder
  -> MLP head -> τ (B, T, C) and per foot λ (B, T, 2, 6): GRF (3), centre of pressure x, z
  (2) and free moment about the vertical (1).
- FrameMLP: the same two stages as per-frame MLPs (no temporal context), the baseline.
All inputs and outputs are in normalised units (see models/data.py); the trainer converts.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

CONTACT = 6  # per foot: force x, y, z; centre of pressure x, z; free moment y


@dataclass(frozen=True)
class NetConfig:
    """Network sizes. `window` T frames; `width` d_model; `ff` the feed-forward width."""
    markers: int            # M
    coordinates: int        # C
    window: int = 16
    width: int = 64
    layers: int = 2
    heads: int = 4
    ff: int = 128
    dropout: float = 0.0
    architecture: str = "monomsk"  # or "mlp"
    hidden: int = 0  # hidden size of the MLP encoder and head; 0 = width

    def to_dict(self) -> dict:
        return asdict(self)


class SinusoidalPositions(nn.Module):
    """Vaswani et al.'s fixed sinusoidal position encoding, added to (B, T, d)."""

    def __init__(self, width: int, max_len: int = 4096):
        super().__init__()
        pos = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
        div = torch.exp(torch.arange(0, width, 2, dtype=torch.float32)
                        * (-math.log(10000.0) / width))
        pe = torch.zeros(max_len, width)
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div[: width // 2])
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + self.pe[: z.shape[-2]]


def _mlp(inp: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, hidden), nn.GELU(), nn.Linear(hidden, out))


class SequenceEncoder(nn.Module):
    """MLP encoder -> sinusoidal positions -> transformer encoder -> MLP head."""

    def __init__(self, inp: int, out: int, cfg: NetConfig):
        super().__init__()
        hidden = cfg.hidden or cfg.width
        self.encode = _mlp(inp, hidden, cfg.width)
        self.positions = SinusoidalPositions(cfg.width)
        layer = nn.TransformerEncoderLayer(cfg.width, cfg.heads, cfg.ff, cfg.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(cfg.width), _mlp(cfg.width, hidden, out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.transformer(self.positions(self.encode(x)))  # (B, T, d)
        return self.head(h)


class FrameEncoder(nn.Module):
    """The baseline's stage: a per-frame MLP (two hidden layers of `ff`)."""

    def __init__(self, inp: int, out: int, cfg: NetConfig):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(inp, cfg.ff), nn.GELU(), nn.Linear(cfg.ff, cfg.ff),
                                 nn.GELU(), nn.Linear(cfg.ff, out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MonoMSKNet(nn.Module):
    """IKT + IDT (architecture "monomsk") or their per-frame MLP counterparts ("mlp")."""

    def __init__(self, cfg: NetConfig):
        super().__init__()
        if cfg.architecture not in ("monomsk", "mlp"):
            raise ValueError(f"unknown architecture {cfg.architecture!r}; use monomsk or mlp")
        self.cfg = cfg
        stage = SequenceEncoder if cfg.architecture == "monomsk" else FrameEncoder
        c = cfg.coordinates
        self.ikt = stage(cfg.markers * 3, c, cfg)
        self.idt = stage(2 * c, c + 2 * CONTACT, cfg)

    def inverse_kinematics(self, markers: torch.Tensor) -> torch.Tensor:
        """(B, T, M, 3) normalised markers -> (B, T, C) normalised q."""
        return self.ikt(markers.flatten(-2))  # (B, T, M*3)

    def inverse_dynamics(self, q: torch.Tensor, qd: torch.Tensor):
        """Normalised q, q̇ (B, T, C) -> normalised τ (B, T, C) and λ (B, T, 2, 6)."""
        out = self.idt(torch.cat([q, qd], dim=-1))
        c = self.cfg.coordinates
        return out[..., :c], out[..., c:].unflatten(-1, (2, CONTACT))  # (B, T, 2, 6)
