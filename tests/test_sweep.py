"""sweep(): configurations x replica blocks equal one simulate call bit for bit, locally and on Dask."""
import dataclasses
import logging
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest

import dynclip as dc
from dynclip.engine import _simulate
from dynclip import clipping as C, schedules as S
from dynclip.sweep import sweep, grid, concat_results

R = 7


def _problem():
    rng = np.random.default_rng(11)
    net = dc.mlp([3, 4, 2], activation="tanh")
    return net, rng.normal(size=(25, 3)), rng.normal(size=(25, 2)) * 2


def _configs():
    """Three configurations that between them fill every field of SAResult."""
    net, X, Y = _problem()
    T = 60
    base = dict(net=net, X=X, Y=Y, rule=C.classic(0.5), schedule=S.inverse(1.0, 5.0), n_steps=T, seed=5,
                record_every=7)
    rng = np.random.default_rng(0)
    th0 = rng.normal(size=(R, net.n_params)) * 0.5
    idx = rng.integers(0, len(X), size=(R, T, 3))
    every = 10
    t_eval = dc.record_times(S.constant(0.05), T, every)[1]
    flow = dc.ode.integrate(net, X, Y, C.classic(1.0), dc.init_params(net, 0), t_eval)
    return [
        dict(base, track_noise=True, record_theta=True),                              # noise fields, theta
        dict(base, rule=C.alrc(n_sigma=1.0, mu1=2.0, mu2=8.0), theta0=th0, indices=idx, batch_size=3,
             loss="quartic"),                                                           # per-replica inputs cut
        dict(base, rule=C.classic(1.0), schedule=S.constant(0.05), theta0=dc.init_params(net, 0),
             reference=flow, record_every=every, blowup_radius=0.35, clip_per="sample"),  # ref_deviation, divergence
    ]


def _direct(cfg, n=R):
    pos = [cfg[k] for k in ("net", "X", "Y", "rule", "schedule")]
    kw = {k: v for k, v in cfg.items() if k not in ("net", "X", "Y", "rule", "schedule")}
    return dc.simulate(*pos, **kw, n_replicas=n)


def assert_same(a, b):
    """Every array field equal, config equal apart from the wall time."""
    for f in dataclasses.fields(dc.SAResult):
        va, vb = getattr(a, f.name), getattr(b, f.name)
        if f.name == "config":
            strip = lambda c: {k: v for k, v in c.items() if k != "wall_time_s"}  # noqa: E731
            assert strip(va) == strip(vb)
        elif va is None or isinstance(va, bool):
            assert va == vb, f.name
        else:
            assert va.dtype == vb.dtype and va.shape == vb.shape, f.name
            np.testing.assert_array_equal(va, vb, err_msg=f.name)


@pytest.fixture(scope="module")
def configs_and_reference():
    cfgs = _configs()
    return cfgs, [_direct(c) for c in cfgs]


@pytest.mark.parametrize("block_size", [1, 3, R])
def test_sweep_equals_one_simulate_call(configs_and_reference, block_size):
    cfgs, ref = configs_and_reference
    out = sweep(cfgs, n_replicas=R, block_size=block_size)
    assert len(out) == len(cfgs)
    for a, b in zip(out, ref):
        assert_same(a, b)
    # the configurations do exercise every optional field and mixed divergence
    assert out[0].noise is not None and out[0].theta is not None
    assert out[2].ref_deviation is not None and 0 < out[2].diverged.sum() < R


def test_single_dict_and_default_block(configs_and_reference):
    cfgs, ref = configs_and_reference
    assert_same(sweep(cfgs[1], n_replicas=R), ref[1])
    # more blocks than replicas per block, uneven last block
    assert_same(sweep(cfgs[0], n_replicas=5, block_size=2), _direct(cfgs[0], 5))


def test_grid():
    base = dict(a=1, b=2)
    g = grid(base, b=[3, 4], c=["x", "y", "z"])
    assert g == [dict(a=1, b=3, c="x"), dict(a=1, b=3, c="y"), dict(a=1, b=3, c="z"),
                 dict(a=1, b=4, c="x"), dict(a=1, b=4, c="y"), dict(a=1, b=4, c="z")]
    assert grid(base) == [base]
    with pytest.raises(TypeError, match="'b'"):
        grid(base, b=3)
    with pytest.raises(ValueError, match="'b'"):
        grid(base, b=[])
    with pytest.raises(TypeError, match="base"):
        grid([1, 2], b=[1])


def test_grid_sweep_order():
    net, X, Y = _problem()
    base = dict(net=net, X=X, Y=Y, rule=C.classic(0.5), schedule=S.constant(0.05), n_steps=10, seed=0)
    cfgs = grid(base, rule=[C.classic(0.2), C.none()], seed=[1, 2])
    out = sweep(cfgs, n_replicas=2, block_size=1)
    for c, r in zip(cfgs, out):
        assert r.config["seed"] == c["seed"] and r.config["rule"] == c["rule"].as_dict()
        assert_same(r, _direct(c, 2))


def test_concat_results_checks(configs_and_reference):
    cfgs, _ = configs_and_reference
    net, X, Y = _problem()
    pos = (net, X, Y, C.classic(0.5), S.constant(0.05))
    kw = dict(n_steps=10, seed=0, record_every=5)
    a = dc.simulate(*pos, **kw, n_replicas=2)
    b = _simulate(*pos, **kw, n_replicas=3, replica_start=2)
    whole = dc.simulate(*pos, **kw, n_replicas=5)
    ab = concat_results([a, b])
    for f in ("theta_final", "loss", "displacement", "diverged"):
        np.testing.assert_array_equal(getattr(ab, f), getattr(whole, f))
    assert ab.config["n_replicas"] == 5 and ab.config["theta0_sha1"] is None
    assert concat_results([whole]).config["theta0_sha1"] == whole.config["theta0_sha1"]
    with pytest.raises(ValueError, match="expected 2"):
        concat_results([a, a])
    with pytest.raises(ValueError, match="expected 2"):
        concat_results([a, _simulate(*pos, **kw, n_replicas=3, replica_start=3)])
    with pytest.raises(ValueError, match="config differs in \\['seed'\\]"):
        concat_results([a, _simulate(*pos, **dict(kw, seed=1), n_replicas=3, replica_start=2)])
    with pytest.raises(ValueError, match="record steps"):
        concat_results([a, _simulate(*pos, **dict(kw, record_every=2), n_replicas=3, replica_start=2)])
    with pytest.raises(ValueError, match="empty"):
        concat_results([])
    with pytest.raises(TypeError, match="results\\[1\\]"):
        concat_results([a, "b"])
    with pytest.raises(ValueError, match="partial"):
        concat_results([dataclasses.replace(a, partial=True)])
    with pytest.raises(ValueError, match="replica_start"):
        _simulate(*pos, **kw, replica_start=-1)
    with pytest.raises(TypeError, match="_replica_start"):     # private: not an argument of simulate
        dc.simulate(*pos, **kw, _replica_start=1)


@pytest.mark.parametrize("bad, exc, match", [
    (lambda c: {k: v for k, v in c.items() if k != "seed"}, ValueError, "missing 'seed'"),
    (lambda c: dict(c, n_replicas=3), ValueError, "'n_replicas'"),
    (lambda c: dict(c, checkpoint="x.npz"), ValueError, "'checkpoint'"),
    (lambda c: dict(c, lr=0.1), ValueError, "unknown key 'lr'"),
    (lambda c: dict(c, net="mlp"), TypeError, "net"),
    (lambda c: dict(c, theta0=np.zeros((3, c["net"].n_params))), ValueError, "theta0"),
    (lambda c: dict(c, indices=np.zeros((2, 10, 1), dtype=int)), ValueError, "indices"),
])
def test_bad_configs(bad, exc, match):
    net, X, Y = _problem()
    cfg = dict(net=net, X=X, Y=Y, rule=C.classic(0.5), schedule=S.constant(0.05), n_steps=10, seed=0)
    with pytest.raises(exc, match=match):
        sweep([cfg, bad(cfg)], n_replicas=4)


def test_bad_arguments():
    net, X, Y = _problem()
    cfg = dict(net=net, X=X, Y=Y, rule=C.classic(0.5), schedule=S.constant(0.05), n_steps=10, seed=0)
    for kw, exc, match in [(dict(n_replicas=0), ValueError, "n_replicas"),
                           (dict(n_replicas=2.5), ValueError, "n_replicas"),
                           (dict(n_replicas=2, block_size=0), ValueError, "block_size"),
                           (dict(n_replicas=2, client="localhost:8786"), TypeError, "client")]:
        with pytest.raises(exc, match=match):
            sweep([cfg], **kw)
    with pytest.raises(ValueError, match="empty"):
        sweep([], n_replicas=1)
    with pytest.raises(TypeError, match="configs\\[0\\]"):
        sweep([1], n_replicas=1)
    with pytest.raises(TypeError, match="configs"):
        sweep("cfg", n_replicas=1)
    with pytest.raises(ValueError, match="loss"):      # simulate's own checks still apply
        sweep([dict(cfg, loss="l1")], n_replicas=1)


def test_nonfinite_raise_numbers_replicas_in_the_whole_run():
    net = dc.mlp([1, 1])                     # f = w x + b with x = 0: b <- b (1 - 2a), |1 - 2a| = 2
    th0 = np.zeros((7, 2))
    th0[4:, 1] = 1.0                         # replicas 4, 5, 6 blow up, 0..3 stay at 0
    cfg = dict(net=net, X=np.zeros((3, 1)), Y=np.zeros(3), rule=C.none(), schedule=S.constant(1.5), n_steps=1200,
               seed=0, theta0=th0, nonfinite="raise")
    with pytest.raises(FloatingPointError, match="first: replica 4 at step") as direct:
        _direct(cfg)
    with pytest.raises(FloatingPointError, match="first: replica 4 at step") as swept:
        sweep([cfg], n_replicas=7, block_size=3)
    assert str(direct.value) in str(swept.value)
    res = sweep([dict(cfg, nonfinite="stop")], n_replicas=7, block_size=3)[0]
    assert_same(res, _direct(dict(cfg, nonfinite="stop")))
    np.testing.assert_array_equal(res.nonfinite, [0, 0, 0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match="nonfinite"):
        sweep([dict(cfg, nonfinite="warn")], n_replicas=7)


def test_progress_and_interrupt(capsys, monkeypatch):
    net, X, Y = _problem()
    cfg = dict(net=net, X=X, Y=Y, rule=C.classic(0.5), schedule=S.constant(0.05), n_steps=10, seed=0)
    sweep([cfg], n_replicas=3, block_size=1, progress=True)
    assert "sweep" in capsys.readouterr().err
    sweep([cfg], n_replicas=3, block_size=1)
    assert capsys.readouterr().err == ""
    mod = sys.modules["dynclip.sweep"]
    real = mod._simulate

    def interrupted(*a, **k):
        return dataclasses.replace(real(*a, **k), partial=True)

    monkeypatch.setattr(mod, "_simulate", interrupted)
    with pytest.raises(KeyboardInterrupt, match="configs\\[0\\]"):
        sweep([cfg], n_replicas=3, block_size=1)


# ----------------------------------------------------------------------------------------
# Dask
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip(
        "dask.distributed", reason="dask.distributed is not installed (pip install 'dask[distributed]'): "
                                   "skipping the cluster tests of sweep")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.CRITICAL) as cluster:
        with distributed.Client(cluster) as c:
            yield c


def test_cluster_equals_local(client, configs_and_reference):
    cfgs, ref = configs_and_reference
    out = sweep(cfgs, n_replicas=R, block_size=3, client=client)
    for a, b in zip(out, ref):
        assert_same(a, b)
    assert_same(sweep(cfgs[0], n_replicas=R, client=client), ref[0])     # default: a block per worker thread
    with pytest.raises(ValueError, match="loss"):                        # a worker's error reaches the caller
        sweep([dict(cfgs[0], loss="l1")], n_replicas=2, client=client)


def _sweep_tasks(dask_scheduler):
    return {str(k): (ts.state, ts.processing_on.address if ts.processing_on else None)
            for k, ts in dask_scheduler.tasks.items() if str(k).startswith("dynclip-sweep-")}


def _starts(dask_scheduler, key):
    """How many times the scheduler sent ``key`` to a worker."""
    return sum(1 for t in dask_scheduler.transition_log if str(t[0]) == key and t[2] == "processing")


def test_worker_killed_mid_sweep(client):
    """SIGKILL the worker running a block: the cluster recomputes it and the result is still exact."""
    X, Y = dc.data.d64("light")
    cfg = dict(net=dc.mlp([2, 8, 1]), X=X, Y=Y, rule=C.classic(0.5), schedule=S.inverse(1.0, 10.0),
               n_steps=4_000_000, seed=3, batch_size=2, record_every=500_000)    # ~4 s per one-replica block
    n, bs = 3, 1
    pids0 = client.run(os.getpid)
    out, err = [], []

    def run():
        try:
            out.append(sweep([cfg], n_replicas=n, block_size=bs, client=client)[0])
        except BaseException as e:   # pragma: no cover - reported below
            err.append(e)

    th = threading.Thread(target=run)
    th.start()
    victim = None
    t0 = time.monotonic()
    while victim is None and time.monotonic() - t0 < 30:
        busy = [(k, w) for k, (st, w) in client.run_on_scheduler(_sweep_tasks).items() if st == "processing" and w]
        if busy:
            key, victim = busy[0]
        else:
            time.sleep(0.05)
    assert victim is not None, "no block started on the cluster"
    time.sleep(0.5)                  # well inside the ~4 s block
    assert th.is_alive(), "the sweep finished before a worker could be killed: make the blocks longer"
    os.kill(pids0[victim], signal.SIGKILL)
    th.join(120)
    assert not th.is_alive() and not err, err
    # the worker did die (its nanny started a new process)
    client.wait_for_workers(2, timeout=60)
    assert pids0[victim] not in client.run(os.getpid).values()
    assert client.run_on_scheduler(_starts, key=key) == 2       # the lost block was computed again
    assert_same(out[0], _direct(cfg, n))
