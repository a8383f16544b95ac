"""Training loops for V and M: one jitted step each, compiled once, metrics synced per log.

Batches are drawn on the host (V: random frames) or on the device (M: random windows of
whole episodes), always with keys from ``fold_in(key, step)`` so a run is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray, UInt8
from tqdm import tqdm

from wm_core.config import RNNConfig, VAEConfig
from wm_core.data import Episodes
from wm_core.errors import TrainingError  # noqa: F401  (re-exported)
from wm_core.mdrnn import MDNRNN, asymmetric_sq_error, dropout_masks, mdn_logprob
from wm_core.resume import Snapshots
from wm_core.vae import VAE, vae_loss

REWARD_CLIP = (-10.0, 10.0)  # the -100 playfield exit would swamp the squared error


def make_train_step(loss_fn: Callable, optim: optax.GradientTransformation):
    """One pure step: grads, update, apply, all inside one ``filter_jit`` (traced once)."""

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)  # a retrace is a bug: shapes must stay fixed
    def train_step(model, opt_state, batch, key):
        (loss, aux), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(model, batch, key)
        updates, opt_state = optim.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, {"loss": loss, **aux}

    return train_step


def _fit(
    model,
    loss_fn,
    optim,
    n_steps: int,
    next_batch,
    key,
    log_every: int,
    desc: str,
    snapshots: Snapshots | None = None,
):
    step_fn = make_train_step(loss_fn, optim)
    opt_state = optim.init(eqx.filter(model, eqx.is_array))
    curve, start = [], 0
    if snapshots is not None and (snap := snapshots.load((model, opt_state))) is not None:
        last, info, (model, opt_state) = snap
        start, curve = last + 1, info["curve"]
    bar = tqdm(range(start, n_steps), desc=desc, mininterval=2.0, initial=start, total=n_steps)
    for step in bar:
        step_key = jax.random.fold_in(key, step)
        batch_key, loss_key = jax.random.split(step_key)
        model, opt_state, metrics = step_fn(model, opt_state, next_batch(step, batch_key), loss_key)
        if step % log_every == 0 or step == n_steps - 1:
            row = {k: float(v) for k, v in jax.device_get(metrics).items()}
            if not all(math.isfinite(v) for v in row.values()):
                raise TrainingError(f"{desc}: non-finite loss at step {step}: {row}")
            curve.append({"step": step, **row})
            bar.set_postfix(loss=f"{row['loss']:.4g}")
        if snapshots is not None and snapshots.due(step, n_steps - 1):
            snapshots.save(step, {"curve": curve}, (model, opt_state))
    leaves = jax.tree.leaves(eqx.filter(model, eqx.is_array))
    if not all(bool(jnp.all(jnp.isfinite(x))) for x in leaves):
        raise TrainingError(f"{desc}: non-finite parameters after step {n_steps - 1}")
    return model, curve


def fit_vae(
    cfg: VAEConfig,
    obs: UInt8[np.ndarray, "N 64 64 3"],
    *,
    key: PRNGKeyArray,
    snapshots: Snapshots | None = None,
):
    """Train V on random minibatches of frames. Returns (model, curve)."""
    init_key, loop_key = jax.random.split(key)
    model = VAE(cfg.z_dim, key=init_key)
    n = obs.shape[0]
    bs = min(cfg.batch_size, n)

    def next_batch(step, batch_key):
        idx = np.asarray(jax.random.randint(batch_key, (bs,), 0, n))
        return jnp.asarray(obs[np.sort(idx)])

    def loss(m, batch, k):
        return vae_loss(m, batch, k, cfg.kl_tolerance)

    return _fit(
        model,
        loss,
        optax.adam(cfg.lr),
        cfg.steps,
        next_batch,
        loop_key,
        cfg.log_every,
        "train_vae",
        snapshots,
    )


def encode_frames(model: VAE, obs: UInt8[np.ndarray, "N 64 64 3"], batch: int = 256):
    """(mu, log_sigma) for every frame, in fixed-size batches (one compile)."""
    enc = eqx.filter_jit(lambda m, x: m.encode(x.astype(jnp.float32) / 255.0))
    mus, sigmas = [], []
    n = obs.shape[0]
    for i in tqdm(range(0, n, batch), desc="encode", mininterval=2.0):
        chunk = obs[i : i + batch]
        pad = batch - chunk.shape[0]
        mu, ls = enc(model, jnp.asarray(np.pad(chunk, ((0, pad), (0, 0), (0, 0), (0, 0)))))
        mus.append(np.asarray(mu)[: batch - pad])
        sigmas.append(np.asarray(ls)[: batch - pad])
    return np.concatenate(mus), np.concatenate(sigmas)


class SeqData(eqx.Module):
    """Latent episodes on the device, for sampling training windows inside jit."""

    mu: Float[Array, "N z"]
    log_sigma: Float[Array, "N z"]
    action: Float[Array, "N 3"]
    reward: Float[Array, " N"]
    done: Float[Array, " N"]
    starts: Array
    lengths: Array

    @staticmethod
    def from_episodes(d: Episodes) -> SeqData:
        return SeqData(
            mu=jnp.asarray(d.mu),
            log_sigma=jnp.asarray(d.log_sigma),
            action=jnp.asarray(d.action),
            reward=jnp.asarray(np.clip(d.reward, *REWARD_CLIP)),
            done=jnp.asarray(d.terminated.astype(np.float32)),
            starts=jnp.asarray(d.episode_starts),
            lengths=jnp.asarray(d.lengths),
        )


def sample_windows(
    data: SeqData, batch: int, seq_len: int, key: PRNGKeyArray, z_noise: float = 1.0
):
    """Random windows of whole episodes, never truncated to the shortest episode.

    Episode e is drawn with weight len_e + L - 1 and a start s uniform in [-(L-1), len_e - 1];
    the window is [max(s, 0), min(s + L, len_e)), shifted to position 0 and padded with a mask.
    Every frame is covered equally often, and windows clipped at the front begin at the
    episode's first frame, where a zero LSTM state is exactly right.
    """
    ekey, skey, zkey = jax.random.split(key, 3)
    w = (data.lengths + seq_len - 1).astype(jnp.float32)
    e = jax.random.categorical(ekey, jnp.log(w), shape=(batch,))
    length = data.lengths[e]
    s = jax.random.randint(skey, (batch,), -(seq_len - 1), length)
    lo, hi = jnp.maximum(s, 0), jnp.minimum(s + seq_len, length)
    t = lo[:, None] + jnp.arange(seq_len)[None, :]  # (B, L) time within episode
    valid = t < hi[:, None]
    idx = data.starts[e][:, None] + jnp.minimum(t, length[:, None] - 1)
    has_next = valid & (t + 1 < length[:, None])
    noise = jnp.exp(data.log_sigma[idx]) * jax.random.normal(zkey, data.mu[idx].shape)
    z = data.mu[idx] + z_noise * noise
    z_next = jnp.concatenate([z[:, 1:], z[:, -1:]], axis=1)
    return {
        "z": z,
        "a": data.action[idx],
        "z_next": z_next,
        "r": data.reward[idx],
        "done": data.done[idx],
        "valid": valid.astype(jnp.float32),
        "has_next": has_next.astype(jnp.float32),
    }


def mdrnn_loss(model: MDNRNN, batch: dict, cfg: RNNConfig, key: PRNGKeyArray):
    """Masked mean of: mixture NLL of z_{t+1} + asymmetric reward error + weighted done BCE.

    With ``rnn.dropout`` > 0 each window gets its own dropout masks (``key``).
    """
    keys = jax.random.split(key, batch["z"].shape[0])
    masks = jax.vmap(lambda k: dropout_masks(model, cfg.dropout, k))(keys)
    logits, mu, log_sigma, r_pred, d_logit = model.unroll_batch(batch["z"], batch["a"], masks)
    logp = jax.vmap(jax.vmap(mdn_logprob))(logits, mu, log_sigma, batch["z_next"])
    valid, has_next = batch["valid"], batch["has_next"]
    nll = -(logp * has_next).sum() / jnp.maximum(has_next.sum(), 1.0)
    r_err = asymmetric_sq_error(r_pred, batch["r"], cfg.reward_optimism_weight)
    r_loss = (r_err * valid).sum() / valid.sum()
    d = batch["done"]
    bce = -(
        cfg.done_pos_weight * d * jax.nn.log_sigmoid(d_logit)
        + (1 - d) * jax.nn.log_sigmoid(-d_logit)
    )
    d_loss = (bce * valid).sum() / valid.sum()
    return nll + r_loss + d_loss, {"nll": nll, "reward_loss": r_loss, "done_loss": d_loss}


def fit_mdrnn(
    cfg: RNNConfig,
    data: Episodes,
    steps: int,
    *,
    key: PRNGKeyArray,
    init: MDNRNN | None = None,
    snapshots: Snapshots | None = None,
):
    """Train M (from scratch, or warm-started from ``init``). Returns (model, curve)."""
    init_key, loop_key = jax.random.split(key)
    model = (
        init
        if init is not None
        else MDNRNN(
            data.mu.shape[1], cfg.hidden, cfg.mixtures, cfg.mixture == "joint", key=init_key
        )
    )
    seq = SeqData.from_episodes(data)
    optim = optax.chain(optax.clip_by_global_norm(cfg.grad_clip), optax.adam(cfg.lr))

    def next_batch(step, batch_key):
        return seq, batch_key  # windows are sampled inside the jitted step

    def loss(m, batch, k):
        seq_data, batch_key = batch  # traced arguments, not constants baked into the program
        windows = sample_windows(seq_data, cfg.batch_size, cfg.seq_len, batch_key, cfg.z_noise)
        return mdrnn_loss(m, windows, cfg, k)

    return _fit(
        model, loss, optim, steps, next_batch, loop_key, cfg.log_every, "train_rnn", snapshots
    )
