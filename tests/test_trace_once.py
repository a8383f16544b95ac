"""M's train step compiles once: new batches of the same shape must not retrace (STYLE §6)."""

import equinox as eqx
import jax
import optax
from conftest import make_episodes
from test_mdrnn import CFG

from wm_core.mdrnn import MDNRNN
from wm_core.train import SeqData, make_train_step, mdrnn_loss, sample_windows


def test_rnn_train_step_traces_once_across_batches(key):
    model = MDNRNN(4, CFG.hidden, CFG.mixtures, key=key)
    optim = optax.chain(optax.clip_by_global_norm(CFG.grad_clip), optax.adam(CFG.lr))

    def loss(m, batch, k):  # fit_mdrnn's closure: windows are sampled inside the jitted step
        seq, batch_key = batch
        return mdrnn_loss(m, sample_windows(seq, CFG.batch_size, CFG.seq_len, batch_key), CFG, k)

    step = make_train_step(loss, optim)
    opt_state = optim.init(eqx.filter(model, eqx.is_array))
    losses = []
    for i in range(3):  # same shapes, different content: other latents and other windows
        seq = SeqData.from_episodes(make_episodes((30, 12), z_dim=4, seed=i, frames=False))
        k = jax.random.fold_in(key, i)
        model, opt_state, metrics = step(model, opt_state, (seq, k), k)
        losses.append(float(metrics["loss"]))
    assert eqx.debug.get_num_traces(step) == 1
    assert len(set(losses)) == 3  # the batches really differed
