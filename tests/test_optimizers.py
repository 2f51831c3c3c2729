"""Momentum, Adam and weight decay: replay = NumPy twin, = torch itself, checkpoints, threads, sweep,
bad input; the default (plain SGD) unchanged."""
import numpy as np
import numba
import pytest

import dynclip as dc
from dynclip import clipping as C, schedules as S, optimizers as O
from dynclip import engine
from conftest import rule_dict
import reference as ref

WD = 0.3      # weight decay of the *_wd optimisers: large enough to move a short run visibly
OPTS = {"momentum": O.momentum(0.9), "nesterov": O.momentum(0.9, nesterov=True),
        "adam": O.adam(0.9, 0.999, 1e-8), "adam_fast": O.adam(0.5, 0.9, 1e-3),
        "sgd_wd": O.sgd(weight_decay=WD), "momentum_wd": O.momentum(0.9, weight_decay=WD),
        "nesterov_wd": O.momentum(0.9, nesterov=True, weight_decay=WD), "adam_wd": O.adam(0.9, 0.999, 1e-8, WD)}


def _twin(opt):
    return ref.Optimizer(O.OptKind(opt.kind).name, beta=opt.beta, nesterov=opt.nesterov,
                         beta1=opt.beta1, beta2=opt.beta2, eps=opt.eps, weight_decay=opt.weight_decay)


def _problem(seed=0, N=30, widths=(3, 5, 4, 2)):
    rng = np.random.default_rng(seed)
    net = dc.mlp(list(widths), activation="tanh")
    return net, rng.normal(size=(N, widths[0])), rng.normal(size=(N, widths[-1])) * 2


def _replay(opt, rule, B, T=25, R=2, clip_per="batch", loss="mse", project_radius=np.inf, alrc=None, seed=0,
            sched=S.inverse(0.2, 2.0)):
    net, X, Y = _problem(seed)
    idx = np.random.default_rng(1).integers(0, len(X), size=(R, T, B))
    th0 = np.stack([dc.init_params(net, 10 + r) for r in range(R)])
    res = dc.simulate(net, X, Y, rule, sched, n_steps=T, seed=0, batch_size=B, n_replicas=R, theta0=th0,
                      indices=idx, clip_per=clip_per, loss=loss, record_every=1, record_theta=True,
                      project_radius=project_radius, optimizer=opt)
    for r in range(R):
        path = ref.sgd(list(net.widths), "tanh", th0[r], X, Y, loss, rule_dict(rule), sched.values(0, T), idx[r],
                       clip_per=clip_per, project_radius=project_radius, alrc=alrc, optimizer=_twin(opt))
        assert np.all(np.isfinite(path))
        np.testing.assert_allclose(res.theta[r], path, rtol=1e-12, atol=1e-12)
    return res


@pytest.mark.parametrize("opt", list(OPTS), ids=str)
@pytest.mark.parametrize("rule", [C.classic(3.0, "torch"), C.adaptive(1.5, 0.1), C.none()], ids=lambda r: r.describe())
@pytest.mark.parametrize("B", [1, 4])
def test_replay_equals_numpy_twin(opt, rule, B):
    res = _replay(OPTS[opt], rule, B)
    if rule.kind != C.ClipKind.none:        # the clipped branch is exercised, and so is the unclipped one
        assert 0 < res.clip_fraction.mean() < 1


@pytest.mark.parametrize("opt", ["momentum", "adam", "sgd_wd"])
def test_replay_per_sample_alrc_and_projection(opt):
    """Clipping comes first for every path of the engine: per-sample clipping, ALRC, projection after the step."""
    _replay(OPTS[opt], C.layerwise(0.3, 0.1), 3, clip_per="sample")
    a = dict(n_sigma=1.0, beta1=0.9, beta2=0.9, mu1=2.0, mu2=8.0, variant="paper")
    res = _replay(OPTS[opt], C.alrc(**a), 4, T=40, loss="quartic", alrc=a, seed=2, sched=S.constant(0.002))
    assert 0 < res.clip_fraction.mean() < 1
    net, X, _ = _problem()
    radius = 0.9 * np.linalg.norm(dc.init_params(net, 10))
    res = _replay(OPTS[opt], C.classic(0.5), 2, project_radius=radius)
    norms = np.linalg.norm(res.theta[:, 1:], axis=2)
    assert np.all(norms <= radius * (1 + 1e-12)) and np.any(norms >= radius * (1 - 1e-12))   # projection was active


def test_momentum_zero_is_sgd_bit_for_bit():
    """beta = 0: buf = u at every step, so the step is a(k) u exactly as SGD's."""
    net, X, Y = _problem(1)
    kw = dict(n_steps=300, seed=7, batch_size=2, n_replicas=3, record_every=50)
    a = dc.simulate(net, X, Y, C.classic(0.5), S.inverse(1.0, 5.0), **kw)
    b = dc.simulate(net, X, Y, C.classic(0.5), S.inverse(1.0, 5.0), **kw, optimizer=O.momentum(0.0))
    np.testing.assert_array_equal(a.theta_final, b.theta_final)


def test_default_is_sgd_bit_for_bit():
    """optimizer=None, sgd() and no argument give the same bits (the engine's own SGD step)."""
    net, X, Y = _problem(1)
    kw = dict(n_steps=300, seed=7, batch_size=2, n_replicas=3, record_every=50, project_radius=2.0)
    runs = [dc.simulate(net, X, Y, C.adaptive(0.3, 0.1), S.inverse(1.0, 5.0), **kw, **extra)
            for extra in ({}, {"optimizer": None}, {"optimizer": O.sgd()}, {"optimizer": O.sgd(weight_decay=0.0)})]
    for r in runs[1:]:
        for f in ("theta_final", "loss", "displacement", "update_sum", "clip_factor"):
            np.testing.assert_array_equal(getattr(runs[0], f), getattr(r, f), err_msg=f)
        assert r.config["optimizer_name"] == "sgd()"


@pytest.mark.parametrize("opt", ["momentum_wd", "adam_wd", "sgd_wd"])
def test_weight_decay_acts(opt):
    """The runs with and without the decay differ (the term is not dropped on some path)."""
    net, X, Y = _problem(1)
    kw = dict(n_steps=200, seed=7, batch_size=2, n_replicas=2, record_every=50)
    with_wd, without = (dc.simulate(net, X, Y, C.classic(0.5), S.inverse(0.3, 5.0), **kw, optimizer=o)
                        for o in (OPTS[opt], OPTS[opt]._replace(weight_decay=0.0)))
    assert np.linalg.norm(with_wd.theta_final - without.theta_final) > 1e-2


def test_momentum_zero_with_weight_decay_is_sgd_with_it_bit_for_bit():
    """beta = 0: buf = u + mu theta at every step, the step of sgd(weight_decay=mu) exactly."""
    net, X, Y = _problem(1)
    kw = dict(n_steps=300, seed=7, batch_size=2, n_replicas=3, record_every=50)
    a = dc.simulate(net, X, Y, C.classic(0.5), S.inverse(1.0, 5.0), **kw, optimizer=O.sgd(weight_decay=WD))
    b = dc.simulate(net, X, Y, C.classic(0.5), S.inverse(1.0, 5.0), **kw, optimizer=O.momentum(0.0, weight_decay=WD))
    np.testing.assert_array_equal(a.theta_final, b.theta_final)


# ----------------------------------------------------------------------------------------
# torch itself
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("opt", ["momentum", "nesterov", "adam", "adam_fast", "sgd_wd", "momentum_wd", "nesterov_wd",
                                 "adam_wd"])
@pytest.mark.parametrize("loss", ["half_mse", "mse"])
@pytest.mark.parametrize("B", [1, 4])
def test_equals_torch(opt, loss, B):
    """clip_grad_norm_ then torch.optim.SGD / Adam (weight_decay: torch's, after clipping) with lr = a(k),
    float64, same samples and start."""
    torch = pytest.importorskip("torch")
    widths, lam, T = [2, 5, 1], 0.6, 60
    rng = np.random.default_rng(5)
    X = rng.normal(size=(40, 2))
    Y = np.sin(X.sum(axis=1)) + 0.1 * rng.normal(size=40)
    net = dc.mlp(widths, activation="tanh")
    th0 = dc.init_params(net, 4)
    idx = rng.integers(0, len(X), size=(1, T, B))
    sched = S.inverse(0.1, 1.0)
    o = OPTS[opt]
    res = dc.simulate(net, X, Y, C.classic(lam, "torch"), sched, n_steps=T, seed=0, batch_size=B, theta0=th0,
                      indices=idx, loss=loss, optimizer=o)
    assert 0 < res.clip_fraction[0] < 1

    # torch: the flat layout is W_l (out, in) in C order, then b_l, for each layer
    params, off = [], 0
    for ni, no in zip(widths[:-1], widths[1:]):
        W = torch.tensor(th0[off:off + no * ni].reshape(no, ni), dtype=torch.float64, requires_grad=True)
        off += no * ni
        b = torch.tensor(th0[off:off + no], dtype=torch.float64, requires_grad=True)
        off += no
        params += [W, b]
    if o.kind == O.OptKind.adam:
        topt = torch.optim.Adam(params, lr=1.0, betas=(o.beta1, o.beta2), eps=o.eps, weight_decay=o.weight_decay)
    else:
        topt = torch.optim.SGD(params, lr=1.0, momentum=o.beta, nesterov=o.nesterov, weight_decay=o.weight_decay)
    Xt, Yt = torch.tensor(X), torch.tensor(Y).reshape(-1, 1)
    a = sched.values(0, T)
    for k in range(T):
        rows = torch.tensor(idx[0, k])
        h = torch.tanh(Xt[rows] @ params[0].T + params[1])
        e = h @ params[2].T + params[3] - Yt[rows]
        L = (e ** 2).sum(dim=1).mean() * (0.5 if loss == "half_mse" else 1.0)
        topt.zero_grad()
        L.backward()
        torch.nn.utils.clip_grad_norm_(params, lam)
        for g in topt.param_groups:
            g["lr"] = float(a[k])
        topt.step()
    th_torch = np.concatenate([p.detach().numpy().ravel() for p in params])
    assert np.linalg.norm(th_torch - th0) > 0.05          # the run moved
    np.testing.assert_allclose(res.theta_final[0], th_torch, rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------------------
# state: checkpoints, threads, sweep
# ----------------------------------------------------------------------------------------
def _args(opt):
    net, X, Y = _problem(1)
    return (net, X, Y, C.classic(0.5), S.inverse(0.3, 5.0)), dict(
        n_steps=600, seed=7, batch_size=2, n_replicas=3, record_every=50, optimizer=opt)


@pytest.mark.parametrize("opt", ["nesterov", "adam"])
def test_resume_mid_run_bit_identical(opt, tmp_path, monkeypatch):
    pos, kw = _args(OPTS[opt])
    whole = dc.simulate(*pos, **kw)
    ck, mid = tmp_path / "ck.npz", tmp_path / "mid.npz"
    save = engine._save_checkpoint

    def keep_first(path, st, config, k):          # keep a copy of the first (mid-run) checkpoint
        save(path, st, config, k)
        if not mid.exists():
            mid.write_bytes(ck.read_bytes())
    monkeypatch.setattr(engine, "_save_checkpoint", keep_first)
    dc.simulate(*pos, **kw, checkpoint=ck, checkpoint_every=250)
    from dynclip.results import read_npz
    arrays, meta = read_npz(mid, "SACheckpoint")
    assert meta["k"] == 250 and np.all(arrays["opt_t"] == 250) and np.any(arrays["opt_m"] != 0)
    resumed = dc.simulate(*pos, **kw, resume=mid)
    for f in ("theta_final", "loss", "grad_norm", "displacement", "update_sum", "max_displacement"):
        np.testing.assert_array_equal(getattr(whole, f), getattr(resumed, f), err_msg=f)
    other = OPTS["momentum"] if opt == "adam" else OPTS["adam"]
    for bad in (other, None, OPTS[opt]._replace(weight_decay=1e-3)):
        with pytest.raises(ValueError, match="other arguments"):
            dc.simulate(*pos, **dict(kw, optimizer=bad), resume=mid)


@pytest.mark.parametrize("opt", ["momentum", "adam"])
def test_threads_bit_identical(opt):
    pos, kw = _args(OPTS[opt])
    kw["n_replicas"] = 8
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = dc.simulate(*pos, **kw)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = dc.simulate(*pos, **kw)
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(one.theta_final, two.theta_final)
    np.testing.assert_array_equal(one.loss, two.loss)


def test_sweep_passes_optimizer():
    pos, kw = _args(OPTS["adam"])
    kw.pop("n_replicas")
    cfg = dict(zip(("net", "X", "Y", "rule", "schedule"), pos), **kw)
    sw = dc.sweep([cfg, dict(cfg, optimizer=None)], n_replicas=5, block_size=2)
    alone = dc.simulate(*pos, **kw, n_replicas=5)
    np.testing.assert_array_equal(sw[0].theta_final, alone.theta_final)
    assert sw[0].config["optimizer"] == O.adam(0.9, 0.999, 1e-8).as_dict()
    assert not np.array_equal(sw[0].theta_final, sw[1].theta_final)


# ----------------------------------------------------------------------------------------
# data and bad input
# ----------------------------------------------------------------------------------------
def test_records_and_round_trip():
    for o in [O.sgd()] + list(OPTS.values()):
        assert O.Optimizer.from_dict(o.as_dict()) == o
        assert O.check_optimizer(o) == o
    assert O.momentum(0.9, True).describe() == "momentum(beta=0.9, nesterov=True)"
    assert O.adam().describe() == "adam(beta1=0.9, beta2=0.999, eps=1e-08)"
    assert O.sgd().describe() == "sgd()" and O.check_optimizer(None) == O.sgd()
    assert O.sgd(weight_decay=1e-3).describe() == "sgd(weight_decay=0.001)"
    assert O.momentum(0.9, weight_decay=0.01).describe() == "momentum(beta=0.9, nesterov=False, weight_decay=0.01)"
    assert O.adam(weight_decay=0.5).describe() == "adam(beta1=0.9, beta2=0.999, eps=1e-08, weight_decay=0.5)"
    assert O.sgd().as_dict()["weight_decay"] == 0.0 and O.adam(weight_decay=2).as_dict()["weight_decay"] == 2.0
    # fields a kind does not use are reset
    assert O.check_optimizer(O.Optimizer(int(O.OptKind.sgd), beta=0.5)) == O.sgd()


@pytest.mark.parametrize("call, match", [
    (lambda: O.momentum(1.0), r"beta must be a number in \[0, 1\)"),
    (lambda: O.momentum(-0.1), r"beta must be a number in \[0, 1\)"),
    (lambda: O.momentum(float("nan")), "beta must be"),
    (lambda: O.momentum("0.9"), "beta must be"),
    (lambda: O.momentum(0.9, nesterov="yes"), "nesterov must be True or False"),
    (lambda: O.momentum(0.0, nesterov=True), "nesterov=True needs beta > 0"),
    (lambda: O.adam(beta1=1.0), r"beta1 must be a number in \[0, 1\)"),
    (lambda: O.adam(beta2=1.5), r"beta2 must be a number in \[0, 1\)"),
    (lambda: O.adam(eps=0.0), "eps must be a finite number > 0"),
    (lambda: O.adam(eps=-1e-8), "eps must be a finite number > 0"),
    (lambda: O.adam(eps=np.inf), "eps must be a finite number > 0"),
    (lambda: O.sgd(weight_decay=-1e-3), "weight_decay must be a finite number >= 0"),
    (lambda: O.sgd(weight_decay=np.inf), "weight_decay must be a finite number >= 0"),
    (lambda: O.momentum(0.9, weight_decay=float("nan")), "weight_decay must be a finite number >= 0"),
    (lambda: O.adam(weight_decay="0.1"), "weight_decay must be a finite number >= 0"),
    (lambda: O.check_optimizer(O.Optimizer(int(O.OptKind.sgd), weight_decay=-1.0)),
     "optimizer is not a valid Optimizer .*weight_decay"),
    (lambda: O.check_optimizer("adam"), "optimizer must be None or an Optimizer"),
    (lambda: O.check_optimizer(O.Optimizer(7)), "optimizer is not a valid Optimizer"),
    (lambda: O.check_optimizer(O.Optimizer(int(O.OptKind.adam), beta1=2.0, beta2=0.9, eps=1e-8)),
     "optimizer is not a valid Optimizer .*beta1"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_simulate_refuses_bad_optimizer():
    pos, kw = _args(None)
    with pytest.raises(ValueError, match="optimizer must be None or an Optimizer"):
        dc.simulate(*pos, **dict(kw, optimizer="adam"))
