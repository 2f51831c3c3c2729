"""Argument checks of dynclip's public functions, in one place.

Every check raises ``ValueError`` naming the argument and what it allows ("lam must be a
finite number > 0; got -1"), or returns the value in canonical form (an int, a float, a
float64 array). Scalar checks take ``(name, value)``. The ``*_array`` checks accept a number
or an array of them and check every entry (for the broadcasting functions of
:mod:`dynclip.bounds`). The network checks (:func:`check_net`, :func:`check_data`,
:func:`check_theta`) validate against an :class:`dynclip.model.MLP`.
"""
import math
import os
import tempfile

import numpy as np

#: the largest value of the int64 counters and indices of the kernels
INT64_MAX = 2**63 - 1


# ----------------------------------------------------------------------------------------
# describing an offending value
# ----------------------------------------------------------------------------------------
def describe(v, limit=60):
    """A short one-line description of a value, for error messages."""
    if isinstance(v, np.ndarray) and v.ndim > 0:
        return f"an array of shape {v.shape} and dtype {v.dtype}"
    try:
        r = " ".join(repr(v).split())
    except Exception:       # a broken __repr__ must not hide the real error
        r = f"a {type(v).__name__}"
    return r if len(r) <= limit else r[:limit - 3] + "..."


def describe_values(x):
    """Like :func:`describe`, but showing the values of a number or a small array (integral
    floats as integers: "got -1", "got [0.5, -2]")."""
    try:
        a = np.asarray(x)
        if a.ndim == 0 and a.dtype.kind in "biuf":
            v = float(a)
            return repr(int(v)) if v.is_integer() else repr(v)
        if a.ndim == 0 and a.dtype.kind == "c":
            return repr(a.item())
        if a.ndim > 0 and a.dtype.kind != "O" and a.size <= 6:
            return repr(a.tolist())
    except Exception:       # ragged sequences, odd objects: fall through to repr
        pass
    if isinstance(x, np.ndarray):
        return f"an array of shape {x.shape} with offending entries"
    return describe(x)


# ----------------------------------------------------------------------------------------
# keyword arguments
# ----------------------------------------------------------------------------------------
#: keyword arguments users bring from torch/optax, and what dynclip calls them
ML_HINTS = {"lr": "the step size is a schedule: schedule=schedules.constant(lr)",
            "learning_rate": "the step size is a schedule: schedule=schedules.constant(learning_rate)",
            "max_norm": "the clipping threshold is lam: rule=clipping.classic(lam=max_norm, convention='torch')",
            "clip_value": "element-wise clipping is its own rule: clipping.value(v)",
            "momentum": "pass optimizer=optimizers.momentum(beta)",
            "weight_decay": "pass optimizer=optimizers.sgd(weight_decay=...) (or momentum/adam)",
            "batch": "the minibatch size is batch_size", "steps": "the number of steps is n_steps",
            "epochs": "dynclip counts steps: n_steps"}


def check_no_unknown(fn, unknown):
    """TypeError for unexpected keyword arguments, with a hint for the names torch/optax users try."""
    if unknown:
        k = sorted(unknown)[0]
        hint = f" ({ML_HINTS[k]})" if k in ML_HINTS else ""
        raise TypeError(f"{fn}() got an unexpected keyword argument {k!r}{hint}")


# ----------------------------------------------------------------------------------------
# scalars
# ----------------------------------------------------------------------------------------
def check_int(name, v, lo=1, hi=INT64_MAX):
    """``v`` as an int in [lo, hi]: an int, a NumPy integer or an integral float (not a bool)."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            v = int(v)
        else:
            raise ValueError(f"{name} must be an integer >= {lo}; got {describe(v)}")
    if v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}; got {describe(v)}")
    if v > hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}]; got {describe(v)}")
    return int(v)


def check_real(name, v, what, ok=None):
    """``v`` as a float: a real number (int, float, NumPy scalar or 0-d array; not a bool or a string)
    with ``ok(value)`` true; else ValueError "{name} must be {what}; got ..."."""
    x = None
    if isinstance(v, np.ndarray) and v.ndim == 0 and v.dtype.kind in "iuf":
        x = float(v)
    elif isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
        try:
            x = float(v)
        except OverflowError:       # an int beyond the float range
            x = math.inf if v > 0 else -math.inf
    if x is None or (ok is not None and not ok(x)):
        raise ValueError(f"{name} must be {what}; got {describe(v)}")
    return x


def check_positive(name, v, allow_inf=False):
    """A finite number > 0 (or, with ``allow_inf``, a number > 0 or inf) as a float."""
    if allow_inf:
        return check_real(name, v, "a number > 0 (inf allowed)", lambda x: x > 0)
    return check_real(name, v, "a finite number > 0", lambda x: 0 < x < math.inf)


def check_nonneg(name, v):
    """A finite number >= 0 as a float."""
    return check_real(name, v, "a finite number >= 0", lambda x: 0 <= x < math.inf)


def check_fraction(name, v):
    """A number in [0, 1) as a float (a decay rate such as momentum's beta)."""
    return check_real(name, v, "a number in [0, 1)", lambda x: 0 <= x < 1)


def check_choice(name, v, allowed):
    """``v`` if it is one of the strings ``allowed``; else ValueError naming ``name`` and the choices."""
    if not isinstance(v, str) or v not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {describe(v)}")
    return v


def check_bool(name, v, allow_none=False):
    """``v`` as a bool: True/False (or NumPy bools, 0 and 1); None too when ``allow_none``."""
    if v is None and allow_none:
        return None
    if isinstance(v, (bool, np.bool_)) or (isinstance(v, (int, np.integer)) and v in (0, 1)):
        return bool(v)
    raise ValueError(f"{name} must be True or False{' (or None)' if allow_none else ''}; got {describe(v)}")


def check_seed(seed, name="seed"):
    """A seed: a non-negative integer (not a bool)."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{name} must be a non-negative integer; got {describe(seed)}")
    return int(seed)


def check_path(name, v):
    """A file path (str, bytes or os.PathLike) as a str, or None; TypeError otherwise."""
    if v is None:
        return None
    try:
        return os.fsdecode(os.fspath(v))
    except TypeError:
        raise TypeError(f"{name} must be a file path (str, bytes or os.PathLike); got {describe(v)}") from None


def check_writable_path(name, v):
    """A path that a file can be written to (its folder exists and takes a new file; it is not a folder),
    as a str, or None. Checked by creating and removing a file there, so a run fails at once, not at its
    first write."""
    p = check_path(name, v)
    if p is None:
        return None
    if os.path.isdir(p):
        raise ValueError(f"{name}={p!r} is a folder; give a file path such as {os.path.join(p, 'run.npz')!r}")
    parent = os.path.dirname(os.path.abspath(p))
    if not os.path.isdir(parent):
        raise ValueError(f"{name}={p!r}: the folder {parent!r} does not exist or is not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=".dynclip-probe-")
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise ValueError(f"{name}={p!r}: cannot write a file in {parent!r} ({e.strerror or e})") from None
    return p


# ----------------------------------------------------------------------------------------
# arrays
# ----------------------------------------------------------------------------------------
def as_float_array(v, name, what="a float array"):
    """``v`` as a C-contiguous float64 array of its own shape (a scalar stays 0-d); ValueError
    "{name} must be {what}" if NumPy cannot convert it."""
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} must be {what}; got {describe(v)}") from None
    return np.ascontiguousarray(a) if a.ndim else a


def real_array(name, x):
    """A number or array of numbers, none NaN, as a float array (infinities pass)."""
    try:
        arr = np.asarray(x, dtype=float)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} must be a real number or array of real numbers, got {describe_values(x)}") from None
    if np.any(np.isnan(arr)):
        raise ValueError(f"{name} must not be NaN, got {describe_values(x)}")
    return arr


def nonneg_array(name, x):
    """Every entry finite and >= 0."""
    arr = real_array(name, x)
    if np.any(~np.isfinite(arr) | (arr < 0)):
        raise ValueError(f"{name} must be finite and >= 0, got {describe_values(x)}")
    return arr


def positive_array(name, x):
    """Every entry finite and > 0."""
    arr = real_array(name, x)
    if np.any(~np.isfinite(arr) | (arr <= 0)):
        raise ValueError(f"{name} must be finite and > 0, got {describe_values(x)}")
    return arr


def positive_int_array(name, x):
    """Every entry integer-valued and >= 1 (not a bool)."""
    if isinstance(x, (bool, np.bool_)):
        raise ValueError(f"{name} must be an integer >= 1, got {x!r}")
    arr = real_array(name, x)
    if np.any(~np.isfinite(arr) | (arr < 1) | (arr != np.round(arr))):
        raise ValueError(f"{name} must be an integer >= 1, got {describe_values(x)}")
    return arr


def check_broadcast(**args):
    """Check that the named arguments broadcast together; ValueError naming the first that does not."""
    shape, seen = (), []
    for name, x in args.items():
        try:
            shape = np.broadcast_shapes(shape, np.shape(x))
        except ValueError:
            others = ", ".join(f"{n} of shape {np.shape(v)}" for n, v in seen)
            raise ValueError(f"{name} of shape {np.shape(x)} does not broadcast with {others}") from None
        seen.append((name, x))


# ----------------------------------------------------------------------------------------
# networks, data and parameters
# ----------------------------------------------------------------------------------------
def check_widths(widths, name="widths"):
    """Layer widths as a tuple of at least two ints >= 1 (from a list, tuple or 1-D array; not a string)."""
    msg = f"{name} must be a sequence of at least two integers >= 1; got {describe(widths)}"
    if isinstance(widths, (str, bytes, bytearray, memoryview)) or not isinstance(widths, (list, tuple, np.ndarray)):
        raise ValueError(msg)
    try:
        w = tuple(check_int(name, v) for v in widths)
    except (TypeError, ValueError):     # also a 0-d array (not iterable)
        raise ValueError(msg) from None
    if len(w) < 2:
        raise ValueError(msg)
    return w


def check_net(net):
    """``net`` is an MLP with valid widths and activation (also when built by hand, not by ``mlp()``)."""
    from .model import MLP, activation_code
    if not isinstance(net, MLP):
        raise TypeError(f"net must be an MLP from dynclip.mlp(); got {type(net).__name__}")
    check_widths(net.widths, "net.widths")
    activation_code(net.activation, "net.activation")


def check_data(net, X, Y, loss):
    """Validate and cast X, Y; return (X, Y2d, loss_code)."""
    from .model import Loss, loss_code
    lk = loss_code(loss)
    X = as_float_array(X, "X", "a float array of shape (N, d_in)")
    if X.ndim != 2 or X.shape[1] != net.widths[0] or X.shape[0] < 1:
        raise ValueError(f"X must have shape (N, {net.widths[0]}) with N >= 1; got {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X must be finite (no NaN or inf)")
    try:
        Y = np.asarray(Y)
        Yf = Y.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError("Y must be a numeric array") from None
    N, dout = X.shape[0], net.widths[-1]
    if lk == Loss.cross_entropy:
        if dout < 2:
            raise ValueError(f"loss 'cross_entropy' needs a net with >= 2 outputs (one per class); this net has "
                             f"{dout}: use widths ending in the number of classes, or loss 'mse' for one output")
        Yf = Yf.reshape(-1) if Yf.ndim == 2 and Yf.shape[1] == 1 else Yf
        if Yf.shape != (N,):
            raise ValueError(f"Y must have shape ({N},) of integer class labels for cross_entropy; got {Y.shape}")
        if not np.all(np.isfinite(Yf)) or np.any(Yf != np.round(Yf)) or np.any(Yf < 0) or np.any(Yf >= dout):
            raise ValueError(f"Y must hold integer class labels in [0, {dout}) for cross_entropy")
        Yf = Yf.reshape(N, 1)
    else:
        if Yf.ndim == 1 and dout == 1:
            Yf = Yf.reshape(N, 1) if Yf.shape[0] == N else Yf
        if Yf.shape != (N, dout):
            raise ValueError(f"Y must have shape ({N}, {dout})" + (f" or ({N},)" if dout == 1 else "")
                             + f"; got {Y.shape}")
        if not np.all(np.isfinite(Yf)):
            raise ValueError("Y must be finite (no NaN or inf)")
    return X, np.ascontiguousarray(Yf), lk


def check_theta(net, theta, name="theta", rows=None):
    """``theta`` as a finite float64 array of shape (P,) (or, given ``rows``, (rows, P))."""
    th = as_float_array(theta, name)
    P = net.n_params
    if rows is None:
        ok = th.shape == (P,)
        want = f"({P},)"
    else:
        ok = th.shape in ((P,), (rows, P))
        want = f"({P},) or ({rows}, {P})"
    if not ok:
        raise ValueError(f"{name} must have shape {want}; got {th.shape}")
    if not np.all(np.isfinite(th)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return th
