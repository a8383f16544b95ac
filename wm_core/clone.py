"""Behaviour cloning: a starting C fitted to the expert's logged actions on [z, h].

CMA-ES from a random C searches the whole controller space inside M's dream, and what scores
best there is often where M is wrong: a C that stays on a dreamed road the real car leaves
(RESULTS.md, runs 5 and 6). M is most accurate along the driving it was trained on, and the
heuristic expert's episodes are part of that data. Fitting C to the expert's actions first
starts the search in that region (BREMEN's behaviour-cloned initialisation, Matsushima et al.
2021, "Deployment-Efficient Reinforcement Learning via Model-Based Offline Optimization").

C still never drives the real car while it is trained: its inputs are the collected frames'
posterior means and M's h teacher-forced along them, exactly as the real agent computes them
(wm_core/agent.py: z_t = mu_t, a_t = C(z_t, h_t), h_{t+1} = M.step(z_t, a_t, h_t)).

Plain least squares makes a copycat (Wen et al. 2020, "Fighting Copycat Agents in Behavioral
Cloning from Observation Histories"): the expert's actions are smooth, h holds a_{t-1} (M's
input) and the HUD shows the wheels' angle, so the best linear fit repeats the previous action
and never turns towards the road by itself (RESULTS.md, session 14: -30 on validation tracks).
Keyframe weights (Wen et al. 2021, "Keyframe-Focused Visual Imitation Learning") put the fit
where repeating fails: frame t counts 1 + k |a_t - a_{t-1}|_1 / mean, the frames where the
expert changed its action (``evolve.clone_keyframe`` = k; RESULTS.md, session 16).

The targets are the plain expert's labels (``expert_action``, DAgger's relabelling, Ross et al.
2011) where the data has them, not the logged actions: the recovery and aggressive drivers log
steering noise, scripted swerves and corners taken too fast, while the plain expert says what
to do in the same states, including those off the road it never reaches itself (RESULTS.md,
session 17). h is still computed from the actions that were driven, as the frames followed
them. Data without labels (collected before session 17) falls back to the logged actions.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float

from wm_core.controller import Controller, _squash
from wm_core.data import DataError, Episodes
from wm_core.mdrnn import MDNRNN

L2 = 1e-4  # ridge on W: h has 256 correlated inputs, and a C is linear in them


def cloned_episodes(data: Episodes, sources: Sequence[str]) -> list[int]:
    """Indices of the episodes whose ``episode_policy`` label starts with one of ``sources``
    (``heuristic/plain`` also takes ``heuristic/plain/mirrored``)."""
    labels = data.attrs.get("episode_policy", [])
    if len(labels) != len(data.episode_ends):
        raise DataError(
            f"latents: {len(labels)} episode_policy labels for {len(data.episode_ends)} "
            "episodes (rerun encode_latents)"
        )
    chosen = [i for i, lab in enumerate(labels) if any(lab.startswith(s) for s in sources)]
    if not chosen:
        raise DataError(
            f"latents: no episode of {list(sources)} to clone (labels: {sorted(set(labels))})"
        )
    return chosen


@eqx.filter_jit
def _teacher_forced_h(
    rnn: MDNRNN, z: Float[Array, "E T z"], a: Float[Array, "E T 3"]
) -> Float[Array, "E T h"]:
    """h_t before each step of each (padded) episode, from a zero state (the agent's start)."""

    def episode(z_seq, a_seq):
        def step(carry, za):
            return rnn.step(*za, carry), carry[0]

        _, hs = jax.lax.scan(step, rnn.init_carry(), (z_seq, a_seq))
        return hs

    return jax.vmap(episode)(z, a)


def agent_inputs(
    rnn: MDNRNN, data: Episodes, episodes: Sequence[int]
) -> tuple[Float[np.ndarray, "N n"], Float[np.ndarray, "N 3"]]:
    """([z_t, h_t], y_t) for every frame of the given episodes: C's input (h teacher-forced on
    the driven actions) and its target, clone_targets(data) (the expert's label)."""
    starts, lengths = data.episode_starts[episodes], data.lengths[episodes]
    T = int(lengths.max())
    z = np.zeros((len(episodes), T, data.mu.shape[1]), np.float32)
    a = np.zeros((len(episodes), T, 3), np.float32)
    y = np.zeros((len(episodes), T, 3), np.float32)
    target = clone_targets(data)
    for i, (s, n) in enumerate(zip(starts, lengths)):  # zero padding after an episode's end
        z[i, :n], a[i, :n], y[i, :n] = data.mu[s : s + n], data.action[s : s + n], target[s : s + n]
    h = np.asarray(_teacher_forced_h(rnn, jnp.asarray(z), jnp.asarray(a)))
    valid = np.arange(T)[None, :] < lengths[:, None]
    return np.concatenate([z, h], axis=-1)[valid], y[valid]


def clone_targets(data: Episodes) -> Float[np.ndarray, "N 3"]:
    """What C is fitted to on each frame: the expert's label if the data has labels, else the
    logged action."""
    return data.action if data.expert_action is None else data.expert_action


def keyframe_weights(data: Episodes, episodes: Sequence[int], k: float) -> Float[np.ndarray, " N"]:
    """1 + k |y_t - y_{t-1}|_1 / mean for every frame of the given episodes, in agent_inputs'
    order, y = clone_targets(data) (y_{-1} = 0: the agent starts from rest). k = 0: every frame
    weighs 1."""
    change, target = [], clone_targets(data)
    for s, n in zip(data.episode_starts[episodes], data.lengths[episodes]):
        a = target[s : s + n]
        change.append(np.abs(np.diff(a, axis=0, prepend=np.zeros((1, 3), a.dtype))).sum(1))
    change = np.concatenate(change)
    mean = change.mean()
    if k == 0 or mean == 0:  # constant actions: no keyframe to prefer
        return np.ones(len(change), np.float32)
    return (1.0 + k * change / mean).astype(np.float32)


def fit_controller(
    x: Float[np.ndarray, "N n"],
    actions: Float[np.ndarray, "N 3"],
    z_dim: int,
    hidden: int,
    weights: Float[np.ndarray, " N"] | None = None,
    steps: int = 500,
    lr: float = 0.01,
) -> tuple[Controller, float]:
    """C minimising the (weighted) mean squared error of its squashed actions (full batch,
    Adam, from W = 0, b = 0, so the fit is deterministic). Returns C and the final error."""
    if x.shape != (len(actions), z_dim + hidden):
        want = (len(actions), z_dim + hidden)
        raise ValueError(f"fit_controller: x {x.shape}, expected {want}")
    if weights is None:
        weights = np.ones(len(actions), np.float32)
    if weights.shape != (len(actions),) or not (weights >= 0).all() or weights.sum() <= 0:
        raise ValueError(f"fit_controller: weights must be {len(actions)} values >= 0, not all 0")
    params = (jnp.zeros((3, z_dim + hidden)), jnp.zeros(3))
    x, y = jnp.asarray(x), jnp.asarray(actions)
    wt = jnp.asarray(weights / weights.mean(), jnp.float32)[:, None]

    def loss(params):
        w, b = params
        mse = jnp.mean(wt * (_squash(x @ w.T + b) - y) ** 2)
        return mse + L2 * jnp.sum(w**2), mse

    opt = optax.adam(lr)

    @jax.jit
    def run(params):
        def step(carry, _):
            params, state = carry
            (_, mse), g = jax.value_and_grad(loss, has_aux=True)(params)
            updates, state = opt.update(g, state)
            return (optax.apply_updates(params, updates), state), mse

        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
        return params, loss(params)[1]

    (w, b), mse = run(params)
    if not bool(jnp.isfinite(mse)):
        raise FloatingPointError("fit_controller: non-finite loss (inputs have NaN or inf?)")
    ctrl = Controller(z_dim, hidden, key=jax.random.key(0))
    ctrl = eqx.tree_at(lambda c: (c.linear.weight, c.linear.bias), ctrl, (w, b))
    return ctrl, float(mse)


def clone_controller(
    rnn: MDNRNN, data: Episodes, sources: Sequence[str], keyframe: float = 0.0
) -> tuple[Controller, dict]:
    """C fitted to the actions of ``sources``' episodes, frames weighted by keyframe_weights
    with k = ``keyframe``; info for the stage's metrics."""
    if data.mu is None:
        raise DataError("latents: cloning needs 'mu'")
    episodes = cloned_episodes(data, sources)
    x, a = agent_inputs(rnn, data, episodes)
    w = keyframe_weights(data, episodes, keyframe)
    ctrl, mse = fit_controller(x, a, rnn.z_dim, rnn.hidden, w)
    info = {"clone_episodes": len(episodes), "clone_frames": len(a), "clone_mse": mse}
    return ctrl, info | {"clone_expert_labels": int(data.expert_action is not None)}
