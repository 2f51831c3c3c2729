"""``simulate``: clipped SGD as a stochastic-approximation process, many replicas in parallel.

The public function validates its inputs, spawns per-replica seeds, allocates the state
and record arrays and runs the compiled kernel (:mod:`dynclip._kernels`) in chunks of
steps. Chunks give progress bars, Ctrl-C handling and checkpoints without touching the
maths; a chunked run is bit-identical to an unchunked one.
"""
import hashlib
import inspect
import math
import os
import signal
import threading
import time as _time
import warnings

import numpy as np

from . import __version__
from .clipping import capabilities, check_exact_H, check_rule
from .optimizers import check_optimizer, state_shapes
from .model import init_params, loss_code
from .checks import (check_no_unknown, check_net, check_data, check_theta, check_int, check_positive, check_choice,
                     check_bool, check_seed, check_path, check_writable_path, as_float_array, describe)
from .results import FORMAT, FormatError, SAResult, atomic_savez, header_field, read_npz
from .rng import replica_seeds
from .schedules import check_schedule
from . import _kernels as K
from ._jit import announce_compile, run_rows
from . import _console, _memory

CLIP_PER = ("batch", "sample")
NONFINITE = ("stop", "raise")
# work units (multiply-adds) per kernel chunk: ~0.05-0.5 s, so Ctrl-C and progress react quickly
_CHUNK_WORK = 3e7


def record_steps(n_steps, record_every):
    """Steps at which records are taken: 0, e, 2e, ... and n_steps."""
    s = np.arange(0, n_steps, record_every, dtype=np.int64)
    return np.append(s, np.int64(n_steps))


def record_times(schedule, n_steps, record_every=None):
    """``(step, time)`` of the records of a run: use ``time`` as ``t_eval`` for a reference flow."""
    n_steps = check_int("n_steps", n_steps)
    record_every = _default_every(n_steps, record_every)
    steps = record_steps(n_steps, record_every)
    t = np.concatenate(([0.0], np.cumsum(check_schedule(schedule).values(0, n_steps))))
    return steps, t[steps]


def _default_every(n_steps, record_every):
    if record_every is None:
        return max(1, n_steps // 100)
    return check_int("record_every", record_every)


def _fingerprint(*arrays):
    h = hashlib.sha1()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
        h.update(str(a.shape).encode())
    return h.hexdigest()


def simulate(net, X, Y, rule, schedule, *, n_steps, seed, batch_size=1, n_replicas=1,
             theta0=None, loss="mse", indices=None, clip_per="batch", project_radius=np.inf,
             record_every=None, record_theta=False, track_noise=False, blowup_radius=np.inf,
             nonfinite="stop", progress=None, checkpoint=None, checkpoint_every=None,
             resume=None, reference=None, optimizer=None, **unknown):
    """Run clipped SGD ``theta_{k+1} = Pi(theta_k - a(k) u_k)`` for ``n_replicas`` independent replicas.

    With ``optimizer`` momentum or Adam, the clipped update ``u_k`` feeds that optimiser
    instead (torch semantics, learning rate a(k); the projection acts after its step); with
    weight decay mu, ``u_k + mu theta_k`` does (the decay is not clipped). The mean field H and
    the ODE (:mod:`dynclip.meanfield`, :mod:`dynclip.ode`, with ``weight_decay=mu``) describe SGD only.

    Parameters
    ----------
    net : MLP
        From :func:`dynclip.mlp`.
    X, Y : arrays
        Data set, (N, d_in) and (N, d_out) or (N,); integer labels for cross_entropy.
    rule : ClipRule
        From :mod:`dynclip.clipping`.
    schedule : Schedule
        From :mod:`dynclip.schedules`; step k uses a(k).
    n_steps : int >= 1
        (at most 2**63 - 1, the kernel's step counter; the step table needs 8 bytes a step)
    seed : int >= 0
        Replica i's sample stream and default initial point come from
        ``SeedSequence(seed).spawn(n_replicas)[i]``.
    batch_size : int >= 1
        Minibatches are drawn uniformly with replacement.
    n_replicas : int >= 1
    theta0 : array (P,) or (n_replicas, P), optional
        Initial parameters; default ``init_params(net, seed=...)`` per replica.
    loss : {"mse", "half_mse", "quartic", "cross_entropy"}
    indices : int array (n_replicas, n_steps, batch_size), optional
        Replay these sample indices instead of drawing them.
    clip_per : {"batch", "sample"}
        Clip the minibatch-mean gradient (torch/optax) or each per-sample gradient and then
        average (the paper's c(theta, x, y)).
    project_radius : float
        Project onto the ball ||theta|| <= radius after each step (eq. 9); inf = off.
    record_every : int, optional
        Record spacing in steps (default n_steps // 100).
    record_theta : bool
        Keep theta at every record (memory R * K * P).
    track_noise : bool
        Accumulate the martingale noise sum xi = sum a(s) (u_s - H(theta_s)) exactly
        (H recomputed at every step: costs N per-sample gradients per step). Needs an
        exactly computable H: batch_size 1, or clip_per="sample", or a rule with
        ``capabilities(rule).exact_H_batch`` (none, alrc).
    blowup_radius : float
        A replica with ||theta - theta_0|| > blowup_radius, or a non-finite value (an entry of
        theta, or the norm of a minibatch gradient: a NaN or an overflow, even when the clipped
        update is finite), is marked diverged and stopped; its later records are NaN.
    nonfinite : {"stop", "raise"}
        "raise" raises FloatingPointError after the run if any replica became non-finite.
    progress : bool or None
        Progress bar (None: only on a terminal for runs longer than a few seconds).
    checkpoint, checkpoint_every : path, int
        Save the whole run state atomically to ``checkpoint`` every ``checkpoint_every`` steps
        (a path: str, bytes or os.PathLike, in an existing writable folder; checked at the
        start). A write that fails later (disk full, ...) gives a RuntimeWarning and the run
        goes on.
    resume : path
        Continue a run from a checkpoint (same arguments); the result equals the
        uninterrupted run bit for bit.
    reference : FlowResult, optional
        ODE solution evaluated at the record times (see :func:`record_times`); the kernel
        records ||theta_k - theta_ODE(t_k)|| in ``ref_deviation``.
    optimizer : Optimizer, optional
        From :mod:`dynclip.optimizers`: ``sgd()`` (None, the default), ``momentum(...)`` or
        ``adam(...)``, each with an optional ``weight_decay``; per-replica optimiser state is
        part of checkpoints. The diagnostics (``grad_norm``, ``clip_factor``, ``update_sum`` =
        sum a(k) ||u_k||) describe the clipped update u_k, the noise is u_k - H(theta_k) (with
        weight decay mu the step's mu theta_k and H's cancel); ``displacement`` and the blow-up
        check use the actual theta. The sure bound ||theta_k - theta_0|| <= update_sum holds for
        SGD without weight decay only.
    Returns
    -------
    SAResult
        Interrupted runs (Ctrl-C) return the records so far with ``partial=True``. Ctrl-C and
        SIGTERM stop the run after the chunk of steps running (a fraction of a second), write the
        checkpoint (if any); SIGTERM then ends the process as it would have (or runs the
        handler installed before simulate). A second Ctrl-C stops at once.
    """
    check_no_unknown("simulate", unknown)
    options = dict(locals())
    del options["unknown"]
    return _simulate(replica_start=0, **options)


def _simulate(net, X, Y, rule, schedule, *, replica_start, theta0=None, **options):
    """:func:`simulate` for replicas ``replica_start .. replica_start + n_replicas - 1`` of a larger run
    (:func:`dynclip.sweep`'s blocks): replica i draws from ``SeedSequence(seed, spawn_key=(replica_start + i,))``.
    ``options`` are simulate's keyword arguments (its defaults fill the missing ones)."""
    check_no_unknown("simulate", {k: v for k, v in options.items() if k not in _OPTIONS})
    options = {**_OPTIONS, **options}
    run = _prepare(net, X, Y, rule, schedule, replica_start=replica_start, **options)
    st, k = _initial_state(run, theta0)
    k, partial = _drive(run, st, k)
    res = _result(run, st, k, partial)
    if run.nonfinite == "raise" and res.nonfinite.any():
        bad = np.flatnonzero(res.nonfinite)
        raise FloatingPointError(f"{bad.size} replica(s) became non-finite (first: replica {bad[0]} "
                                 f"at step {res.blowup_step[bad[0]]}); use nonfinite='stop' to keep them as data")
    return res


# simulate's keyword arguments after theta0, with their defaults (n_steps and seed have none)
_OPTIONS = {name: (None if p.default is p.empty else p.default)
            for name, p in inspect.signature(simulate).parameters.items()
            if p.kind is p.KEYWORD_ONLY and name != "theta0"}


class _Run:
    """The validated arguments of one simulate call and what is derived from them (no state)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def _prepare(net, X, Y, rule, schedule, *, n_steps, seed, batch_size, n_replicas, loss, indices, clip_per,
             project_radius, record_every, record_theta, track_noise, blowup_radius, nonfinite, progress,
             checkpoint, checkpoint_every, resume, reference, optimizer, replica_start):
    """Step 1: validate every argument and build the run's config (all but theta0's fingerprint)."""
    check_net(net)
    X, Y2, lk = check_data(net, X, Y, loss)
    rule = check_rule(rule)
    optimizer = check_optimizer(optimizer)
    schedule = check_schedule(schedule)
    n_steps = check_int("n_steps", n_steps)
    B = check_int("batch_size", batch_size)
    R = check_int("n_replicas", n_replicas)
    rstart = check_int("replica_start", replica_start, lo=0)
    seed = check_seed(seed)
    clip_per = check_choice("clip_per", clip_per, CLIP_PER)
    nonfinite = check_choice("nonfinite", nonfinite, NONFINITE)
    record_theta = check_bool("record_theta", record_theta)
    track_noise = check_bool("track_noise", track_noise)
    progress = check_bool("progress", progress, allow_none=True)
    checkpoint, resume = check_writable_path("checkpoint", checkpoint), check_path("resume", resume)
    proj = check_positive("project_radius", project_radius, allow_inf=True)
    blow = check_positive("blowup_radius", blowup_radius, allow_inf=True)
    every = _default_every(n_steps, record_every)
    per_sample = clip_per == "sample"
    N, P = X.shape[0], net.n_params
    if track_noise:
        check_exact_H(rule, B, clip_per, "track_noise")
    if capabilities(rule).clips_losses and per_sample:
        raise ValueError(f"clip_per must be 'batch' for {rule.name} (it clips each example's loss already)")
    if checkpoint is not None:
        ce = check_int("checkpoint_every", checkpoint_every if checkpoint_every is not None else max(1, n_steps // 10))
    else:
        ce = None
    _check_memory(n_steps, R, B, P, N, every, record_theta, track_noise, optimizer, indices)
    if indices is not None:
        try:
            idx = np.asarray(indices)
        except (TypeError, ValueError):
            raise ValueError(f"indices must be an integer array; got {describe(indices)}") from None
        if idx.dtype.kind not in "iu":
            raise ValueError(f"indices must be an integer array; got dtype {idx.dtype}")
        if idx.shape != (R, n_steps, B):
            raise ValueError(f"indices must have shape (n_replicas, n_steps, batch_size) = "
                             f"{(R, n_steps, B)}; got {idx.shape}")
        if idx.size and (idx.min() < 0 or idx.max() >= N):
            raise ValueError(f"indices must lie in [0, {N}) (rows of X); got values in "
                             f"[{idx.min()}, {idx.max()}]")
        idx = np.ascontiguousarray(idx, dtype=np.int64)
    else:
        idx = np.zeros((0, 0, 0), dtype=np.int64)
    steps = record_steps(n_steps, every)
    Krec = steps.shape[0]
    a_all_t = np.concatenate(([0.0], np.cumsum(schedule.values(0, n_steps))))
    if reference is not None:
        ref = as_float_array(getattr(reference, "theta", None), "reference", "a FlowResult")
        rt = as_float_array(getattr(reference, "t", None), "reference", "a FlowResult")
        if ref.shape != (Krec, P) or rt.shape != (Krec,) or not np.allclose(rt, a_all_t[steps], rtol=1e-12, atol=1e-12):
            raise ValueError("reference must be a FlowResult evaluated at the record times "
                             "(t_eval = dynclip.record_times(schedule, n_steps, record_every)[1])")
    else:
        ref = np.zeros((0, 0))
    config = dict(
        version=__version__, widths=list(net.widths), activation=net.activation, loss=loss_code(loss),
        loss_name=str(loss), rule=rule.as_dict(), rule_name=rule.describe(), schedule=schedule.as_dict(),
        schedule_name=schedule.describe(), n_steps=n_steps, seed=int(seed), batch_size=B, n_replicas=R,
        replica_start=rstart, clip_per=clip_per, project_radius=proj, record_every=every,
        record_theta=bool(record_theta), track_noise=bool(track_noise), blowup_radius=blow,
        nonfinite=nonfinite, N=N, P=P, optimizer=optimizer.as_dict(), optimizer_name=optimizer.describe(),
        data_sha1=_fingerprint(X, Y2), theta0_sha1=None,
        indices_sha1=_fingerprint(idx) if indices is not None else None,
        reference=reference is not None, reference_sha1=_fingerprint(ref) if reference is not None else None)
    return _Run(net=net, X=X, Y2=Y2, lk=lk, rule=rule, optimizer=optimizer, schedule=schedule, n_steps=n_steps,
                B=B, R=R, rstart=rstart, seed=seed, per_sample=per_sample, nonfinite=nonfinite,
                record_theta=record_theta, track_noise=track_noise, progress=progress, checkpoint=checkpoint,
                resume=resume, ce=ce, proj=proj, blow=blow, N=N, P=P, idx=idx, steps=steps, Krec=Krec,
                a_all_t=a_all_t, ref=ref, reference=reference is not None, config=config)


def _state_layout(R, P, Krec, track_noise, record_theta, optimizer):
    """``{name: (dtype, shape)}`` of the run state (what a checkpoint holds)."""
    shape_m, shape_v = state_shapes(optimizer, R, P)
    f8, i8 = np.dtype(np.float64), np.dtype(np.int64)
    return dict(theta=(f8, (R, P)), theta0=(f8, (R, P)), rng=(np.dtype(np.uint64), (R,)), mu=(f8, (R, 2)),
                xi=(f8, (R, P) if track_noise else (R, 0)), acc=(f8, (R, K.N_ACC)), status=(i8, (R, K.N_STATUS)),
                rec=(f8, (R, K.N_REC, Krec)), rec_theta=(f8, (R, Krec, P) if record_theta else (R, 0, 0)),
                opt_m=(f8, shape_m), opt_v=(f8, shape_v), opt_t=(i8, (R,)))


def _run_layout(run):
    return _state_layout(run.R, run.P, run.Krec, run.track_noise, run.record_theta, run.optimizer)


def _check_memory(n_steps, R, B, P, N, every, record_theta, track_noise, optimizer, indices):
    """Refuse, before allocating anything, a run that needs more memory than is available."""
    Krec = (n_steps - 1) // every + 2
    layout = _state_layout(R, P, Krec, track_noise, record_theta, optimizer)
    nbytes = {name: dt.itemsize * math.prod(shape) for name, (dt, shape) in layout.items()}
    state = sum(nbytes.values()) - nbytes["rec"] - nbytes["rec_theta"] + 8 * R * (P + 2)   # + initial points
    recs = f"records = n_steps / record_every + 1 = {Krec} (n_steps={n_steps}, record_every={every})"
    parts = [(nbytes["rec"], f"records of n_replicas={R} replicas x {recs}"),
             (nbytes["rec_theta"], f"record_theta=True: n_replicas={R} x P={P} parameters x {recs}"),
             (24 * (n_steps + 1), f"step-size table: 24 B x n_steps={n_steps}"),
             (state, f"state of n_replicas={R} replicas x P={P} parameters")]
    if indices is not None:
        parts.append((8 * R * n_steps * B, f"indices as int64: n_replicas={R} x n_steps={n_steps} x "
                                           f"batch_size={B}"))
    _memory.check("simulate", parts)


def _initial_points(run, theta0):
    """Per-replica random states and initial points."""
    states, inits = replica_seeds(int(run.seed), run.R, start=run.rstart)
    if theta0 is None:
        th0 = np.stack([init_params(run.net, int(s)) for s in inits])
    else:
        th0 = check_theta(run.net, theta0, "theta0", rows=run.R)
        th0 = np.ascontiguousarray(np.broadcast_to(th0, (run.R, run.P)), dtype=np.float64).copy()
    return states, th0


def _initial_state(run, theta0):
    """Step 2: the state at the start (fresh, or read from ``resume``) and its step ``k``."""
    states, th0 = _initial_points(run, theta0)
    run.config["theta0_sha1"] = _fingerprint(th0)
    resume, checkpoint = run.resume, run.checkpoint
    if resume is not None and os.path.exists(resume):
        return _read_checkpoint(run, resume)
    if resume is not None and (checkpoint is None or resume != checkpoint):
        # resume == checkpoint with no file yet is the "start or continue" idiom
        raise ValueError(f"resume file {resume!r} does not exist")
    st = {name: np.empty(shape, dtype) for name, (dtype, shape) in _run_layout(run).items()}
    st["theta"][:] = th0
    st["theta0"] = th0
    st["rng"][:] = states
    st["mu"][:] = [run.rule.mu1, run.rule.mu2]
    for name in ("xi", "acc", "status", "opt_m", "opt_v", "opt_t"):
        st[name].fill(0)
    st["rec"].fill(np.nan)
    st["rec_theta"].fill(np.nan)
    st["status"][:, K.S_RUNNING] = 1
    st["status"][:, K.S_STOP_STEP] = -1
    return st, 0


# the argument behind each config entry, to say which one differs from a checkpoint's
_CONFIG_ARGUMENT = dict(version="the dynclip version", widths="net", activation="net", P="net", loss_name="loss",
                        rule_name="rule", schedule_name="schedule", replica_start="the block of replicas (dynclip.sweep)", N="X",
                        optimizer_name="optimizer", data_sha1="X or Y", theta0_sha1="theta0",
                        indices_sha1="indices", reference_sha1="reference")


def _read_checkpoint(run, path):
    """The state and step of checkpoint ``path``, checked against this run: its config (every argument,
    fingerprints of the data, theta0, indices and reference flow), every array's dtype and shape, the
    step the kernel wrote, and theta0 against its fingerprint."""
    layout = _run_layout(run)

    def expect(meta, members):
        theirs, mine = header_field(meta, "config", dict, None), json_roundtrip(_checkpoint_config(run.config))
        header_field(meta, "k", int, None)
        if theirs != mine:
            diff = sorted({_CONFIG_ARGUMENT.get(key, key) for key in set(mine) | set(theirs)
                           if mine.get(key) != theirs.get(key)})
            raise _OtherRun(f"resume={path!r} was written by a run with other arguments: {', '.join(diff)} "
                            "differ(s); give the arguments of that run, or start afresh without resume")
        return {name: (dt, shape, True) for name, (dt, shape) in layout.items()}

    try:
        arrays, meta = read_npz(path, "SACheckpoint", expect)
    except _OtherRun:
        raise
    except ValueError as e:
        raise ValueError(f"resume: {e}") from None
    k = meta["k"]
    st = {name: np.ascontiguousarray(arrays[name]) for name in layout}
    if not 0 <= k <= run.n_steps or np.any(st["status"][:, K.S_STEP] != k):
        raise ValueError(f"resume={path!r} is inconsistent: its header says step {k}, its state says "
                         f"{sorted(set(st['status'][:, K.S_STEP].tolist()))[:3]} (n_steps = {run.n_steps})")
    if _fingerprint(st["theta0"]) != run.config["theta0_sha1"]:
        raise ValueError(f"resume={path!r} is inconsistent: its theta0 does not match its fingerprint")
    return st, k


class _OtherRun(FormatError):
    """The checkpoint of another run (refused before its arrays are read)."""


def _checkpoint_config(config):
    return {key: v for key, v in config.items() if key != "wall_time_s"}


def _advance(run, st, k0, k1):
    """Run steps ``k0 .. k1-1`` for every row of the state ``st`` (one kernel call: no progress, signals or
    checkpoints). The rows may be any replicas of the run (copied rows, a subset), as long as the
    run replays no ``indices``."""
    chunk = K.Chunk(k0, k1, run.n_steps, run.schedule.values(k0, k1), run.steps, int(np.searchsorted(run.steps, k0)))
    net = K.Net(run.net.widths_array(), run.net.offsets(), run.net.act)
    data = K.Data(run.X, run.Y2, run.lk, run.idx)
    setup = K.Setup(run.rule, run.optimizer, run.B, run.per_sample, run.proj, run.blow, bool(run.track_noise), run.ref)
    run_rows(K.run_chunk, st["theta"].shape[0], chunk, net, data, setup, K.State(**st))


def _drive(run, st, k):
    """Step 3: run the kernel chunk by chunk from step ``k``, with progress, checkpoints and Ctrl-C.

    Returns ``(k, partial)``: the step reached and whether the run stopped early."""
    n_steps, ce, checkpoint = run.n_steps, run.ce, run.checkpoint
    R, B, P, N = run.R, run.B, run.P, run.N
    # chunking: enough work per call to amortise the call, little enough to react to Ctrl-C
    per_step = R * (B * P + (N * P if run.track_noise else 0) + P) + 1
    chunk = int(max(1, min(n_steps, _CHUNK_WORK // per_step)))
    bar = _console.bar(run.progress, n_steps * per_step > 3e9, total=n_steps, initial=k, unit="step",
                       desc="simulate", leave=False)
    announce_compile("dynclip.simulate")
    t_start = _time.perf_counter()
    stop = _StopSignals()
    saved_at = None
    try:
        stop.install()
        try:
            while k < n_steps:
                k1 = min(n_steps, k + chunk)
                if ce is not None:
                    k1 = min(k1, (k // ce + 1) * ce)
                _advance(run, st, k, k1)
                k = k1
                if bar is not None:
                    bar.update_to(k1)
                if ce is not None and (k % ce == 0 or k == n_steps) and _save_checkpoint(checkpoint, st, run.config, k):
                    saved_at = k
                if stop.signum is not None:
                    break
        except KeyboardInterrupt:       # a second Ctrl-C, or one outside the main thread's handler
            k = max(k, int(st["status"][:, K.S_STEP].max()))
            stop.signum = stop.signum or signal.SIGINT
        partial = k < n_steps
        if stop.signum == signal.SIGTERM or (stop.signum is not None and partial):
            if checkpoint is not None and saved_at != k and _save_checkpoint(checkpoint, st, run.config, k):
                saved_at = k
            _console.say(f"\ndynclip.simulate interrupted at step {k} of {n_steps} "
                         f"({signal.Signals(stop.signum).name}): " + ("returning a partial result" if stop.signum == signal.SIGINT else
                                           "ending the process")
                         + (f" (state saved to {checkpoint})" if saved_at == k else ""))
    finally:
        stop.restore()
        if bar is not None:
            bar.close()
    run.config["wall_time_s"] = _time.perf_counter() - t_start
    stop.redeliver()
    return k, partial


class _StopSignals:
    """For the drive loop: Ctrl-C (with Python's default handler) and SIGTERM (what Slurm, Kubernetes
    and ``timeout`` send) ask the loop to stop after the chunk running, so the state can be saved.

    Handlers are installed in the main thread only and restored before simulate returns; a SIGTERM
    is then delivered again to the previous handler (by default, ending the process with the usual
    status). A second Ctrl-C raises KeyboardInterrupt at once. SIGTERM ignored or handled outside
    Python is left alone."""

    def __init__(self):
        self.signum, self.saved = None, {}

    def install(self):
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            old = signal.getsignal(sig)
            if old is signal.default_int_handler if sig == signal.SIGINT else (old == signal.SIG_DFL or callable(old)):
                try:
                    signal.signal(sig, self._handler)
                except (ValueError, OSError):     # not the main interpreter
                    continue
                self.saved[sig] = old

    def _handler(self, signum, frame):
        if signum == signal.SIGINT and self.signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.signum != signal.SIGTERM:
            self.signum = signum

    def restore(self):
        while self.saved:
            sig, old = self.saved.popitem()
            signal.signal(sig, old)

    def redeliver(self):
        if self.signum == signal.SIGTERM:
            signal.raise_signal(signal.SIGTERM)


def json_roundtrip(d):
    import json
    return json.loads(json.dumps(d))


def _save_checkpoint(path, st, config, k):
    """Write the state; a failed write (disk full, folder removed, ...) warns and the run goes on.
    Returns whether the checkpoint was written."""
    try:
        atomic_savez(path, st, {"format": "SACheckpoint", "version": FORMAT,
                                "config": json_roundtrip(_checkpoint_config(config)), "k": int(k)})
        return True
    except OSError as e:
        warnings.warn(f"dynclip.simulate could not write the checkpoint {path!r} ({type(e).__name__}: {e}); "
                      "the run goes on", RuntimeWarning, stacklevel=3)
        return False


def _result(run, st, k, partial):
    """Step 4: the SAResult. The records kept are a prefix (the steps reached), so the record
    arrays are views of the state, not copies."""
    steps = run.steps
    nkeep = int(np.searchsorted(steps, k, side="right" if k == run.n_steps and not partial else "left"))
    rec = st["rec"][:, :, :nkeep]
    acc, status = st["acc"], st["status"]
    ndec = acc[:, K.A_NDEC]
    track = run.track_noise
    return SAResult(
        theta_final=st["theta"], step=steps[:nkeep], time=run.a_all_t[steps[:nkeep]],
        loss=rec[:, K.R_LOSS], grad_norm=rec[:, K.R_GNORM], clip_factor=rec[:, K.R_CFAC],
        clip_fraction=np.where(ndec > 0, acc[:, K.A_NCLIP] / np.maximum(ndec, 1), 0.0),
        displacement=rec[:, K.R_DISP], max_displacement=acc[:, K.A_MAXDISP].copy(),
        update_sum=rec[:, K.R_S], diverged=status[:, K.S_RUNNING] == 0, blowup_step=status[:, K.S_STOP_STEP].copy(),
        nonfinite=status[:, K.S_NONFINITE] == 1, alrc_moments=st["mu"], config=run.config,
        noise_norm=rec[:, K.R_NOISE] if track else None,
        max_noise=acc[:, K.A_MAXNOISE].copy() if track else None,
        noise=st["xi"] if track else None,
        noise_sq_sum=acc[:, K.A_M2].copy() if track else None,
        ref_deviation=rec[:, K.R_REF] if run.reference else None,
        theta=st["rec_theta"][:, :nkeep] if run.record_theta else None, partial=partial)
