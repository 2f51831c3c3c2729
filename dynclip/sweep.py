"""``sweep``: a grid of :func:`dynclip.simulate` configurations, each split into blocks of replicas.

A *configuration* is a dict with the five positional arguments of ``simulate`` under their
names (``net``, ``X``, ``Y``, ``rule``, ``schedule``) plus any of its keyword arguments
(``n_steps`` and ``seed`` are required)::

    {"net": net, "X": X, "Y": Y, "rule": clipping.classic(1.0),
     "schedule": schedules.inverse(1.0, 10.0), "n_steps": 2000, "seed": 0, "batch_size": 4}

:func:`grid` builds the Cartesian product of a base configuration and lists of values.

Every configuration's ``n_replicas`` replicas are cut into blocks of ``block_size``; the
block holding replicas ``start .. start+b-1`` runs ``simulate(..., n_replicas=b)`` as
replicas ``start .. start+b-1`` of the whole run. Replica i draws from ``SeedSequence(seed, spawn_key=(i,))`` and
never interacts with the others, so the blocks concatenated along the replica axis
(:func:`concat_results`) are bit for bit the result of one ``simulate`` call with all
``n_replicas`` replicas, whatever the block size and wherever each block ran.

Without a client the blocks run one after the other in this process (Numba threads inside
each block). With a ``dask.distributed.Client`` every block is one task; a block lost with
a worker is recomputed by the cluster and, being a pure function of its arguments, gives
the same numbers. Dask is optional (``pip install "dask[distributed]"``) and imported only
when a client is given.
"""
from collections.abc import Iterable, Mapping, Sequence
import hashlib
import inspect
import itertools
import math
import threading
import time
import uuid
from dataclasses import fields

import numpy as np

from .engine import simulate, _simulate, _fingerprint, NONFINITE
from .model import MLP, init_params
from .checks import check_theta, check_choice, check_int, check_real
from .results import SAResult
from .rng import replica_seeds
from . import _console

__all__ = ["sweep", "grid", "concat_results", "POSITIONAL", "SweepError"]

#: the positional arguments of simulate, given by name in a configuration
POSITIONAL = ("net", "X", "Y", "rule", "schedule")
_REQUIRED = POSITIONAL + ("n_steps", "seed")
#: simulate arguments the sweep sets itself (or that make no sense per block)
_RESERVED = ("n_replicas", "progress", "checkpoint", "checkpoint_every", "resume")
_KEYWORDS = tuple(n for n, p in inspect.signature(simulate).parameters.items()
                  if p.kind == p.KEYWORD_ONLY and n not in _RESERVED)
_ALLOWED = POSITIONAL + _KEYWORDS
# config entries that differ between the blocks of one run
_PER_BLOCK = ("n_replicas", "replica_start", "theta0_sha1", "indices_sha1", "wall_time_s")
# fields of SAResult without a replica axis
_SHARED = ("step", "time", "config", "partial")

# one block at a time per process: a block already uses every Numba thread, and a worker
# with several Dask threads would otherwise oversubscribe the cores
_BLOCK_LOCK = threading.Lock()


# ----------------------------------------------------------------------------------------
# configurations
# ----------------------------------------------------------------------------------------
def grid(base, **axes):
    """The Cartesian product of a base configuration and lists of values.

    ``grid(base, rule=[classic(0.5), classic(2.0)], seed=[0, 1])`` gives four configurations
    (the last axis varies fastest), each ``base`` updated with one value per axis. Values are
    not copied: configurations share the arrays of ``base``.
    """
    if not isinstance(base, Mapping):
        raise TypeError(f"base must be a dict of simulate arguments; got {type(base).__name__}")
    names = list(axes)
    for n in names:
        v = axes[n]
        if isinstance(v, (str, bytes, Mapping)) or not isinstance(v, Sequence):
            raise TypeError(f"grid axis {n!r} must be a list of values; got {type(v).__name__}")
        if len(v) == 0:
            raise ValueError(f"grid axis {n!r} is empty")
    return [dict(base, **dict(zip(names, combo))) for combo in itertools.product(*(axes[n] for n in names))]


def _check_configs(configs):
    if isinstance(configs, Mapping):
        return [dict(configs)], True
    if isinstance(configs, (str, bytes)) or not isinstance(configs, Iterable):
        raise TypeError("configs must be a list of dicts of simulate arguments (or one dict); got "
                        f"{type(configs).__name__}")
    configs = list(configs)
    if len(configs) == 0:
        raise ValueError("configs is empty: give at least one configuration")
    out = []
    for i, c in enumerate(configs):
        if not isinstance(c, Mapping):
            raise TypeError(f"configs[{i}] must be a dict of simulate arguments; got {type(c).__name__}")
        out.append(dict(c))
    for i, c in enumerate(out):
        for k in c:
            if k in _RESERVED:
                raise ValueError(f"configs[{i}] sets {k!r}, which sweep controls itself "
                                 "(n_replicas and block_size are arguments of sweep; no checkpoints per block)")
            if k not in _ALLOWED:
                raise ValueError(f"configs[{i}] has an unknown key {k!r}; allowed: {', '.join(_ALLOWED)}")
        missing = [k for k in _REQUIRED if k not in c]
        if missing:
            raise ValueError(f"configs[{i}] is missing {', '.join(map(repr, missing))} "
                             f"(a configuration needs {', '.join(_REQUIRED)})")
        check_choice(f"configs[{i}]['nonfinite']", c.get("nonfinite", "stop"), NONFINITE)
        if not isinstance(c["net"], MLP):
            raise TypeError(f"configs[{i}]['net'] must be an MLP from dynclip.mlp(); got {type(c['net']).__name__}")
    return out, False


def _blocks(R, block_size):
    return [(s, min(block_size, R - s)) for s in range(0, R, block_size)]


def _per_replica(i, cfg, name, R):
    """theta0 (R, P) and indices (R, T, B) are cut with the replicas; check their first axis."""
    v = cfg.get(name)
    if v is None:
        return None
    a = np.asarray(v)
    if name == "theta0" and a.ndim == 1:
        return None                     # one point shared by every replica
    if a.ndim == 0 or a.shape[0] != R:
        raise ValueError(f"configs[{i}]['{name}'] must have n_replicas = {R} rows (one per replica); "
                         f"got shape {a.shape}")
    return a


def _block_kwargs(cfg, per, start, size):
    kw = {k: v for k, v in cfg.items() if k not in POSITIONAL}
    kw["nonfinite"] = "stop"      # "raise" is applied to the whole run, with its replica numbers
    for name, a in per.items():
        if a is not None:
            kw[name] = a[start:start + size]
    return kw


# ----------------------------------------------------------------------------------------
# one block (runs locally or on a Dask worker)
# ----------------------------------------------------------------------------------------
def _block_theta0(cfg, kw, start, size):
    """The initial points simulate uses for this block (to fingerprint the whole run's theta0)."""
    net = cfg["net"]
    if kw.get("theta0") is None:
        _, inits = replica_seeds(int(kw["seed"]), size, start=start)
        return np.stack([init_params(net, int(s)) for s in inits])
    th = check_theta(net, kw["theta0"], "theta0", rows=size)
    return np.ascontiguousarray(np.broadcast_to(th, (size, net.n_params)), dtype=np.float64)


def _run_block(cfg, kw, start, size):
    """simulate() on replicas start .. start+size-1; returns (result, its theta0)."""
    with _BLOCK_LOCK:
        res = _simulate(*(cfg[k] for k in POSITIONAL), **kw, n_replicas=size, replica_start=start, progress=False)
    return res, _block_theta0(cfg, kw, start, size)


# ----------------------------------------------------------------------------------------
# concatenation
# ----------------------------------------------------------------------------------------
def concat_results(results, config=None):
    """Concatenate the SAResults of consecutive replica blocks of one run along the replica axis.

    ``results[j]`` must hold replicas ``start_j .. start_j + n_j - 1`` with
    ``start_{j+1} = start_j + n_j`` (``config["replica_start"]``, as written by
    the blocks of :func:`sweep`), the same record steps and times, and otherwise
    the same configuration. Per-replica arrays are concatenated; ``step`` and ``time`` are
    shared; ``config`` is the first block's with ``n_replicas`` the total, ``wall_time_s``
    the sum over blocks and ``theta0_sha1``/``indices_sha1`` (which fingerprint one block
    only) set to None unless there is one block. ``config`` (a dict) updates the result's
    config last (:func:`sweep` gives the fingerprints of the whole run).
    """
    results = list(results)
    if not results:
        raise ValueError("results is empty: nothing to concatenate")
    for j, r in enumerate(results):
        if not isinstance(r, SAResult):
            raise TypeError(f"results[{j}] must be an SAResult; got {type(r).__name__}")
        if r.partial:
            raise ValueError(f"results[{j}] is a partial (interrupted) result; blocks must be complete")
    first = results[0]
    same = {k: v for k, v in first.config.items() if k not in _PER_BLOCK}
    nxt = first.config.get("replica_start", 0) + first.n_replicas
    for j, r in enumerate(results[1:], 1):
        if not (np.array_equal(r.step, first.step) and np.array_equal(r.time, first.time)):
            raise ValueError(f"results[{j}] has other record steps or times than results[0]")
        other = {k: v for k, v in r.config.items() if k not in _PER_BLOCK}
        if other != same:
            diff = sorted(k for k in set(other) | set(same) if other.get(k) != same.get(k))
            raise ValueError(f"results[{j}] comes from another run than results[0] (config differs in {diff})")
        if r.config.get("replica_start", 0) != nxt:
            raise ValueError(f"results[{j}] starts at replica {r.config.get('replica_start', 0)}, expected {nxt} "
                             "(blocks must be consecutive and in order)")
        nxt += r.n_replicas
    arrays = {}
    for f in fields(SAResult):
        if f.name in _SHARED:
            continue
        vals = [getattr(r, f.name) for r in results]
        if all(v is None for v in vals):
            arrays[f.name] = None
        elif any(v is None for v in vals):
            raise ValueError(f"field {f.name!r} is missing in some results but not in others")
        else:
            arrays[f.name] = np.concatenate(vals, axis=0)
    cfg = dict(first.config)
    cfg["n_replicas"] = int(sum(r.n_replicas for r in results))
    if "wall_time_s" in cfg:
        cfg["wall_time_s"] = float(sum(r.config.get("wall_time_s", 0.0) for r in results))
    if len(results) > 1:
        for k in ("theta0_sha1", "indices_sha1"):
            if cfg.get(k) is not None:
                cfg[k] = None
    if config:
        cfg.update(config)
    return SAResult(step=first.step.copy(), time=first.time.copy(), config=cfg, partial=False, **arrays)


class _Theta0Hash:
    """sha1 of the whole run's theta0, fed block by block (equals simulate's theta0_sha1)."""

    def __init__(self, R, P):
        self.h, self.shape, self.parts = hashlib.sha1(), (R, P), {}
        self.next = 0

    def add(self, start, th0):
        self.parts[start] = th0
        while self.next in self.parts:
            a = self.parts.pop(self.next)
            self.h.update(np.ascontiguousarray(a).tobytes())
            self.next += a.shape[0]

    def hexdigest(self):
        h = self.h.copy()
        h.update(str(self.shape).encode())
        return h.hexdigest()


# ----------------------------------------------------------------------------------------
# sweep
# ----------------------------------------------------------------------------------------
class SweepError(RuntimeError):
    """A sweep on a cluster that could not finish (no worker left, client closed, a block lost with
    its worker too often). ``blocks`` holds the blocks that did finish, ``{(config index, first
    replica): SAResult}``: give them back as ``sweep(..., finished=err.blocks)`` to run only the rest."""

    def __init__(self, message, blocks):
        super().__init__(message)
        self.blocks = blocks


def sweep(configs, *, n_replicas, block_size=None, client=None, progress=None, finished=None,
          worker_timeout=300.0):
    """Run every configuration with ``n_replicas`` replicas, in blocks of ``block_size`` replicas.

    Parameters
    ----------
    configs : list of dict (or one dict)
        Each dict holds the arguments of :func:`dynclip.simulate` by name: ``net``, ``X``,
        ``Y``, ``rule``, ``schedule``, ``n_steps``, ``seed`` and optionally any other keyword
        (``batch_size``, ``loss``, ``theta0``, ``indices``, ``record_every``, ``track_noise``,
        ``reference``, ``optimizer``, ...). ``theta0`` of shape (n_replicas, P) and ``indices`` of shape
        (n_replicas, n_steps, batch_size) are cut into blocks with the replicas. Not allowed:
        ``n_replicas`` (an argument of sweep), ``progress``, ``checkpoint``,
        ``checkpoint_every``, ``resume``. ``nonfinite="raise"`` is applied to the whole run
        once every block is done (FloatingPointError with the replica numbers of the whole
        run, as simulate gives). :func:`grid` builds a product of configurations.
    n_replicas : int >= 1
        Replicas per configuration.
    block_size : int >= 1, optional
        Replicas per block (the unit of work). Default: all of a configuration's replicas in
        one block when running locally; with a client, n_replicas split into one block per
        worker thread of the cluster. The result does not depend on it.
    client : dask.distributed.Client, optional
        Run the blocks as tasks on this cluster (``client.submit``; results are fetched as
        they finish). Workers need dynclip installed; each block uses the worker's Numba
        threads, so give workers ``threads_per_worker=1`` and let Numba use the cores.
    progress : bool or None
        Progress bar over blocks (None: only on a terminal).
    finished : dict, optional
        Blocks already computed, ``{(config index, first replica): SAResult}`` (from
        :class:`SweepError`'s ``blocks``): they are not run again.
    worker_timeout : float > 0
        With a client: seconds the cluster may have no worker before the sweep gives up
        (SweepError) instead of waiting forever.

    Returns
    -------
    list of SAResult
        One per configuration, in order (a single SAResult when ``configs`` is one dict),
        bit-identical to ``simulate(..., n_replicas=n_replicas)`` of that configuration,
        config included except ``wall_time_s`` (the sum of the blocks' times).
    """
    cfgs, single = _check_configs(configs)
    R = check_int("n_replicas", n_replicas)
    if client is not None and not (hasattr(client, "submit") and hasattr(client, "cancel")):
        raise TypeError(f"client must be a dask.distributed.Client or None; got {type(client).__name__}")
    if block_size is None:
        if client is None:
            bs = R
        else:
            nthreads = sum(client.nthreads().values()) or 1
            bs = max(1, math.ceil(R / nthreads))
    else:
        bs = check_int("block_size", block_size)
    blocks = _blocks(R, bs)
    per = [{name: _per_replica(i, c, name, R) for name in ("theta0", "indices")} for i, c in enumerate(cfgs)]
    jobs = [(i, start, size) for i in range(len(cfgs)) for start, size in blocks]
    got = {}
    hashes = [_Theta0Hash(R, c["net"].n_params) for c in cfgs]
    wt = check_real("worker_timeout", worker_timeout, "a number of seconds > 0", lambda x: x > 0)
    for (i, start), res in _check_finished(finished, jobs).items():
        got[i, start] = res
        hashes[i].add(start, _block_theta0(cfgs[i], _block_kwargs(cfgs[i], per[i], start, res.n_replicas), start,
                                           res.n_replicas))
    jobs = [j for j in jobs if j[:2] not in got]
    bar = _console.bar(progress, len(jobs) > 1, total=len(got) + len(jobs), initial=len(got), unit="block",
                       desc="sweep", leave=False)

    def done(i, start, res, th0):
        got[i, start] = res
        hashes[i].add(start, th0)
        if bar is not None:
            bar.update_to(len(got))

    try:
        if client is None:
            for i, start, size in jobs:
                res, th0 = _run_block(cfgs[i], _block_kwargs(cfgs[i], per[i], start, size), start, size)
                if res.partial:     # Ctrl-C inside simulate: a sweep is all or nothing
                    raise KeyboardInterrupt(f"dynclip.sweep interrupted in configs[{i}], replicas {start}.."
                                            f"{start + size - 1}")
                done(i, start, res, th0)
        else:
            _run_on_cluster(client, cfgs, per, jobs, done, got, wt)
    finally:
        if bar is not None:
            bar.close()
    out = []
    for i, c in enumerate(cfgs):
        upd = {"theta0_sha1": hashes[i].hexdigest(), "replica_start": 0, "nonfinite": c.get("nonfinite", "stop")}
        if c.get("indices") is not None:
            upd["indices_sha1"] = _fingerprint(np.ascontiguousarray(c["indices"], dtype=np.int64))
        res = concat_results([got[i, s] for s, _ in blocks], config=upd)
        if upd["nonfinite"] == "raise" and res.nonfinite.any():   # as simulate does, numbered in the whole run
            bad = np.flatnonzero(res.nonfinite)
            raise FloatingPointError(f"configs[{i}]: {bad.size} replica(s) became non-finite (first: replica "
                                     f"{bad[0]} at step {res.blowup_step[bad[0]]}); use nonfinite='stop' to keep "
                                     "them as data")
        out.append(res)
    return out[0] if single else out


def _check_finished(finished, jobs):
    if finished is None:
        return {}
    if not isinstance(finished, Mapping):
        raise TypeError(f"finished must be a dict {{(config index, first replica): SAResult}}; got "
                        f"{type(finished).__name__}")
    sizes = {(i, start): size for i, start, size in jobs}
    for key, res in finished.items():
        if key not in sizes or not isinstance(res, SAResult) or res.n_replicas != sizes[key] or res.partial \
                or res.config.get("replica_start") != key[1]:
            raise ValueError(f"finished[{key!r}] is not a complete block of this sweep (blocks are (config index, "
                             "first replica) -> SAResult from SweepError.blocks, with the same block_size)")
    return dict(finished)


def _run_on_cluster(client, cfgs, per, jobs, done, got, worker_timeout):
    try:
        from distributed import wait
    except ImportError:  # pragma: no cover - a Client exists, so distributed is installed
        raise ImportError("sweep(client=...) needs dask.distributed: pip install 'dask[distributed]'") from None
    tag = uuid.uuid4().hex[:8]
    pending, where = {}, {}
    total = len(got) + len(jobs)

    def give_up(why):
        return SweepError(f"dynclip.sweep: {why}; {len(got)} of {total} blocks finished (kept in this error's "
                          "blocks: sweep(..., finished=err.blocks) runs only the others)", dict(got))

    for i, start, size in jobs:
        f = client.submit(_run_block, cfgs[i], _block_kwargs(cfgs[i], per[i], start, size), start, size,
                          key=f"dynclip-sweep-{tag}-c{i}-r{start}", pure=False)
        pending[f.key] = f
        where[f.key] = (i, start)
    no_worker_since = None
    try:
        # fetch each block as soon as it is done and drop its future (the worker frees it):
        # finished work is safe here, and a block lost with a worker before that is recomputed
        # by the scheduler from its arguments
        while pending:
            try:
                ready, _ = wait(list(pending.values()), timeout=2.0, return_when="FIRST_COMPLETED")
            except Exception as e:              # the wait timed out, or the client went away
                if getattr(client, "status", "running") in ("closing", "closed"):
                    raise give_up("the Dask client was closed during the sweep") from None
                if "Timeout" not in type(e).__name__:
                    raise give_up(f"the cluster failed ({type(e).__name__}: {e})") from e
                ready = ()
            if not ready:
                try:
                    n_workers = len(client.nthreads())
                except Exception as e:
                    raise give_up(f"the cluster cannot be reached ({type(e).__name__}: {e})") from None
                now = time.monotonic()
                no_worker_since = None if n_workers else (no_worker_since or now)
                if no_worker_since is not None and now - no_worker_since > worker_timeout:
                    raise give_up(f"the cluster has had no worker for {worker_timeout:g} s (worker_timeout)")
                continue
            for fut in ready:
                i, start = where[fut.key]
                if fut.status == "finished":
                    res, th0 = fut.result()
                    del pending[fut.key]
                    done(i, start, res, th0)
                elif fut.status == "cancelled":
                    raise give_up(f"the block of configs[{i}], replicas from {start}, was cancelled (client or "
                                  "cluster closed?)")
                else:
                    exc = fut.exception()
                    if type(exc).__name__ == "KilledWorker":
                        raise give_up(f"the block of configs[{i}], replicas from {start}, was lost with its worker "
                                      "too often (KilledWorker; the workers may be running out of memory)") from exc
                    raise exc                   # an error of the block itself (bad argument, ...)
    finally:
        if pending:
            try:
                client.cancel(list(pending.values()))
            except Exception:
                pass
