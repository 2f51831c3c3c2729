"""Result objects and their files: NumPy ``.npz`` arrays plus a JSON header, never pickle."""
from dataclasses import MISSING, dataclass, field, fields
import json
import os
import secrets
import socket

import numpy as np

FORMAT = "dynclip-result-v1"


_TMP = ".dynclip-tmp"


def _tmp_prefix(path):
    """Temp files of ``path``: hidden, in its folder, named ``.<name>.<host>-<pid>-<random>.dynclip-tmp``
    (never matched by ``*.npz``)."""
    return os.path.join(os.path.dirname(path), "." + os.path.basename(path)[:120] + ".")


def _remove_stale_temps(path):
    """Remove temp files of ``path`` left by processes of this host that no longer run (killed mid-write)."""
    prefix = _tmp_prefix(path)
    d, head = os.path.split(prefix)
    host = socket.gethostname()
    try:
        names = [e.name for e in os.scandir(d) if e.name.startswith(head) and e.name.endswith(_TMP)]
    except OSError:
        return
    for name in names:
        parts = name[len(head):-len(_TMP)].rsplit("-", 2)
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
            continue
        try:
            os.kill(int(parts[1]), 0)
            continue                      # its writer still runs
        except ProcessLookupError:
            pass
        except (OSError, OverflowError):
            continue                      # exists but not ours to signal, or not a pid: leave it
        try:
            os.remove(os.path.join(d, name))
        except OSError:
            pass


def atomic_savez(path, arrays, meta):
    """Write ``arrays`` and the JSON ``meta`` to ``path`` (.npz) atomically and durably.

    The data go to a hidden temp file in the same folder, are flushed to disk (fsync), and
    the temp file is renamed over ``path``; a process killed mid-write leaves ``path`` as it
    was, and its temp file is removed by the next write to ``path``. The file gets the
    usual permissions (0666 minus the umask).
    """
    path = os.fsdecode(os.fspath(path))
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, os.path.basename(path))
    _remove_stale_temps(path)
    payload = {k: v for k, v in arrays.items() if v is not None}
    payload["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    tmp = f"{_tmp_prefix(path)}{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}{_TMP}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    try:                                  # make the rename itself durable
        dfd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def read_npz(path, kind):
    """Read a file written by :func:`atomic_savez`; returns ``(arrays, meta)``.

    Raises ValueError for truncated, corrupted or foreign files (never unpickles).
    """
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise
    except Exception as e:  # zipfile.BadZipFile, ValueError (pickled objects), OSError, ...
        raise ValueError(f"{path} is not a readable dynclip {kind} file ({type(e).__name__}: {e})") from None
    if "__meta__" not in arrays:
        raise ValueError(f"{path} is not a dynclip {kind} file (no header)")
    try:
        meta = json.loads(arrays.pop("__meta__").tobytes().decode())
    except Exception:
        raise ValueError(f"{path} has a corrupted header") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path} has a corrupted header (not a JSON object)")
    if meta.get("format") != kind:
        raise ValueError(f"{path} holds {meta.get('format')!r}, not a {kind} file")
    return arrays, meta


@dataclass(frozen=True, eq=False)
class SAResult:
    """Outcome of :func:`dynclip.simulate`; R replicas, K records.

    Records are taken before step 0, every ``record_every`` steps, and after the last step;
    ``step[j]`` is the number of updates applied before record j. Records of a replica after
    it diverged are NaN.

    Attributes
    ----------
    theta_final : (R, P) parameters after the last step (the diverging state for diverged replicas)
    step, time : (K,) update counts and ODE times t = sum of a over the steps taken
    loss : (R, K) full-data (unclipped) loss at each record
    grad_norm, clip_factor : (R, K) means over the steps since the previous record of the
        pre-clip minibatch-gradient norm and of the effective factor c = ||g|| / ||u||
        (NaN at record 0)
    clip_fraction : (R,) clip events / clip decisions (per step; per example for
        ``clip_per="sample"`` and for ALRC)
    displacement : (R, K) ||theta - theta_0||;  max_displacement : (R,) its maximum over all steps
    update_sum : (R, K) S_s = sum_{t<s} a(t) ||u_t||, the paper's M_s - M_0 (a sure bound on
        the displacement for SGD only: momentum and Adam steps are not a(t) u_t)
    noise_norm : (R, K) ||xi|| when ``track_noise``; max_noise : (R,) max over all steps;
        noise : (R, P) the final xi;  noise_sq_sum : (R,) sum_t a(t)^2 ||M(t+1)||^2 (the
        orthogonality identity says E||xi_T||^2 = E noise_sq_sum)
    ref_deviation : (R, K) ||theta - theta_ODE(t)|| when a reference flow is given
    theta : (R, K, P) when ``record_theta``
    alrc_moments : (R, 2) final ALRC running moments (mu1, mu2)
    diverged : (R,) bool;  blowup_step : (R,) int, -1 if none;  nonfinite : (R,) bool: theta or
        the norm of a minibatch gradient became inf or NaN (max_displacement is inf when theta did)
    partial : True when the run was interrupted; ``step[-1]`` is then the last record taken
    config : dict describing the run (rule, schedule, sizes, seed, versions)
    """
    theta_final: np.ndarray
    step: np.ndarray
    time: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray
    clip_factor: np.ndarray
    clip_fraction: np.ndarray
    displacement: np.ndarray
    max_displacement: np.ndarray
    update_sum: np.ndarray
    diverged: np.ndarray
    blowup_step: np.ndarray
    nonfinite: np.ndarray
    alrc_moments: np.ndarray
    config: dict = field(default_factory=dict)
    noise_norm: np.ndarray = None
    max_noise: np.ndarray = None
    noise: np.ndarray = None
    noise_sq_sum: np.ndarray = None
    ref_deviation: np.ndarray = None
    theta: np.ndarray = None
    partial: bool = False

    @property
    def n_replicas(self):
        return self.theta_final.shape[0]

    def __repr__(self):
        """A one-screen summary (the arrays are attributes: res.loss, res.theta_final, ...)."""
        c = self.config
        R, K = self.loss.shape if self.loss.ndim == 2 else (self.theta_final.shape[0], 0)
        last = self.loss[:, -1] if K else np.full(R, np.nan)
        ok = np.isfinite(last)
        q = np.quantile(last[ok], [0.1, 0.5, 0.9]) if ok.any() else [np.nan] * 3
        steps = int(self.step[-1]) if self.step.size else 0
        lines = [f"SAResult: {R} replicas x {steps} of {c.get('n_steps', '?')} steps{' (partial)' if self.partial else ''}, "
                 f"{K} records, P = {self.theta_final.shape[1]} parameters",
                 f"  rule {c.get('rule_name', '?')}, schedule {c.get('schedule_name', '?')}, "
                 f"batch {c.get('batch_size', '?')} (clip per {c.get('clip_per', '?')}), "
                 f"optimizer {c.get('optimizer_name', 'sgd()')}, loss {c.get('loss_name', '?')}",
                 f"  clip fraction: mean {np.mean(self.clip_fraction):.3g} "
                 f"(replicas {np.min(self.clip_fraction):.3g} .. {np.max(self.clip_fraction):.3g})",
                 f"  diverged: {int(np.sum(self.diverged))} (non-finite {int(np.sum(self.nonfinite))})",
                 f"  final full-data loss, 10/50/90 % over replicas: {q[0]:.4g} / {q[1]:.4g} / {q[2]:.4g}",
                 f"  max displacement ||theta - theta0||: median {np.median(self.max_displacement):.4g}"]
        if self.max_noise is not None:
            lines.append(f"  max noise ||xi||: median {np.median(self.max_noise):.4g}")
        return "\n".join(lines)

    def save(self, path):
        """Write to ``path`` (.npz with a JSON header; atomic)."""
        arrays = {f.name: getattr(self, f.name) for f in fields(self)
                  if f.name not in ("config", "partial")}
        atomic_savez(path, arrays, {"format": "SAResult", "config": self.config,
                                    "partial": bool(self.partial)})

    @classmethod
    def load(cls, path):
        """Read a file written by :meth:`save` (no pickle; clear error for foreign files)."""
        arrays, meta = read_npz(path, "SAResult")
        names = {f.name for f in fields(cls)} - {"config", "partial"}
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        missing = [n for n in required if n not in arrays]
        unknown = sorted(set(arrays) - names)
        if missing or unknown:
            raise ValueError(f"{os.fspath(path)} is not a valid SAResult file ("
                             + "; ".join(([f"missing fields {missing}"] if missing else [])
                                         + ([f"unknown fields {unknown}"] if unknown else [])) + ")")
        return cls(config=meta.get("config", {}), partial=bool(meta.get("partial", False)),
                   **arrays)


@dataclass(frozen=True, eq=False)
class FlowResult:
    """Solution of theta' = -H(theta) at times ``t``: ``theta`` (K, P), ``loss`` (K,), ``H_norm`` (K,).

    ``n_rhs`` counts the H evaluations. ``partial`` is True when the solver stopped before
    ``t[-1]`` (see :func:`dynclip.ode.integrate`); ``message`` then says why, and the rows of
    the times not reached are NaN.
    """
    t: np.ndarray
    theta: np.ndarray
    loss: np.ndarray
    H_norm: np.ndarray
    n_rhs: int = 0
    config: dict = field(default_factory=dict)
    partial: bool = False
    message: str = ""

    def save(self, path):
        atomic_savez(path, {"t": self.t, "theta": self.theta, "loss": self.loss, "H_norm": self.H_norm},
                     {"format": "FlowResult", "config": self.config, "n_rhs": int(self.n_rhs),
                      "partial": bool(self.partial), "message": str(self.message)})

    @classmethod
    def load(cls, path):
        arrays, meta = read_npz(path, "FlowResult")
        if set(arrays) != {"t", "theta", "loss", "H_norm"}:
            raise ValueError(f"{path} is not a valid FlowResult file")
        return cls(n_rhs=int(meta.get("n_rhs", 0)), config=meta.get("config", {}),
                   partial=bool(meta.get("partial", False)), message=str(meta.get("message", "")), **arrays)
