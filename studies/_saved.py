"""A study's result dict ``res`` saved exactly, so its figures can be redrawn without re-running it.

Two files beside numbers.json: ``data.npz`` holds every numpy array (read back with
``allow_pickle=False``), ``res.json`` holds everything else and the place of each array. In
res.json, ``{"format": FORMAT, "run": run, "res": tree}``; ``run`` names the run (study and date,
as in numbers.json) so that a res.json is never read with another run's numbers.json; the tree is plain JSON (null, bools, ints, finite
floats, strings, lists, objects with string keys) except for these one-key markers:

- ``{"__array__": key}``: the array ``data.npz[key]``; a top-level array is stored under its own
  name, a nested one under its path joined by "/" ("A/linear, no clipping/err");
- ``{"__float__": "nan" | "inf" | "-inf"}``: a non-finite float (JSON has none);
- ``{"__numpy__": dtype, "value": v}``: a numpy scalar (np.float64, np.int64, np.bool_, ...);
- ``{"__tuple__": [...]}``: a tuple;
- ``{"__dict__": [[key, value], ...]}``: a dict whose keys are not all strings, or that has a key
  starting with "__" (it would read as a marker).

Anything else (objects, object arrays) is refused with a TypeError naming its place in ``res``.
"""
import dataclasses
import json
import os

import numpy as np

FORMAT = "dynclip-study-res/1"
RES_JSON, DATA_NPZ = "res.json", "data.npz"
_NONFINITE = ("nan", "inf", "-inf")


def _float(x):
    return x if np.isfinite(x) else {"__float__": str(x)}


def _encode(v, path, arrays):
    where = "/".join(path) or "res"
    if isinstance(v, np.ndarray):
        if v.dtype.kind not in "biufcUS":
            raise TypeError(f"{where}: cannot save an array of dtype {v.dtype} without pickle")
        key = where if path else "res"
        while key in arrays:                     # a key containing "/" could collide with a path
            key += "~"
        arrays[key] = v
        return {"__array__": key}
    if isinstance(v, np.generic):
        if v.dtype.kind not in "biuf":
            raise TypeError(f"{where}: cannot save a numpy scalar of dtype {v.dtype}")
        x = v.item()
        return {"__numpy__": v.dtype.name, "value": _float(x) if isinstance(x, float) else x}
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return _float(v)
    if isinstance(v, tuple):
        return {"__tuple__": [_encode(x, path + [str(i)], arrays) for i, x in enumerate(v)]}
    if isinstance(v, list):
        return [_encode(x, path + [str(i)], arrays) for i, x in enumerate(v)]
    if isinstance(v, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in v):
            return {k: _encode(x, path + [k], arrays) for k, x in v.items()}
        return {"__dict__": [[_encode(k, path + ["key"], arrays), _encode(x, path + [str(k)], arrays)]
                             for k, x in v.items()]}
    raise TypeError(f"{where}: cannot save a value of type {type(v).__name__} (use arrays, numbers, strings, lists, "
                    "tuples and dicts of these)")


def _decode(v, arrays):
    if isinstance(v, list):
        return [_decode(x, arrays) for x in v]
    if not isinstance(v, dict):
        return v
    if len(v) == 1:
        (k, x), = v.items()
        if k == "__array__":
            return arrays[x]
        if k == "__float__":
            return float(x)
        if k == "__tuple__":
            return tuple(_decode(y, arrays) for y in x)
        if k == "__dict__":
            return {_decode(a, arrays): _decode(b, arrays) for a, b in x}
    if set(v) == {"__numpy__", "value"}:
        return np.dtype(v["__numpy__"]).type(_decode(v["value"], arrays))
    return {k: _decode(x, arrays) for k, x in v.items()}


def save_res(res, outdir, run=None):
    """Write ``res`` to outdir/res.json and outdir/data.npz (both replaced); ``run``: a JSON-able
    label of the run that :func:`load_res` checks."""
    arrays = {}
    tree = _encode(res, [], arrays)
    text = json.dumps({"format": FORMAT, "run": run, "res": tree}, indent=1, allow_nan=False, ensure_ascii=False)
    np.savez_compressed(os.path.join(outdir, DATA_NPZ), **arrays)
    with open(os.path.join(outdir, RES_JSON), "w", encoding="utf-8") as f:
        f.write(text + "\n")


def has_res(outdir):
    return all(os.path.isfile(os.path.join(outdir, f)) for f in (RES_JSON, DATA_NPZ))


def load_res(outdir, run=None):
    """The ``res`` saved by :func:`save_res` in outdir, exactly (arrays, scalar types, tuples);
    with ``run`` given, a ValueError unless it was saved with the same label."""
    path = os.path.join(outdir, RES_JSON)
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    if doc.get("format") != FORMAT:
        raise ValueError(f"{path}: format {doc.get('format')!r}, expected {FORMAT!r}")
    if run is not None and doc.get("run") != run:
        raise ValueError(f"{path} comes from run {doc.get('run')}, numbers.json from run {run}: "
                         "re-run the study")
    with np.load(os.path.join(outdir, DATA_NPZ), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return _decode(doc["res"], arrays)


def _restore(v, like):
    """A config value read back from numbers.json: lists become tuples, "nan"/"inf"/"-inf" floats
    (numbers.json writes non-finite floats as strings), following the type of ``like``."""
    if isinstance(like, str):
        return v
    if isinstance(v, str) and v in _NONFINITE:
        return float(v)
    if isinstance(v, list):
        el = like if isinstance(like, (tuple, list)) else ()
        return tuple(_restore(x, el[i] if i < len(el) else None) for i, x in enumerate(v))
    return v


def config_from_json(Config, saved):
    """Rebuild a study's Config dataclass from numbers.json's "config" (tuples come back as lists)."""
    fields = {f.name: f for f in dataclasses.fields(Config)}
    unknown = sorted(set(saved) - set(fields))
    if unknown:
        raise ValueError(f"saved config has fields {unknown} that {Config.__module__}.Config does not know")
    default = Config()
    return Config(**{k: _restore(v, getattr(default, k)) for k, v in saved.items()})
