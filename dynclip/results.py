"""Result objects and their files: NumPy ``.npz`` arrays plus a JSON header, never pickle."""
from dataclasses import MISSING, dataclass, field, fields
import json
import math
import os
import secrets
import socket
import stat
import struct
import zipfile
import zlib

import numpy as np

from . import _memory

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


class FormatError(ValueError):
    """A file that is not what it should be (raised by a layout check; read_npz adds the path)."""


# format problems of a zip/npy file; resource errors (MemoryError, OSError) are not among them
_BAD_FILE = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, UnicodeDecodeError, struct.error,
             NotImplementedError, KeyError)
_MAX_HEADER = 1 << 24            # bytes of JSON header


def _npy_header(m):
    """``(shape, dtype)`` of an .npy stream, read without the data."""
    version = np.lib.format.read_magic(m)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(m)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(m)
    else:
        raise FormatError(f"unsupported .npy version {version}")
    return tuple(int(n) for n in shape), dtype


def read_npz(path, kind, layout=None):
    """Read a file written by :func:`atomic_savez`; returns ``(arrays, meta)``.

    ``layout(meta, members)``, given the JSON header and ``{name: (dtype, shape)}`` of the arrays
    (read from their .npy headers, nothing decompressed yet), returns ``{name: (dtype, shape,
    required)}`` for every array the file may hold, or raises :class:`FormatError`. Every array is
    checked against it before its data are read, so a file cannot make this allocate more than its
    header declares (without a layout, any arrays are read, within the memory available). Refuses anything but a regular file (a FIFO would block) and never unpickles.

    Raises ValueError for truncated, corrupted or foreign files; FileNotFoundError, other OSErrors
    and MemoryError (resources, not the file's fault) pass through unchanged.
    """
    path = os.fsdecode(os.fspath(path))

    def bad(why):
        return ValueError(f"{path} is not a valid dynclip {kind} file ({why})")

    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        what = ("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else
                "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "not a regular file")
        raise bad(f"{what}, not a regular file")
    with os.fdopen(fd, "rb") as f:
        if f.read(4) not in (b"PK\x03\x04", b"PK\x05\x06"):
            raise ValueError(f"{path} is not a readable dynclip {kind} file (not an .npz archive)")
        f.seek(0)
        try:
            with zipfile.ZipFile(f) as z:
                members = {}
                for info in z.infolist():
                    name = info.filename[:-4] if info.filename.endswith(".npy") else None
                    if name is None or name in members:
                        raise FormatError(f"unexpected member {info.filename!r}")
                    with z.open(info) as m:
                        shape, dtype = _npy_header(m)
                    if dtype.hasobject:
                        raise FormatError(f"{name!r} holds Python objects (pickled data are never loaded)")
                    members[name] = (info, dtype, shape)
                if "__meta__" not in members:
                    raise ValueError(f"{path} is not a dynclip {kind} file (no header)")
                _, dt, shape = members.pop("__meta__")
                if dt != np.uint8 or len(shape) != 1 or shape[0] > _MAX_HEADER:
                    raise FormatError("a corrupted header")
                with z.open("__meta__.npy") as m:
                    raw = np.lib.format.read_array(m, allow_pickle=False)
                try:
                    meta = json.loads(raw.tobytes().decode())
                except ValueError:
                    raise FormatError("a corrupted header") from None
                if not isinstance(meta, dict):
                    raise FormatError("a corrupted header: not a JSON object")
                if meta.get("format") != kind:
                    raise ValueError(f"{path} holds {meta.get('format')!r}, not a {kind} file")
                version = meta.get("version", FORMAT)
                if version != FORMAT:
                    raise FormatError(f"format version {version!r}; this dynclip reads {FORMAT!r}: "
                                      "read it with the dynclip version that wrote it")
                shapes = {n: (dt, sh) for n, (_, dt, sh) in members.items()}
                spec = layout(meta, shapes) if layout is not None else {n: v + (True,) for n, v in shapes.items()}
                missing = [n for n, (_, _, req) in spec.items() if req and n not in members]
                unknown = sorted(set(members) - set(spec))
                if missing or unknown:
                    raise FormatError("; ".join(([f"missing fields {missing}"] if missing else [])
                                                + ([f"unknown fields {unknown}"] if unknown else [])))
                for n, (_, dt, sh) in members.items():
                    want_dt, want_sh = spec[n][:2]
                    if dt.kind != want_dt.kind or dt.itemsize != want_dt.itemsize or sh != tuple(want_sh):
                        raise FormatError(f"{n!r} is {dt.str} {sh}, expected {want_dt.str} {tuple(want_sh)}")
                _memory.check(f"reading {path}", [(dt.itemsize * math.prod(sh), "its arrays")
                                                  for _, dt, sh in members.values()], MemoryError)
                arrays = {}
                for n, (info, dt, sh) in members.items():
                    with z.open(info) as m:
                        a = np.lib.format.read_array(m, allow_pickle=False)
                    arrays[n] = a.astype(a.dtype.newbyteorder("="), copy=False)
        except FormatError as e:
            if type(e) is not FormatError:      # a caller's own refusal
                raise
            raise bad(e) from None
        except (MemoryError, OSError):
            raise
        except _BAD_FILE as e:
            if isinstance(e, ValueError) and str(e).startswith(path):
                raise
            raise ValueError(f"{path} is not a readable dynclip {kind} file ({type(e).__name__}: {e})") from None
    return arrays, meta


_JSON = {bool: "true or false", int: "an integer", str: "a string", dict: "an object"}


def header_field(meta, name, kind, default):
    """``meta[name]`` (or ``default``), which must be of JSON type ``kind`` (bool, int, str or dict)."""
    v = meta.get(name, default)
    if not (type(v) is kind if kind in (bool, int) else isinstance(v, kind)):
        raise FormatError(f"header field {name!r} must be {_JSON[kind]}; got {json.dumps(v)[:40]}")
    return v


def _layout(spec, meta, members, infer):
    """Expected arrays from ``spec`` ``{name: (dtype, dims, required)}``, dims a string of size letters
    (``"RKP"``) and digits. The sizes come from the header's ``shape`` (files with a version), or, in
    files written before the version was recorded, from the arrays ``infer`` names."""
    letters = sorted({c for _, dims, _ in spec.values() for c in dims if c.isalpha()})
    if "version" in meta:
        sizes = header_field(meta, "shape", dict, None)
        if sorted(sizes) != letters or not all(type(v) is int and v >= 0 for v in sizes.values()):
            raise FormatError(f"header field 'shape' must give the sizes {letters} as integers >= 0")
    else:
        sizes = {}
        for name, dims in infer.items():
            shape = members.get(name, (None, ()))[1]
            if len(shape) != len(dims):
                raise FormatError(f"missing or mis-shaped {name!r}")
            sizes.update(zip(dims, shape))
    return {name: (np.dtype(dt), tuple(sizes[c] if c.isalpha() else int(c) for c in dims), req)
            for name, (dt, dims, req) in spec.items()}


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
        (R, P), (K,) = np.shape(self.theta_final), np.shape(self.step)
        atomic_savez(path, arrays, {"format": "SAResult", "version": FORMAT, "shape": {"R": R, "K": K, "P": P},
                                    "config": self.config, "partial": bool(self.partial)})

    @classmethod
    def load(cls, path):
        """Read a file written by :meth:`save` (no pickle; every array's dtype and shape checked;
        clear error for foreign, damaged or tampered files)."""
        def layout(meta, members):
            header_field(meta, "config", dict, {})
            header_field(meta, "partial", bool, False)
            return _layout(_SA_ARRAYS, meta, members, {"theta_final": "RP", "step": "K"})

        arrays, meta = read_npz(path, "SAResult", layout)
        return cls(config=meta.get("config", {}), partial=meta.get("partial", False), **arrays)


# dtype and dimensions (R replicas, K records, P parameters) of SAResult's arrays
_SA_DIMS = dict(theta_final=("f8", "RP"), step=("i8", "K"), time=("f8", "K"), loss=("f8", "RK"),
                grad_norm=("f8", "RK"), clip_factor=("f8", "RK"), clip_fraction=("f8", "R"),
                displacement=("f8", "RK"), max_displacement=("f8", "R"), update_sum=("f8", "RK"),
                diverged=("?", "R"), blowup_step=("i8", "R"), nonfinite=("?", "R"), alrc_moments=("f8", "R2"),
                noise_norm=("f8", "RK"), max_noise=("f8", "R"), noise=("f8", "RP"), noise_sq_sum=("f8", "R"),
                ref_deviation=("f8", "RK"), theta=("f8", "RKP"))
_SA_ARRAYS = {f.name: _SA_DIMS[f.name] + (f.default is MISSING,) for f in fields(SAResult)
              if f.name not in ("config", "partial")}


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
        (K, P) = np.shape(self.theta)
        atomic_savez(path, {"t": self.t, "theta": self.theta, "loss": self.loss, "H_norm": self.H_norm},
                     {"format": "FlowResult", "version": FORMAT, "shape": {"K": K, "P": P}, "config": self.config,
                      "n_rhs": int(self.n_rhs), "partial": bool(self.partial), "message": str(self.message)})

    @classmethod
    def load(cls, path):
        def layout(meta, members):
            for name, kind, default in (("config", dict, {}), ("n_rhs", int, 0), ("partial", bool, False),
                                        ("message", str, "")):
                header_field(meta, name, kind, default)
            spec = {"t": ("f8", "K", True), "theta": ("f8", "KP", True), "loss": ("f8", "K", True),
                    "H_norm": ("f8", "K", True)}
            return _layout(spec, meta, members, {"theta": "KP"})

        arrays, meta = read_npz(path, "FlowResult", layout)
        return cls(n_rhs=meta.get("n_rhs", 0), config=meta.get("config", {}), partial=meta.get("partial", False),
                   message=meta.get("message", ""), **arrays)
