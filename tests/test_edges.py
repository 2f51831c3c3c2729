"""Nothing lost at the edges: bad checkpoint paths, failed writes, closed pipes, signals, tampered
files and absurd sizes never cost a finished computation, and never hang or mislabel an error."""
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import numpy as np
import pytest

import dynclip as dc
from dynclip import clipping as C, schedules as S
from dynclip.results import atomic_savez, read_npz

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETUP = """
import numpy as np, dynclip as dc, sys, signal
from dynclip import clipping as C, schedules as S
X, Y = dc.data.d64("light")
net = dc.mlp([2, 8, 1])
kw = dict(n_steps={T}, seed=3, n_replicas=4, batch_size=2, record_every=500)
pos = (net, X, Y, C.classic(0.5), S.inverse(1.0, 10.0))
"""


def _args(T, **more):
    X, Y = dc.data.d64("light")
    return (dc.mlp([2, 8, 1]), X, Y, C.classic(0.5), S.inverse(1.0, 10.0)), dict(
        dict(n_steps=T, seed=3, n_replicas=4, batch_size=2, record_every=500), **more)


def _child(body, T, **popen):
    code = textwrap.dedent(SETUP.format(T=T)) + textwrap.dedent(body)
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, **popen)


def _ck_step(ck):
    """The step a checkpoint file was written at."""
    return read_npz(ck, "SACheckpoint")[1]["k"]


def _same(a, b):
    for name in ("theta_final", "step", "time", "loss", "grad_norm", "clip_factor", "clip_fraction",
                 "displacement", "max_displacement", "update_sum", "diverged", "blowup_step"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


# ----------------------------------------------------------------------------------------
# 1. checkpoint paths: checked up front; a write that fails later warns and keeps the result
# ----------------------------------------------------------------------------------------
def test_checkpoint_path_checked_before_the_run(tmp_path):
    pos, kw = _args(10**9)           # would run for hours: the refusal must come first
    afile = tmp_path / "afile"
    afile.write_text("x")
    for bad, what in [(tmp_path, "folder"), (afile / "ck.npz", "does not exist"),
                      (tmp_path / "no" / "ck.npz", "does not exist")]:
        t0 = time.perf_counter()
        with pytest.raises(ValueError, match=f"checkpoint.*{what}"):
            dc.simulate(*pos, **kw, checkpoint=bad)
        assert time.perf_counter() - t0 < 5
    if os.geteuid() != 0:            # root writes into a read-only folder: covered by the cases above
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(ValueError, match="checkpoint.*cannot write"):
                dc.simulate(*pos, **kw, checkpoint=ro / "ck.npz")
        finally:
            ro.chmod(0o700)
    with pytest.raises(TypeError, match="checkpoint"):
        dc.simulate(*pos, **kw, checkpoint=3.5)


def test_bytes_checkpoint_path(tmp_path):
    pos, kw = _args(2000)
    ck = os.fsencode(str(tmp_path / "ck.npz"))
    whole = dc.simulate(*pos, **kw, checkpoint=ck, checkpoint_every=700)
    assert os.path.exists(ck)
    _same(whole, dc.simulate(*pos, **kw, resume=ck))


def test_failed_checkpoint_write_keeps_the_result(tmp_path):
    """A file-size limit makes every checkpoint write fail (EFBIG), as a full disk would: the run warns
    and returns its result."""
    ck = tmp_path / "ck.npz"
    out = tmp_path / "out.npy"
    p = _child(f"""
        import resource, warnings
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            res = dc.simulate(*pos, **kw, checkpoint={str(ck)!r}, checkpoint_every=500)
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
        np.save({str(out)!r}, res.theta_final)
        print(len(w), w[0].category.__name__, str(w[0].message))
    """, 2000, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 0, stderr
    n, cat, msg = stdout.split(" ", 2)
    assert int(n) >= 1 and cat == "RuntimeWarning" and str(ck) in msg and "checkpoint" in msg
    pos, kw = _args(2000)
    np.testing.assert_array_equal(np.load(out), dc.simulate(*pos, **kw).theta_final)
    assert not ck.exists() and not [f for f in os.listdir(tmp_path) if f.startswith(".")]


# ----------------------------------------------------------------------------------------
# 9. files: usual permissions, fsync before the rename, temp files of killed writers removed
# ----------------------------------------------------------------------------------------
def test_saved_file_mode_follows_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_savez(tmp_path / "a.npz", {"x": np.arange(3)}, {"format": "T"})
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.npz").st_mode) == 0o644


def test_fsync_before_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    atomic_savez(tmp_path / "a.npz", {"x": np.arange(3)}, {"format": "T"})
    assert events[:2] == ["fsync", "replace"]


def test_temp_files_of_killed_writers_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    stale = tmp_path / f".r.npz.{host}-{dead.pid}-0123abcd.dynclip-tmp"
    live = tmp_path / f".r.npz.{host}-{os.getpid()}-0123abcd.dynclip-tmp"     # a writer that still runs
    other = tmp_path / f".q.npz.{host}-{dead.pid}-0123abcd.dynclip-tmp"      # another file's
    for f in (stale, live, other):
        f.write_bytes(b"\0" * 100)
    atomic_savez(tmp_path / "r.npz", {"x": np.arange(3)}, {"format": "T"})
    assert not stale.exists() and live.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == ["r.npz"]


def test_kill_mid_write_leaves_no_npz_litter(tmp_path):
    """SIGKILL a process while it writes a large file: the old file stays readable, the temp file is
    hidden (not matched by *.npz) and removed by the next write."""
    target = tmp_path / "big.npz"
    atomic_savez(target, {"x": np.zeros(3)}, {"format": "T"})
    code = ("import numpy as np\nfrom dynclip.results import atomic_savez\nprint('go', flush=True)\n"
            f"while True: atomic_savez({str(target)!r}, {{'x': np.zeros(30_000_000)}}, {{'format': 'T'}})\n")
    p = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "go"
        deadline = time.time() + 60
        while [f.name for f in tmp_path.iterdir()] == ["big.npz"] and time.time() < deadline:   # a temp file appears
            time.sleep(0.01)
        p.kill()
    finally:
        p.wait()
    assert sorted(f.name for f in tmp_path.glob("*.npz")) == ["big.npz"]
    with np.load(target) as z:
        assert z["x"].shape in ((3,), (30_000_000,))
    atomic_savez(target, {"x": np.zeros(3)}, {"format": "T"})
    assert [f.name for f in tmp_path.iterdir()] == ["big.npz"]


# ----------------------------------------------------------------------------------------
# 3. progress output never ends a computation
# ----------------------------------------------------------------------------------------
def test_progress_on_a_pipe_that_closes():
    """The reader of stderr goes away while the bar is drawn: the run finishes and returns its result."""
    T = 3_000_000
    p = _child(f"""
        import dynclip.engine as E
        E._CHUNK_WORK = 2e5
        dc.simulate(*pos, **dict(kw, n_steps=10))                     # compile first
        print("ready", flush=True)
        res = dc.simulate(*pos, **kw, progress=True)
        print("done", res.partial, res.step[-1], flush=True)
    """, T, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        seen = p.stderr.read(1)            # the bar has started drawing
        p.stderr.close()                   # ... and its reader goes away
        out = p.stdout.read()
        p.wait(timeout=300)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert seen and out.split() == ["done", "False", str(T)], out


def test_closed_stderr():
    """``2>&-`` (daemons): sys.stderr is None; simulate and sweep run, with or without a progress bar."""
    code = textwrap.dedent(SETUP.format(T=200)) + textwrap.dedent("""
        assert sys.stderr is None
        from dynclip.sweep import sweep
        for progress in (None, True, False):
            dc.simulate(*pos, **kw, progress=progress)
            cfg = dict(zip(("net", "X", "Y", "rule", "schedule"), pos), n_steps=50, seed=0)
            sweep([cfg], n_replicas=2, block_size=1, progress=progress)
        print("ok", flush=True)
    """)
    out = subprocess.run(["sh", "-c", 'exec "$0" -c "$1" 2>&-', sys.executable, code], cwd=ROOT,
                         stdout=subprocess.PIPE, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out


# ----------------------------------------------------------------------------------------
# 4. SIGTERM: stop like Ctrl-C, save the state, then end as asked
# ----------------------------------------------------------------------------------------
def _run_until_checkpoint(ck, body, T=50_000_000):
    p = _child(f"""
        import dynclip.engine as E
        E._CHUNK_WORK = 2e5
        dc.simulate(*pos, **dict(kw, n_steps=10))                     # compile first
        {body}
    """, T, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not ck.exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.02)
    assert ck.exists(), "no checkpoint within 120 s"
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    try:
        stdout, stderr = p.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        pytest.fail("the run did not stop within 120 s of SIGTERM")
    return p.returncode, stdout, stderr


def test_sigterm_saves_the_state_then_ends(tmp_path):
    ck = tmp_path / "ck.npz"
    ce = 100_003
    rc, stdout, stderr = _run_until_checkpoint(ck, f"""
        dc.simulate(*pos, **kw, checkpoint={str(ck)!r}, checkpoint_every={ce})
        print("returned", flush=True)
    """)
    assert rc == -signal.SIGTERM and "returned" not in stdout, (rc, stdout, stderr)
    k = _ck_step(ck)
    # the file holds the state at the step where the run stopped (a SIGTERM that lands while a periodic
    # checkpoint is written stops the run right at that checkpoint's step, so k may be a multiple of ce)
    assert k > ce, k
    assert f"at step {k} of 50000000 (SIGTERM)" in stderr and "state saved" in stderr


def test_sigterm_with_a_handler_of_the_user(tmp_path):
    """The user's own SIGTERM handler runs after the state is saved; simulate returns the partial result
    and leaves the user's handlers installed."""
    ck = tmp_path / "ck.npz"
    rc, stdout, stderr = _run_until_checkpoint(ck, f"""
        mine = lambda s, f: print("handler", flush=True)
        signal.signal(signal.SIGTERM, mine)
        sigint = signal.getsignal(signal.SIGINT)     # Python's default, or SIG_IGN when started in the background
        res = dc.simulate(*pos, **kw, checkpoint={str(ck)!r}, checkpoint_every=100_003)
        print("partial" if res.partial else "complete", res.step[-1], flush=True)
        print(signal.getsignal(signal.SIGTERM) is mine, signal.getsignal(signal.SIGINT) is sigint)
    """)
    assert rc == 0, stderr
    lines = stdout.split("\n")
    assert lines[0] == "handler" and lines[1].startswith("partial ") and lines[2] == "True True", stdout


def test_handlers_restored_after_simulate():
    pos, kw = _args(100)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    dc.simulate(*pos, **kw)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


# ----------------------------------------------------------------------------------------
# 2, 7. sizes: checked against memory before anything is allocated; no copy of the records
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, names", [
    (dict(n_steps=10**12), ["n_steps"]),
    (dict(n_replicas=10**9), ["n_replicas"]),
    (dict(n_replicas=10**4, n_steps=10**6, record_every=1, record_theta=True),
     ["record_theta", "n_replicas", "n_steps", "record_every"]),
])
def test_absurd_sizes_refused_at_once(kw, names):
    """In a subprocess with a time limit: before, n_replicas=10**9 spent hours seeding replicas, and
    n_steps=10**12 failed in NumPy without naming the argument."""
    code = textwrap.dedent(SETUP.format(T=10)) + textwrap.dedent(f"""
        import time
        from dynclip import _memory
        if _memory.available() is None:
            print("unknown"); sys.exit()
        t0 = time.perf_counter()
        try:
            dc.simulate(*pos, **dict(kw, **{kw!r}))
        except ValueError as e:
            print(round(time.perf_counter() - t0, 3), str(e))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, timeout=120)
    if out.stdout.strip() == "unknown":
        pytest.skip("available memory unknown on this system")
    assert out.returncode == 0, out.stderr
    seconds, msg = out.stdout.split(" ", 1)
    assert float(seconds) < 1.0 and "memory" in msg and all(f"{n}=" in msg for n in names), msg


def test_no_copy_of_the_records(tmp_path):
    """A record_theta run (and its resume) allocates the theta records once: building the result takes
    views (before: a copy, twice the memory; resume: a fresh state and the file's)."""
    import tracemalloc
    pos, kw = _args(40_000, record_every=1, record_theta=True)
    dc.simulate(*pos, **dict(kw, n_steps=10))
    rec_theta = 4 * 40_001 * pos[0].n_params * 8
    dc.simulate(*pos, **kw, checkpoint=tmp_path / "ck.npz", checkpoint_every=40_000)
    tracemalloc.start()
    try:
        res = dc.simulate(*pos, **kw)
        peak = tracemalloc.get_traced_memory()[1]
        del res
        tracemalloc.reset_peak()
        again = dc.simulate(*pos, **kw, resume=tmp_path / "ck.npz")
        peak_resume = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert again.theta.shape == (4, 40_001, pos[0].n_params)
    assert peak < 1.5 * rec_theta and peak_resume < 1.5 * rec_theta, (peak, peak_resume, rec_theta)


# ----------------------------------------------------------------------------------------
# 5, 6. tampered, foreign and hostile files
# ----------------------------------------------------------------------------------------
def _rewrite(src, dst, meta=None, **arrays):
    """Copy an npz file, changing its header (a function of the header) and some arrays (None: drop)."""
    with np.load(src) as z:
        members = {k: z[k] for k in z.files}
    head = json.loads(members["__meta__"].tobytes())
    if meta is not None:
        head = meta(head)
    members.update(arrays)
    members = {k: v for k, v in members.items() if v is not None}
    members["__meta__"] = np.frombuffer(json.dumps(head).encode(), dtype=np.uint8)
    np.savez(dst, **members)
    return dst


@pytest.fixture(scope="module")
def checkpoint_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("ck")
    X, Y = dc.data.d64("light")
    flow = dc.ode.integrate(dc.mlp([2, 8, 1]), X, Y, C.classic(0.5), dc.init_params(dc.mlp([2, 8, 1]), 0),
                            dc.record_times(S.inverse(1.0, 10.0), 1000, 100)[1])
    pos, kw = _args(1000, record_every=100, theta0=dc.init_params(dc.mlp([2, 8, 1]), 0), reference=flow)
    whole = dc.simulate(*pos, **kw)
    ck = d / "ck.npz"
    dc.simulate(*pos, **dict(kw, n_steps=1000), checkpoint=ck, checkpoint_every=400)
    mid = d / "mid.npz"                           # the state at step 800 (the periodic checkpoint before the end)
    pos2, kw2 = pos, dict(kw)
    import dynclip.engine as E
    real = E._save_checkpoint
    try:
        E._save_checkpoint = lambda path, st, config, k: real(mid, st, config, k) if k == 800 else True
        dc.simulate(*pos2, **kw2, checkpoint=d / "unused.npz", checkpoint_every=400)
    finally:
        E._save_checkpoint = real
    return pos, kw, whole, mid, flow


def test_resume_checks_everything_it_depends_on(checkpoint_run, tmp_path):
    pos, kw, whole, mid, flow = checkpoint_run
    _same(whole, dc.simulate(*pos, **kw, resume=mid))
    other_flow = dc.FlowResult(t=flow.t, theta=flow.theta + 1e-3, loss=flow.loss, H_norm=flow.H_norm)
    with pytest.raises(ValueError, match="other arguments: reference differ"):
        dc.simulate(*pos, **dict(kw, reference=other_flow), resume=mid)
    with pytest.raises(ValueError, match="other arguments: batch_size, seed differ"):
        dc.simulate(*pos, **dict(kw, seed=4, batch_size=3), resume=mid)
    with pytest.raises(ValueError, match="other arguments: theta0 differ"):
        dc.simulate(*pos, **dict(kw, theta0=kw["theta0"] * 2), resume=mid)
    bad = tmp_path / "bad.npz"
    with np.load(mid) as z:
        st = {k: z[k] for k in z.files}
    for meta, arrays, match in [
        (lambda h: dict(h, k=400), {}, "header says step 400"),            # re-runs steps on a later state
        (lambda h: dict(h, k=True), {}, "'k' must be an integer"),
        (lambda h: dict(h, k=5000), {}, "step 5000"),
        (None, dict(rng=st["rng"].astype(np.int64)), "'rng' is <i8"),     # another random stream
        (None, dict(theta=st["theta"][:, :-1]), "'theta' is"),
        (None, dict(status=st["status"].astype(np.float64)), "'status' is <f8"),
        (None, dict(opt_t=None), "missing fields \\['opt_t'\\]"),
        (None, dict(extra=np.zeros(3)), "unknown fields \\['extra'\\]"),
        (None, dict(theta0=st["theta0"] + 1.0), "theta0 does not match"),
        (lambda h: dict(h, version="dynclip-result-v9"), {}, "format version"),
    ]:
        _rewrite(mid, bad, meta, **arrays)
        with pytest.raises(ValueError, match=match):
            dc.simulate(*pos, **kw, resume=bad)


def test_resource_errors_are_not_called_corruption(checkpoint_run, tmp_path, monkeypatch):
    """MemoryError or an I/O error while reading a good file is reported as such, never as a damaged
    file (which would invite deleting it)."""
    pos, kw, whole, mid, flow = checkpoint_run
    whole.save(tmp_path / "r.npz")
    real = np.lib.format.read_array
    for exc in (MemoryError("no memory"), OSError(5, "Input/output error")):
        def failing(*a, **k):
            if a[0].name != "__meta__.npy":
                raise exc
            return real(*a, **k)
        monkeypatch.setattr(np.lib.format, "read_array", failing)
        with pytest.raises(type(exc)):
            dc.simulate(*pos, **kw, resume=mid)
        with pytest.raises(type(exc)):
            dc.SAResult.load(tmp_path / "r.npz")
        monkeypatch.setattr(np.lib.format, "read_array", real)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    pos, kw = _args(300, record_every=100, record_theta=True, track_noise=True, batch_size=1)
    res = dc.simulate(*pos, **kw)
    p = tmp_path_factory.mktemp("saved") / "r.npz"
    res.save(p)
    return res, p


def test_load_checks_types_and_shapes(saved, tmp_path):
    res, p = saved
    back = dc.SAResult.load(p)
    for f in ("theta_final", "loss", "theta", "noise", "step", "diverged"):
        np.testing.assert_array_equal(getattr(back, f), getattr(res, f))
        assert getattr(back, f).dtype == getattr(res, f).dtype
    assert back.partial is False and back.config == res.config
    bad = tmp_path / "bad.npz"
    for meta, arrays, match in [
        (None, dict(loss=res.loss[:, :-1]), "'loss' is <f8 \\(4, 3\\), expected <f8 \\(4, 4\\)"),
        (None, dict(theta_final=np.array([["a"]])), "'theta_final' is <U1"),
        (None, dict(step=res.step.astype(np.float64)), "'step' is <f8"),
        (None, dict(diverged=res.diverged.astype(np.int8)), "'diverged' is"),
        (lambda h: dict(h, partial="false"), {}, "'partial' must be true or false"),
        (lambda h: dict(h, config=[1]), {}, "'config' must be an object"),
        (lambda h: dict(h, version="dynclip-result-v2"), {}, "format version 'dynclip-result-v2'"),
        (lambda h: dict(h, shape={"R": 4, "K": 4}), {}, "'shape'"),
        (lambda h: dict(h, shape={"R": 4, "K": 5, "P": res.theta_final.shape[1]}), {}, "'step' is"),
    ]:
        _rewrite(p, bad, meta, **arrays)
        with pytest.raises(ValueError, match=f"{bad} is not a valid dynclip SAResult file .*{match}"):
            dc.SAResult.load(bad)
    # a file written before the version was recorded: accepted when its layout is the current one
    legacy = _rewrite(p, tmp_path / "legacy.npz", lambda h: {k: v for k, v in h.items() if k not in ("version", "shape")})
    np.testing.assert_array_equal(dc.SAResult.load(legacy).theta, res.theta)
    _rewrite(legacy, bad, None, loss=res.loss[:, :-1])
    with pytest.raises(ValueError, match="'loss' is"):
        dc.SAResult.load(bad)


def test_flow_result_load_checks(tmp_path):
    net = dc.mlp([2, 1])
    flow = dc.ode.integrate(net, np.ones((3, 2)), np.zeros(3), C.none(), np.ones(3), [0.0, 0.5, 1.0])
    p = tmp_path / "f.npz"
    flow.save(p)
    back = dc.FlowResult.load(p)
    np.testing.assert_array_equal(back.theta, flow.theta)
    assert back.n_rhs == flow.n_rhs and back.partial is False
    for meta, arrays, match in [(lambda h: dict(h, n_rhs="12"), {}, "'n_rhs' must be an integer"),
                                (None, dict(t=flow.t[:-1]), "'t' is"),
                                (lambda h: dict(h, partial=1), {}, "'partial'")]:
        _rewrite(p, tmp_path / "bad.npz", meta, **arrays)
        with pytest.raises(ValueError, match=match):
            dc.FlowResult.load(tmp_path / "bad.npz")


def test_deflate_bomb_refused_before_decompressing(saved, tmp_path):
    """A small file whose member inflates to 1 GiB: refused from the .npy header, nothing allocated."""
    import tracemalloc
    import zipfile
    res, p = saved
    bomb = tmp_path / "bomb.npz"
    with np.load(p) as z:
        members = {k: z[k] for k in z.files}
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for k, v in members.items():
            if k != "theta":
                with zf.open(k + ".npy", "w") as f:
                    np.lib.format.write_array(f, v)
        with zf.open("theta.npy", "w", force_zip64=True) as f:
            big = (4, 4 * 2**22, res.theta.shape[2])
            np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": big})
            block = bytes(2**24)
            for _ in range(64):           # 1 GiB of zeros
                f.write(block)
    assert os.path.getsize(bomb) < 5 * 2**20
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="'theta' is <f8 \\(4, 16777216"):
            dc.SAResult.load(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20


def test_non_regular_files_refused(tmp_path):
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="a FIFO"):
        dc.SAResult.load(fifo)
    with pytest.raises(ValueError, match="a folder"):
        dc.SAResult.load(tmp_path)
    assert time.perf_counter() - t0 < 5


@pytest.mark.parametrize("content", [b"\x00", b"\x00" * 4096, b"\x80\x04K\x01."], ids=["1 byte", "zeros", "pickle"])
def test_tiny_and_zero_files_not_called_pickles(tmp_path, content):
    (tmp_path / "z.npz").write_bytes(content)
    with pytest.raises(ValueError, match="not an .npz archive") as e:
        dc.SAResult.load(tmp_path / "z.npz")
    assert "pickle" not in str(e.value)


# ----------------------------------------------------------------------------------------
# 8. Dask edges: no worker, client closed, a block lost too often; finished blocks are kept
# ----------------------------------------------------------------------------------------
def _dask():
    return pytest.importorskip("dask.distributed", reason="dask.distributed is not installed")


def _sweep_in_thread(*args, **kw):
    import threading
    from dynclip.sweep import sweep
    out = {}

    def run():
        try:
            out["res"] = sweep(*args, **kw)
        except BaseException as e:
            out["err"] = e
    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th, out


def test_sweep_with_no_worker_gives_up():
    import logging
    from dynclip.sweep import SweepError
    distributed = _dask()
    pos, _ = _args(10)
    cfg = dict(zip(("net", "X", "Y", "rule", "schedule"), pos), n_steps=10, seed=0)
    with distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=None,
                                  silence_logs=logging.CRITICAL) as cluster, distributed.Client(cluster) as client:
        th, out = _sweep_in_thread([cfg], n_replicas=2, block_size=1, client=client, worker_timeout=1.0)
        th.join(60)
        assert not th.is_alive(), "sweep waited for a worker for 60 s"
    assert isinstance(out.get("err"), SweepError) and "no worker" in str(out["err"]) and out["err"].blocks == {}


def test_sweep_keeps_finished_blocks_when_a_block_is_lost():
    """One failure allowed per task: killing the worker of a long block ends the sweep with a SweepError
    holding the blocks already done; ``finished=`` then runs only the rest, bit-identical."""
    import logging
    from dynclip.sweep import SweepError, sweep
    distributed = _dask()
    import dask
    X, Y = dc.data.d64("light")
    quick = dict(net=dc.mlp([2, 8, 1]), X=X, Y=Y, rule=C.classic(0.5), schedule=S.inverse(1.0, 10.0), n_steps=200,
                 seed=3, record_every=50)
    slow = dict(quick, n_steps=3_000_000, record_every=1_000_000, seed=4)       # a few s per block
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                                      silence_logs=logging.CRITICAL) as cluster, distributed.Client(cluster) as client:
            client.submit(lambda: 0).result()
            pid = list(client.run(os.getpid).values())[0]
            th, out = _sweep_in_thread([quick, slow], n_replicas=2, block_size=1, client=client)
            deadline = time.time() + 120        # the quick blocks run first (submitted first, one thread)
            while time.time() < deadline:
                busy = client.run_on_scheduler(lambda dask_scheduler: [
                    str(k) for k, ts in dask_scheduler.tasks.items() if ts.state == "processing"])
                if any("-c1-" in k for k in busy):
                    break
                time.sleep(0.05)
            time.sleep(0.5)
            os.kill(pid, signal.SIGKILL)
            th.join(120)
            assert not th.is_alive()
            err = out.get("err")
            assert isinstance(err, SweepError) and "lost with its worker" in str(err), out
            assert {(0, 0), (0, 1)} <= set(err.blocks), err.blocks
            client.wait_for_workers(1, timeout=60)
            rest = sweep([quick, slow], n_replicas=2, block_size=1, client=client, finished=err.blocks)
    for cfg, res in zip([quick, slow], rest):
        pos = [cfg[k] for k in ("net", "X", "Y", "rule", "schedule")]
        kw = {k: v for k, v in cfg.items() if k not in ("net", "X", "Y", "rule", "schedule")}
        _same(res, dc.simulate(*pos, **kw, n_replicas=2))


def test_sweep_when_the_client_is_closed():
    import logging
    from dynclip.sweep import SweepError
    distributed = _dask()
    X, Y = dc.data.d64("light")
    slow = dict(net=dc.mlp([2, 8, 1]), X=X, Y=Y, rule=C.classic(0.5), schedule=S.inverse(1.0, 10.0),
                n_steps=3_000_000, record_every=1_000_000, seed=4)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.CRITICAL) as cluster:
        client = distributed.Client(cluster)
        th, out = _sweep_in_thread([slow], n_replicas=2, block_size=1, client=client)
        time.sleep(1.0)
        client.close()
        th.join(60)
        assert not th.is_alive()
    err = out.get("err")
    assert isinstance(err, SweepError) and "closed" in str(err), repr(err)


# ----------------------------------------------------------------------------------------
# 9. a Ctrl-C before the first chunk still gives record 0 (step[-1] works on every partial result)
# ----------------------------------------------------------------------------------------
def test_ctrl_c_at_the_first_chunk(monkeypatch):
    import dynclip._kernels as K
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not handled by Python's default handler here")
    real, calls, lock = K.run_chunk, [], threading.Lock()

    def interrupted_first(*a):                        # a = (r0, r1, chunk, ...): one call per block of replicas
        with lock:
            first = not calls
            calls.append((a[2].k0, a[2].k1))
        if first:
            os.kill(os.getpid(), signal.SIGINT)       # lands before the first chunk has run
        return real(*a)

    monkeypatch.setattr(K, "run_chunk", interrupted_first)
    pos, kw = _args(10**6)
    res = dc.simulate(*pos, **kw)
    assert res.partial and res.step.size >= 1 and res.step[0] == 0 and np.all(np.isfinite(res.loss[:, 0]))
    assert len(set(calls)) == 1                       # one chunk of steps (for every block of replicas)
