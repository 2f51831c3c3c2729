"""Nothing lost on interruption: checkpoints are atomic, resume is bit-identical, Ctrl-C returns a partial result."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import dynclip as dc
from dynclip import clipping as C, schedules as S

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETUP = """
import numpy as np, dynclip as dc
from dynclip import clipping as C, schedules as S
X, Y = dc.data.d64("light")
net = dc.mlp([2, 8, 1])
kw = dict(n_steps={T}, seed=3, n_replicas=4, batch_size=2, record_every=500, track_noise=False)
"""


def _args(T):
    X, Y = dc.data.d64("light")
    return (dc.mlp([2, 8, 1]), X, Y, C.classic(0.5), S.inverse(1.0, 10.0)), dict(
        n_steps=T, seed=3, n_replicas=4, batch_size=2, record_every=500)


def _same(a, b):
    for name in ("theta_final", "step", "time", "loss", "grad_norm", "clip_factor", "clip_fraction",
                 "displacement", "max_displacement", "update_sum", "diverged", "blowup_step"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_checkpoint_resume_in_process(tmp_path):
    pos, kw = _args(3000)
    whole = dc.simulate(*pos, **kw)
    ck = tmp_path / "ck.npz"
    dc.simulate(*pos, **dict(kw, n_steps=3000), checkpoint=ck, checkpoint_every=700)
    assert ck.exists() and not list(tmp_path.glob("*.tmp*"))
    again = dc.simulate(*pos, **kw, resume=ck)          # a finished checkpoint resumes to the end at once
    _same(whole, again)
    with pytest.raises(ValueError, match="other arguments"):
        dc.simulate(*pos, **dict(kw, seed=4), resume=ck)
    with pytest.raises(ValueError, match="does not exist"):
        dc.simulate(*pos, **kw, resume=tmp_path / "nothing.npz")
    (tmp_path / "bad.npz").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError):
        dc.simulate(*pos, **kw, resume=tmp_path / "bad.npz")


def test_killed_subprocess_resumes_bit_identical(tmp_path):
    """Kill a run mid-way (SIGKILL, no cleanup), resume from its last checkpoint, compare exactly."""
    T = 400000
    ck = tmp_path / "ck.npz"
    code = textwrap.dedent(SETUP.format(T=T)) + textwrap.dedent(f"""
        import dynclip.engine as E
        E._CHUNK_WORK = 2e5
        dc.simulate(net, X, Y, C.classic(0.5), S.inverse(1.0, 10.0), **kw,
                    checkpoint={str(ck)!r}, checkpoint_every=2000, resume={str(ck)!r})
    """)
    p = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    try:
        t0 = time.time()
        while not ck.exists() and time.time() - t0 < 240 and p.poll() is None:
            time.sleep(0.05)
        time.sleep(0.3)
        assert p.poll() is None, "the run finished before it could be killed"
        p.kill()
    finally:
        p.wait()
    from dynclip.results import read_npz
    _, meta = read_npz(ck, "SACheckpoint")
    assert 0 < meta["k"] < T
    pos, kw = _args(T)
    resumed = dc.simulate(*pos, **kw, resume=ck, checkpoint=ck, checkpoint_every=2000)
    whole = dc.simulate(*pos, **kw)
    _same(whole, resumed)


def test_ctrl_c_returns_partial(tmp_path):
    T = 50_000_000      # far more than runs before the interrupt, however fast the engine
    out = tmp_path / "partial.npz"
    ck = tmp_path / "ck.npz"
    # A shell starts background jobs with SIGINT ignored, and Python keeps an inherited SIG_IGN:
    # the child restores the default handler, as an interactive session has it.
    code = textwrap.dedent(SETUP.format(T=T)) + textwrap.dedent(f"""
        import dynclip.engine as E, sys, signal
        signal.signal(signal.SIGINT, signal.default_int_handler)
        E._CHUNK_WORK = 2e5
        dc.simulate(net, X, Y, C.classic(0.5), S.inverse(1.0, 10.0), **dict(kw, n_steps=10))   # compile first
        print("ready", flush=True)
        res = dc.simulate(net, X, Y, C.classic(0.5), S.inverse(1.0, 10.0), **kw, checkpoint={str(ck)!r},
                          checkpoint_every=100000)
        res.save({str(out)!r})
        print("partial" if res.partial else "complete", res.step[-1], flush=True)
    """)
    p = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        deadline = time.time() + 120      # interrupt once the run is under way (first checkpoint written)
        while not ck.exists() and time.time() < deadline and p.poll() is None:
            time.sleep(0.02)
        assert ck.exists(), "no checkpoint within 120 s of the start of the run"
        p.send_signal(signal.SIGINT)
        try:
            stdout, stderr = p.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            pytest.fail("the run did not stop within 240 s of SIGINT: the interrupt was not delivered or not handled")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, stderr
    assert stdout.startswith("partial"), stdout
    assert "interrupted at step" in stderr
    res = dc.SAResult.load(out)
    assert res.partial and res.step[-1] < T and np.all(np.isfinite(res.loss))
    from dynclip.results import read_npz
    _, meta = read_npz(ck, "SACheckpoint")
    assert meta["k"] > res.step[-1] - 500   # the state at interruption was saved too
