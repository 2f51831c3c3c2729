"""Explicit 8-lane SIMD reductions: sums of squares, squared distances, dot products and the
SA step fused with the displacement (with :mod:`dynclip._blas`, the only LLVM-level code in dynclip).

Strict IEEE forbids LLVM from vectorising a running sum (that would reorder it), and its
SLP vectoriser does not turn dynclip's eight scalar accumulators into one vector register
either, so the sums of squares behind every norm ran one scalar element at a time. These
intrinsics keep the eight accumulators in one ``<8 x double>`` register: lane j sums, in
index order, the elements ``lo + j, lo + j + 8, ...`` -- the same operations in the same
order as eight scalar accumulators, so results are bit-identical to the plain loops in
``tests/test_simd.py``. The caller adds the tail and combines the lanes. The intrinsics do
no bounds checks (callers pass in-range offsets) and accept only contiguous 1-D float64
arrays (anything else is a compile-time typing error, never a strided misread).
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.extending import intrinsic

_F64 = ir.DoubleType()
_V8 = ir.VectorType(_F64, 8)
_LANES = types.UniTuple(types.float64, 8)


def _vec(*tys):
    """True when every type is a contiguous 1-D float64 array."""
    return all(isinstance(t, types.Array) and t.ndim == 1 and t.layout == "C" and t.dtype == types.float64
               for t in tys)


def _data(context, builder, ty, val):
    return context.make_array(ty)(context, builder, value=val).data


def _load8(builder, base, i):
    return builder.load(builder.bitcast(builder.gep(base, [i]), _V8.as_pointer()), align=8)


def _reduce8(context, builder, ptrs, lo, m, step):
    """Run ``acc = step(acc, *loaded vectors)`` over i = lo, lo+8, ..., < m; return the lanes.

    ``ptrs`` are element pointers; the vector for pointer p at step i starts at p + i."""
    intp = context.get_value_type(types.intp)
    acc = cgutils.alloca_once_value(builder, ir.Constant(_V8, [0.0] * 8))
    with cgutils.for_range_slice(builder, lo, m, ir.Constant(intp, 8), intp) as (i, _):
        builder.store(step(builder, builder.load(acc), *[_load8(builder, p, i) for p in ptrs]), acc)
    vec = builder.load(acc)
    return context.make_tuple(builder, _LANES, [builder.extract_element(vec, ir.Constant(ir.IntType(32), j))
                                                for j in range(8)])


@intrinsic
def sumsq_lanes(typingctx, v, lo, m):
    """Lanes of sum v_i^2 over [lo, m); (m - lo) must be a multiple of 8, 0 <= lo <= m <= len(v)."""
    if not _vec(v):
        return None
    sig = _LANES(v, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        base = _data(context, builder, signature.args[0], args[0])
        return _reduce8(context, builder, [base], args[1], args[2],
                        lambda b, acc, x: b.fadd(acc, b.fmul(x, x)))

    return sig, codegen


@intrinsic
def sqdist_lanes(typingctx, v, w, m):
    """Lanes of sum (v_i - w_i)^2 over [0, m); m must be a multiple of 8, m <= len(v), len(w)."""
    if not _vec(v, w):
        return None
    sig = _LANES(v, w, types.intp)

    def codegen(context, builder, signature, args):
        pv = _data(context, builder, signature.args[0], args[0])
        pw = _data(context, builder, signature.args[1], args[1])
        zero = context.get_constant(types.intp, 0)

        def step(b, acc, x, y):
            d = b.fsub(x, y)
            return b.fadd(acc, b.fmul(d, d))
        return _reduce8(context, builder, [pv, pw], zero, args[2], step)

    return sig, codegen


@intrinsic
def dot_lanes(typingctx, v, vo, w, wo, n):
    """Lanes of sum v[vo + i] w[wo + i] over i in [0, n); n must be a multiple of 8 and both
    ranges inside their arrays (lane j takes i = j mod 8, in order)."""
    if not _vec(v, w):
        return None
    sig = _LANES(v, types.intp, w, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        pv = builder.gep(_data(context, builder, signature.args[0], args[0]), [args[1]])
        pw = builder.gep(_data(context, builder, signature.args[2], args[2]), [args[3]])
        zero = context.get_constant(types.intp, 0)
        return _reduce8(context, builder, [pv, pw], zero, args[4],
                        lambda b, acc, x, y: b.fadd(acc, b.fmul(x, y)))

    return sig, codegen


def _splat(builder, x):
    v = ir.Constant(_V8, ir.Undefined)
    for j in range(8):
        v = builder.insert_element(v, x, ir.Constant(ir.IntType(32), j))
    return v


@intrinsic
def step_sqdist_lanes(typingctx, th, u, a, w, th0, n):
    """The SA step th_i <- th_i - a (w u_i) for i in [0, n), fused with the lanes of
    sum (th_i - th0_i)^2 of the new th; n must be a multiple of 8 and <= every length."""
    if not _vec(th, u, th0):
        return None
    sig = _LANES(th, u, types.float64, types.float64, th0, types.intp)

    def codegen(context, builder, signature, args):
        pt, pu, pt0 = (_data(context, builder, signature.args[j], args[j]) for j in (0, 1, 4))
        av = _splat(builder, args[2])
        wv = _splat(builder, args[3])
        zero = context.get_constant(types.intp, 0)
        intp = context.get_value_type(types.intp)
        acc = cgutils.alloca_once_value(builder, ir.Constant(_V8, [0.0] * 8))
        with cgutils.for_range_slice(builder, zero, args[5], ir.Constant(intp, 8), intp) as (i, _):
            tptr = builder.bitcast(builder.gep(pt, [i]), _V8.as_pointer())
            t = builder.fsub(builder.load(tptr, align=8), builder.fmul(av, builder.fmul(wv, _load8(builder, pu, i))))
            builder.store(t, tptr, align=8)
            d = builder.fsub(t, _load8(builder, pt0, i))
            builder.store(builder.fadd(builder.load(acc), builder.fmul(d, d)), acc)
        vec = builder.load(acc)
        return context.make_tuple(builder, _LANES, [builder.extract_element(vec, ir.Constant(ir.IntType(32), j))
                                                    for j in range(8)])

    return sig, codegen
