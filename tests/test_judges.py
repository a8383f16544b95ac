"""rnn.judges: more Ms that score C in evolve (fitness = the worst M's mean dream return)."""

import json
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import pytest
import yaml
from conftest import make_episodes

from stages import evolve, train_rnn
from wm_core.checkpoint import load_model, save_model
from wm_core.data import write_dataset
from wm_core.mdrnn import MDNRNN, judges_skeleton

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    params = yaml.safe_load((ROOT / "tests" / "tiny_params.yaml").read_text())
    params["rnn"] |= {"judges": 2, "dropout": 0.0}
    params["dream"] |= {"offroad_penalty": 0.0, "round_offroad_penalty": 0.0}
    params["evolve"] |= {"members": 1, "real_check_every": 0}  # dream only: no V needed
    params["hybrid"] |= {"real_generations": 0}
    write_dataset(tmp_path / "lat.zarr", make_episodes(lengths=(40, 25), z_dim=8, frames=False))
    monkeypatch.chdir(tmp_path)

    def use(**sections):
        p = yaml.safe_load(yaml.safe_dump(params))
        for section, values in sections.items():
            p[section] = p[section] | values if isinstance(values, dict) else values
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
        monkeypatch.setenv("WM_PARAMS", str(tmp_path / "params.yaml"))

    use()
    return tmp_path, use


def leaves(model):
    return [np.asarray(x) for x in jax.tree.leaves(eqx.filter(model, eqx.is_array))]


def test_judge_j_is_the_m_that_seed_plus_j_would_train(workdir):
    path, use = workdir
    train_rnn.main(["judges.eqx", "j.json", "j.tsv", "lat.zarr", "--judges"])
    judges, header = load_model("judges.eqx", "mdrnn_judges", judges_skeleton)
    assert len(judges) == 2 and header["hparams"]["count"] == 2
    assert json.loads(Path("j.json").read_text())["judges"] == 2
    use(seed=2)
    train_rnn.main(["m2.eqx", "m2.json", "m2.tsv", "lat.zarr"])
    m2, _ = load_model("m2.eqx", "mdrnn", MDNRNN)
    for a, b in zip(leaves(judges[1]), leaves(m2), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(leaves(judges[0])[0], leaves(m2)[0])
    use(rnn={"judges": 0})  # none: an empty file, which evolve reads as "no judges"
    train_rnn.main(["none.eqx", "n.json", "n.tsv", "lat.zarr", "--judges"])
    assert load_model("none.eqx", "mdrnn_judges", judges_skeleton)[0] == ()


def test_evolve_scores_c_by_the_worst_m_and_no_judges_changes_nothing(workdir):
    path, use = workdir
    train_rnn.main(["m.eqx", "m.json", "m.tsv", "lat.zarr"])
    train_rnn.main(["judges.eqx", "j.json", "j.tsv", "lat.zarr", "--judges"])
    m, _ = load_model("m.eqx", "mdrnn", MDNRNN)
    shape = {"z_dim": 8, "hidden": 16, "mixtures": 2}
    save_model("none.eqx", (), "mdrnn_judges", shape | {"count": 0})

    def run(out: str, *extra: str) -> dict:
        evolve.main([f"{out}.eqx", f"{out}.json", f"{out}.tsv", "m.eqx", "lat.zarr", *extra])
        return json.loads(Path(f"{out}.json").read_text())

    plain = run("plain")
    empty = run("empty", "--judges", "none.eqx")
    assert Path("plain.eqx").read_bytes() == Path("empty.eqx").read_bytes() and plain == empty
    judged = run("judged", "--judges", "judges.eqx")
    assert judged["judges"] == 2 and len(judged["dream_return_by_m"]) == 3
    assert judged["dream_return"] == pytest.approx(min(judged["dream_return_by_m"]))
    # a judge of another shape than M is refused before any work, and nothing is written
    small = (MDNRNN(8, m.hidden // 2, 2, key=jax.random.key(0)),)
    save_model("small.eqx", small, "mdrnn_judges", shape | {"hidden": 8, "count": 1})
    with pytest.raises(SystemExit):
        run("bad", "--judges", "small.eqx")
    assert not Path("bad.eqx").exists() and not Path("bad.json").exists()


def test_joint_mixture_goes_through_train_rnn_judges_and_evolve(workdir):
    """rnn.mixture: joint reaches the checkpoints (M and judges) and evolve dreams in it; the
    factored M of the same seed is another model (not a relabelled one)."""
    path, use = workdir
    use(rnn={"mixture": "joint"}, evolve={"generations": 1})
    train_rnn.main(["mj.eqx", "mj.json", "mj.tsv", "lat.zarr"])
    train_rnn.main(["jj.eqx", "jj.json", "jj.tsv", "lat.zarr", "--judges"])
    m, header = load_model("mj.eqx", "mdrnn", MDNRNN)
    judges, jheader = load_model("jj.eqx", "mdrnn_judges", judges_skeleton)
    assert m.joint and header["hparams"]["joint"] and all(j.joint for j in judges)
    assert m.heads(m.init_carry()[0])[0].shape == (1, 2)  # one set of weights for all of z
    evolve.main(["c.eqx", "c.json", "c.tsv", "mj.eqx", "lat.zarr", "--judges", "jj.eqx"])
    out = json.loads(Path("c.json").read_text())
    assert np.isfinite(out["dream_return"]) and len(out["dream_return_by_m"]) == 3
    use(rnn={"mixture": "factored"})
    train_rnn.main(["mf.eqx", "mf.json", "mf.tsv", "lat.zarr"])
    assert not load_model("mf.eqx", "mdrnn", MDNRNN)[0].joint
