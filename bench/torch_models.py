"""PyTorch twins of our models, for the bench/*.py baselines only (torch is never a runtime dep).

Each mirrors the architecture in wm_core, and ``load_*`` copies an Equinox model's weights into
it, so a script can check that both frameworks compute the same function before timing them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from wm_core.vae import DEC_LAYERS, ENC_CHANNELS


def _t(x) -> torch.Tensor:
    return torch.from_numpy(np.array(x, dtype=np.float32))


class TorchVAE(nn.Module):  # Ha's architecture, NCHW, textbook layers
    def __init__(self, z=32):
        super().__init__()
        layers = []  # the channel and kernel lists are wm_core.vae's, so both stay one architecture
        for ci, co in zip(ENC_CHANNELS[:-1], ENC_CHANNELS[1:]):
            layers += [nn.Conv2d(ci, co, 4, 2), nn.ReLU()]
        self.enc = nn.Sequential(*layers)
        self.mu, self.ls = nn.Linear(1024, z), nn.Linear(1024, z)
        self.fc = nn.Linear(z, 1024)
        layers = []
        for ci, co, k in DEC_LAYERS:
            layers += [nn.ConvTranspose2d(ci, co, k, 2), nn.ReLU()]
        self.dec = nn.Sequential(*layers[:-1], nn.Sigmoid())

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, 64, 64) in [0, 1] -> (mu, log sigma), each (B, z)."""
        h = self.enc(x).flatten(1)
        return self.mu(h), self.ls(h)

    def forward(self, x):  # the training loss of bench/vae.py
        mu, ls = self.encode(x)
        z = mu + ls.exp() * torch.randn_like(mu)
        out = self.dec(self.fc(z)[:, :, None, None])
        recon = ((out - x) ** 2).sum((1, 2, 3))
        kl = -0.5 * (1 + 2 * ls - mu**2 - (2 * ls).exp()).sum(1)
        return (recon + kl.clamp(min=16.0)).mean()


@torch.no_grad()
def load_vae_encoder(tv: TorchVAE, vae) -> None:
    """Copy wm_core.vae.VAE's encoder into ``tv`` (conv (k, k, ci, co) -> (co, ci, k, k))."""
    convs = [m for m in tv.enc if isinstance(m, nn.Conv2d)]
    for conv, w, b in zip(convs, vae.enc_w, vae.enc_b):
        conv.weight.copy_(_t(w).permute(3, 2, 0, 1))
        conv.bias.copy_(_t(b))
    # ours flattens the 2x2x256 map NHWC (h, w, c), torch NCHW (c, h, w): reorder the rows
    for lin, w, b in ((tv.mu, vae.mu_w, vae.mu_b), (tv.ls, vae.ls_w, vae.ls_b)):
        lin.weight.copy_(_t(w).reshape(2, 2, 256, -1).permute(2, 0, 1, 3).reshape(1024, -1).T)
        lin.bias.copy_(_t(b))


class TorchMDNRNN(nn.Module):
    """LSTM over [z, a] + one linear head: K logits, K means, K log sigmas per latent dim,
    then reward and done logit (wm_core.mdrnn.MDNRNN's output layout)."""

    def __init__(self, z_dim: int = 32, hidden: int = 256, mixtures: int = 5):
        super().__init__()
        self.z_dim, self.mixtures = z_dim, mixtures
        self.lstm = nn.LSTM(z_dim + 3, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 3 * z_dim * mixtures + 2)

    def heads(self, h: torch.Tensor):
        """(..., hidden) -> logits, mu, log_sigma (..., z, K), reward (...), done logit (...)."""
        out = self.head(h)
        zk = self.z_dim * self.mixtures
        shape = (*h.shape[:-1], self.z_dim, self.mixtures)
        logits, mu, ls = (out[..., i * zk : (i + 1) * zk].reshape(shape) for i in range(3))
        return logits, mu, ls.clamp(-7.0, 2.0), out[..., -2], out[..., -1]

    def forward(self, z: torch.Tensor, a: torch.Tensor):
        """Teacher-forced (B, T, z), (B, T, 3) from a zero state -> heads per step."""
        h, _ = self.lstm(torch.cat([z, a], dim=-1))
        return self.heads(h)


@torch.no_grad()
def load_mdrnn(tm: TorchMDNRNN, rnn) -> None:
    """Copy wm_core.mdrnn.MDNRNN into ``tm``. Both order the gates i, f, g, o; Equinox has one
    bias where torch has two, so torch's hidden bias is set to zero."""
    tm.lstm.weight_ih_l0.copy_(_t(rnn.cell.weight_ih))
    tm.lstm.weight_hh_l0.copy_(_t(rnn.cell.weight_hh))
    tm.lstm.bias_ih_l0.copy_(_t(rnn.cell.bias))
    tm.lstm.bias_hh_l0.zero_()
    tm.head.weight.copy_(_t(rnn.head.weight))
    tm.head.bias.copy_(_t(rnn.head.bias))
