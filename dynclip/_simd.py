"""Explicit 8-lane SIMD reductions: sums of squares, squared distances, dot products and the
SA step fused with the displacement and small matrix products (the only LLVM-level code in dynclip).

Strict IEEE forbids LLVM from vectorising a running sum (that would reorder it), and its
SLP vectoriser does not turn scalar accumulators into vector registers either, so the sums
of squares behind every norm ran one scalar element at a time. These intrinsics fix the
summation order explicitly: the short dot products keep eight accumulators in one
``<8 x double>`` register (lane j sums the elements ``j, j + 8, ...`` in order); the long
reductions over a whole parameter vector (norms, distances) use four such registers, so that
four additions are in flight instead of one waiting for the previous (:func:`_reduce32`).
``tests/test_simd.py`` checks each against plain loops in the documented order, bit for bit.
The caller adds the tail and combines the lanes. The intrinsics do no bounds checks (callers
pass in-range offsets) and accept only contiguous 1-D float64 arrays (anything else is a
compile-time typing error, never a strided misread). Row kernels (:func:`dot8`,
:func:`axpy_rows`, :func:`ger_rows`) serve the forward and backward passes of small batches.
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


def _lanes(context, builder, vec):
    return context.make_tuple(builder, _LANES, [builder.extract_element(vec, ir.Constant(ir.IntType(32), j))
                                                for j in range(8)])


def _reduce32(context, builder, ptrs, lo, m, step, pointer_first=False):
    """Run ``acc_k = step(acc_k, *loaded vectors)`` over i = lo, lo+8, ..., < m (``ptrs`` are
    element pointers; the vector for pointer p at step i starts at p + i) and return the lanes.
    Four accumulators keep four additions in flight (one would wait the full add latency per
    8 elements): accumulator k takes the vectors at
    i = lo + 32 q + 8 k; the vectors after the last full block of 32 go to accumulator 0; the
    lanes returned are (acc0 + acc1) + (acc2 + acc3). With ``pointer_first`` the step gets a
    vector pointer for the first array instead of its loaded value (to update it in place)."""
    intp = context.get_value_type(types.intp)
    accs = [cgutils.alloca_once_value(builder, ir.Constant(_V8, [0.0] * 8)) for _ in range(4)]

    def operands(i):
        ops = [_load8(builder, p, i) for p in ptrs]
        if pointer_first:
            ops[0] = builder.bitcast(builder.gep(ptrs[0], [i]), _V8.as_pointer())
        return ops

    m32 = builder.add(lo, builder.mul(builder.sdiv(builder.sub(m, lo), ir.Constant(intp, 32)), ir.Constant(intp, 32)))
    with cgutils.for_range_slice(builder, lo, m32, ir.Constant(intp, 32), intp) as (i, _):
        for k in range(4):
            ik = builder.add(i, ir.Constant(intp, 8 * k))
            builder.store(step(builder, builder.load(accs[k]), *operands(ik)), accs[k])
    with cgutils.for_range_slice(builder, m32, m, ir.Constant(intp, 8), intp) as (i, _):
        builder.store(step(builder, builder.load(accs[0]), *operands(i)), accs[0])
    a = [builder.load(x) for x in accs]
    return _lanes(context, builder, builder.fadd(builder.fadd(a[0], a[1]), builder.fadd(a[2], a[3])))


@intrinsic
def sumsq_lanes(typingctx, v, lo, m):
    """Lanes of sum v_i^2 over [lo, m); (m - lo) must be a multiple of 8, 0 <= lo <= m <= len(v)."""
    if not _vec(v):
        return None
    sig = _LANES(v, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        base = _data(context, builder, signature.args[0], args[0])
        return _reduce32(context, builder, [base], args[1], args[2],
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
        return _reduce32(context, builder, [pv, pw], zero, args[2], step)

    return sig, codegen


def _splat(builder, x):
    v = ir.Constant(_V8, ir.Undefined)
    for j in range(8):
        v = builder.insert_element(v, x, ir.Constant(ir.IntType(32), j))
    return v


@intrinsic
def step_sqdist_lanes(typingctx, th, u, a, w, th0, n):
    """The SA step th_i <- th_i - a (w u_i) for i in [0, n), fused with the lanes of
    sum (th_i - th0_i)^2 of the new th (summed as in :func:`_reduce32`); n must be a multiple
    of 8 and <= every length."""
    if not _vec(th, u, th0):
        return None
    sig = _LANES(th, u, types.float64, types.float64, th0, types.intp)

    def codegen(context, builder, signature, args):
        pt, pu, pt0 = (_data(context, builder, signature.args[j], args[j]) for j in (0, 1, 4))
        av = _splat(builder, args[2])
        wv = _splat(builder, args[3])

        zero = ir.Constant(context.get_value_type(types.intp), 0)

        def fused(b, acc, tptr, uu, t0):
            t = b.fsub(b.load(tptr, align=8), b.fmul(av, b.fmul(wv, uu)))
            b.store(t, tptr, align=8)
            d = b.fsub(t, t0)
            return b.fadd(acc, b.fmul(d, d))

        return _reduce32(context, builder, [pt, pu, pt0], zero, args[5], fused, pointer_first=True)

    return sig, codegen


def _shuffle_add(builder, a, b):
    """[a0 + a1, a2 + a3, ..., b0 + b1, ...]: pairwise sums of adjacent lanes of a then b."""
    i32 = ir.IntType(32)
    even = ir.Constant(ir.VectorType(i32, 8), [2 * j for j in range(8)])
    odd = ir.Constant(ir.VectorType(i32, 8), [2 * j + 1 for j in range(8)])
    return builder.fadd(builder.shuffle_vector(a, b, even), builder.shuffle_vector(a, b, odd))


# --- masked access: the last, partial vector of a row of any length -----------------------
_MASK = ir.VectorType(ir.IntType(1), 8)


def _mask(builder, count):
    """<8 x i1>: lanes j < count (count an intp; <= 0 gives no lane, >= 8 all)."""
    i64v = ir.VectorType(ir.IntType(64), 8)
    c = builder.insert_element(ir.Constant(i64v, ir.Undefined), builder.sext(count, ir.IntType(64))
                               if count.type.width < 64 else count, ir.Constant(ir.IntType(32), 0))
    c = builder.shuffle_vector(c, c, ir.Constant(ir.VectorType(ir.IntType(32), 8), [0] * 8))
    return builder.icmp_signed("<", ir.Constant(i64v, list(range(8))), c)


def _vptr(builder, base, i):
    return builder.bitcast(builder.gep(base, [i]), _V8.as_pointer())


def _mload(builder, base, i, mask):
    """8 elements from base + i; lanes outside ``mask`` are not read and give +0.0 (mask None: all)."""
    if mask is None:
        return _load8(builder, base, i)
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(
        _V8, [_V8.as_pointer(), ir.IntType(32), _MASK, _V8]), "llvm.masked.load.v8f64.p0")
    return builder.call(fn, [_vptr(builder, base, i), ir.Constant(ir.IntType(32), 8), mask,
                             ir.Constant(_V8, [0.0] * 8)])


def _mstore(builder, val, base, i, mask):
    """Store the lanes of ``val`` inside ``mask`` at base + i (mask None: all eight)."""
    if mask is None:
        builder.store(val, _vptr(builder, base, i), align=8)
        return
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(
        ir.VoidType(), [_V8, _V8.as_pointer(), ir.IntType(32), _MASK]), "llvm.masked.store.v8f64.p0")
    builder.call(fn, [val, _vptr(builder, base, i), ir.Constant(ir.IntType(32), 8), mask])


def _and(builder, m1, m2):
    return m2 if m1 is None else (m1 if m2 is None else builder.and_(m1, m2))


@intrinsic
def affine8(typingctx, v, vo, stride, x, xo, n, nrows, b, bo, out, oo):
    """Up to eight outputs of an affine map at once:
    out[oo + k] = b[bo + k] + sum_{i < n} v[vo + k stride + i] x[xo + i] for k < nrows <= 8.

    Each sum runs over eight lanes (lane j takes i = j, j + 8, ...; the last, partial vector is
    zero-padded by a masked load) combined as ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
    the eight lane vectors are combined by one shuffle tree (7 vector additions instead of 56
    scalar ones) and x is loaded once for all rows. Rows k >= nrows are not read and their
    outputs are not written. Ranges must lie inside the arrays."""
    if not _vec(v, x, b, out):
        return None
    ip = types.intp
    sig = types.none(v, ip, ip, x, ip, ip, ip, b, ip, out, ip)

    def codegen(context, builder, signature, args):
        intp = context.get_value_type(types.intp)
        ts = signature.args
        pv, px, pb, po = (_ptr(context, builder, ts[j], args[j], args[j + 1]) for j in (0, 3, 7, 9))
        stride, n, nrows = args[2], args[5], args[6]
        n8 = builder.mul(builder.sdiv(n, ir.Constant(intp, 8)), ir.Constant(intp, 8))
        rows = [builder.gep(pv, [builder.mul(stride, ir.Constant(intp, k))]) for k in range(8)]
        rowok = [builder.icmp_signed(">", nrows, ir.Constant(intp, k)) for k in range(8)]
        accs = [cgutils.alloca_once_value(builder, ir.Constant(_V8, [0.0] * 8)) for _ in range(8)]

        def step(i, colmask):
            xv = _mload(builder, px, i, colmask)
            for k in range(8):
                m = _and(builder, colmask, builder.select(rowok[k], ir.Constant(_MASK, [1] * 8),
                                                          ir.Constant(_MASK, [0] * 8)))
                builder.store(builder.fadd(builder.load(accs[k]), builder.fmul(_mload(builder, rows[k], i, m), xv)),
                              accs[k])

        with cgutils.for_range_slice(builder, ir.Constant(intp, 0), n8, ir.Constant(intp, 8), intp) as (i, _):
            step(i, None)
        with builder.if_then(builder.icmp_signed("<", n8, n)):
            step(n8, _mask(builder, builder.sub(n, n8)))
        a = [builder.load(p) for p in accs]
        v1 = [_shuffle_add(builder, a[2 * q], a[2 * q + 1]) for q in range(4)]
        v2 = [_shuffle_add(builder, v1[0], v1[1]), _shuffle_add(builder, v1[2], v1[3])]
        t = _shuffle_add(builder, v2[0], v2[1])
        outmask = _mask(builder, nrows)
        zero = ir.Constant(intp, 0)
        _mstore(builder, builder.fadd(_mload(builder, pb, zero, outmask), t), po, zero, outmask)
        return context.get_dummy_value()

    return sig, codegen


def _rows_blocks(context, builder, n, body):
    """Emit column blocks over [0, n): 32 columns (four vectors) at a time, then 8 at a time,
    then the partial last vector; ``body(j0, nv, mask)`` emits the work of the block starting
    at column j0 with nv vectors (mask None, or the lanes of the partial vector)."""
    intp = context.get_value_type(types.intp)
    n32 = builder.mul(builder.sdiv(n, ir.Constant(intp, 32)), ir.Constant(intp, 32))
    n8 = builder.mul(builder.sdiv(n, ir.Constant(intp, 8)), ir.Constant(intp, 8))
    with cgutils.for_range_slice(builder, ir.Constant(intp, 0), n32, ir.Constant(intp, 32), intp) as (j0, _):
        body(j0, 4, None)
    with cgutils.for_range_slice(builder, n32, n8, ir.Constant(intp, 8), intp) as (j0, _):
        body(j0, 1, None)
    with builder.if_then(builder.icmp_signed("<", n8, n)):
        body(n8, 1, _mask(builder, builder.sub(n, n8)))


def _ptr(context, builder, ty, arr, off):
    return builder.gep(_data(context, builder, ty, arr), [off])


def _coef(builder, pd, o):
    """The splatted row coefficient d[o], or None (coefficient 1: no multiplication)."""
    return None if pd is None else _splat(builder, builder.load(builder.gep(pd, [o])))


def _times(builder, dv, x):
    return x if dv is None else builder.fmul(dv, x)


def _rows_sig(m, d, x):
    """The signature shared by the row kernels (m, mo, stride, d, do, nrows, x, xo, n, flag),
    or None when an array is not contiguous 1-D float64 (d may also be None)."""
    if not (_vec(m, x) and (_vec(d) or isinstance(d, types.NoneType))):
        return None
    ip = types.intp
    return types.none(m, ip, ip, d, ip, ip, x, ip, ip, types.boolean)


def _rows_args(context, builder, signature, args):
    """(row pointer, coefficient pointer or None, x pointer, stride, nrows, n, flag) of a row kernel."""
    ts = signature.args
    pm, px = (_ptr(context, builder, ts[j], args[j], args[j + 1]) for j in (0, 6))
    pd = None if isinstance(ts[3], types.NoneType) else _ptr(context, builder, ts[3], args[3], args[4])
    return pm, pd, px, args[2], args[5], args[8], context.cast(builder, args[9], ts[9], types.boolean)


@intrinsic
def axpy_rows(typingctx, v, vo, stride, d, do, nrows, y, yo, n, accumulate):
    """y[yo + i] (+)= sum over o < nrows of d[do + o] v[vo + o stride + i], for i < n: a
    transposed matrix-vector product over row-major rows, summed in row order onto +0.0 (or,
    with ``accumulate``, onto y) -- bit-identical to adding the rows one by one. ``d=None``
    means coefficients 1 (column sums). The partial sums of 32 columns stay in registers
    across all rows. Ranges must lie inside the arrays."""
    sig = _rows_sig(v, d, y)
    if sig is None:
        return None

    def codegen(context, builder, signature, args):
        intp = context.get_value_type(types.intp)
        pv, pd, py, stride, nrows, n, acc_flag = _rows_args(context, builder, signature, args)
        accs = [cgutils.alloca_once(builder, _V8) for _ in range(4)]

        def body(j0, nv, mask):
            cols = [builder.add(j0, ir.Constant(intp, 8 * k)) for k in range(nv)]
            for k in range(nv):
                builder.store(ir.Constant(_V8, [0.0] * 8), accs[k])
            with builder.if_then(acc_flag):
                for k in range(nv):
                    builder.store(_mload(builder, py, cols[k], mask), accs[k])
            with cgutils.for_range(builder, nrows, intp=intp) as loop:
                o = loop.index
                dv = _coef(builder, pd, o)
                row = builder.gep(pv, [builder.mul(o, stride)])
                for k in range(nv):
                    w = _mload(builder, row, cols[k], mask)
                    builder.store(builder.fadd(builder.load(accs[k]), _times(builder, dv, w)), accs[k])
            for k in range(nv):
                _mstore(builder, builder.load(accs[k]), py, cols[k], mask)

        _rows_blocks(context, builder, n, body)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def ger_rows(typingctx, g, go, stride, d, do, nrows, a, ao, n, overwrite):
    """The rank-1 update g[go + o stride + i] += d[do + o] a[ao + i] for o < nrows, i < n, or
    ``=`` when ``overwrite``; ``d=None`` means coefficients 1 (a added to every row, e.g. a
    bias). a's 32-column blocks stay in registers across the rows. Ranges must lie inside the
    arrays."""
    sig = _rows_sig(g, d, a)
    if sig is None:
        return None

    def codegen(context, builder, signature, args):
        intp = context.get_value_type(types.intp)
        pg, pd, pa, stride, nrows, n, flag = _rows_args(context, builder, signature, args)

        def nest(add):
            def body(j0, nv, mask):
                cols = [builder.add(j0, ir.Constant(intp, 8 * k)) for k in range(nv)]
                av = [_mload(builder, pa, c, mask) for c in cols]
                with cgutils.for_range(builder, nrows, intp=intp) as loop:
                    o = loop.index
                    dv = _coef(builder, pd, o)
                    row = builder.gep(pg, [builder.mul(o, stride)])
                    for k in range(nv):
                        val = _times(builder, dv, av[k])
                        if add:
                            val = builder.fadd(_mload(builder, row, cols[k], mask), val)
                        _mstore(builder, val, row, cols[k], mask)
            _rows_blocks(context, builder, n, body)

        with builder.if_else(flag) as (then, otherwise):
            with then:
                nest(False)
            with otherwise:
                nest(True)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def gemm_rows(typingctx, c, co, ldc, a, ao, sa_i, sa_p, b, bo, ldb, m, n, k, accumulate):
    """A small matrix product with register blocking: for i < m, j < n,
    ``c[co + i ldc + j] (+)= sum over p < k of a[ao + i sa_i + p sa_p] b[bo + p ldb + j]``,
    summed in p order onto +0.0 (or, with ``accumulate``, onto c): the order of :func:`axpy_rows`
    (bit-identical to it row by row). ``a`` is read one element at a time (any strides: a
    transposed operand costs nothing), ``b`` and ``c`` by rows of 8-lane vectors. The columns go
    in blocks of 32, then 8, then a masked last vector; within a block, groups of rows of c
    (four rows of a 32-column block, eight rows of a narrower one) stay in registers across the
    whole sum, the rows after the last group one at a time. Ranges must lie inside the arrays."""
    if not _vec(c, a, b):
        return None
    ip = types.intp
    sig = types.none(c, ip, ip, a, ip, ip, ip, b, ip, ip, ip, ip, ip, types.boolean)

    def codegen(context, builder, signature, args):
        intp = context.get_value_type(types.intp)
        ts = signature.args
        pc = _ptr(context, builder, ts[0], args[0], args[1])
        pa = _ptr(context, builder, ts[3], args[3], args[4])
        pb = _ptr(context, builder, ts[7], args[7], args[8])
        ldc, sa_i, sa_p, ldb, m, n, k = args[2], args[5], args[6], args[9], args[10], args[11], args[12]
        acc_flag = context.cast(builder, args[13], ts[13], types.boolean)
        accs = [[cgutils.alloca_once(builder, _V8) for _ in range(4)] for _ in range(8)]

        def rows(i0, nr, j0, nv, mask):
            """Rows i0 .. i0 + nr - 1 times the nv column vectors from j0."""
            crow = [builder.gep(pc, [builder.mul(builder.add(i0, ir.Constant(intp, r)), ldc)]) for r in range(nr)]
            arow = [builder.gep(pa, [builder.mul(builder.add(i0, ir.Constant(intp, r)), sa_i)]) for r in range(nr)]
            cols = [builder.add(j0, ir.Constant(intp, 8 * v)) for v in range(nv)]
            for r in range(nr):
                for v in range(nv):
                    builder.store(ir.Constant(_V8, [0.0] * 8), accs[r][v])
            with builder.if_then(acc_flag):
                for r in range(nr):
                    for v in range(nv):
                        builder.store(_mload(builder, crow[r], cols[v], mask), accs[r][v])
            with cgutils.for_range(builder, k, intp=intp) as loop:
                p = loop.index
                brow = builder.gep(pb, [builder.mul(p, ldb)])
                bv = [_mload(builder, brow, cols[v], mask) for v in range(nv)]
                po = builder.mul(p, sa_p)
                for r in range(nr):
                    av = _splat(builder, builder.load(builder.gep(arow[r], [po])))
                    for v in range(nv):
                        builder.store(builder.fadd(builder.load(accs[r][v]), builder.fmul(av, bv[v])), accs[r][v])
            for r in range(nr):
                for v in range(nv):
                    _mstore(builder, builder.load(accs[r][v]), crow[r], cols[v], mask)

        def columns(j0, nv, mask):
            # 16 accumulators in flight: four rows of four vectors, or eight rows of one vector
            g = 4 if nv == 4 else 8
            mg = builder.mul(builder.sdiv(m, ir.Constant(intp, g)), ir.Constant(intp, g))
            with cgutils.for_range_slice(builder, ir.Constant(intp, 0), mg, ir.Constant(intp, g), intp) as (i0, _):
                rows(i0, g, j0, nv, mask)
            with cgutils.for_range_slice(builder, mg, m, ir.Constant(intp, 1), intp) as (i0, _):
                rows(i0, 1, j0, nv, mask)

        _rows_blocks(context, builder, n, columns)
        return context.get_dummy_value()

    return sig, codegen


# --- views: a block of a flat buffer as a matrix, a matrix as a flat vector ---------------
_MAT = types.Array(types.float64, 2, "C")
_VEC = types.Array(types.float64, 1, "C")


def _view(context, builder, src_ty, src_val, dst_ty, offset, shape):
    """A C-order view of ``shape`` starting ``offset`` elements into the source's data."""
    from numba.np.arrayobj import populate_array
    from numba.core.imputils import impl_ret_borrowed
    src = context.make_array(src_ty)(context, builder, value=src_val)
    dst = context.make_array(dst_ty)(context, builder)
    intp = context.get_value_type(types.intp)
    itemsize = ir.Constant(intp, 8)
    strides = [itemsize]
    for n in reversed(shape[1:]):
        strides.insert(0, builder.mul(strides[0], n))
    populate_array(dst, data=builder.gep(src.data, [offset]), shape=shape, strides=strides, itemsize=itemsize,
                   meminfo=src.meminfo, parent=src.parent)
    return impl_ret_borrowed(context, builder, dst_ty, dst._getvalue())


@intrinsic
def matrix_view(typingctx, buf, off, n0, n1):
    """The (n0, n1) C-order view of buf[off : off + n0 n1], with no checks (the range must lie
    inside buf). Numba's ``reshape`` calls an out-of-line helper and re-checks the size, which
    costs more than a small layer's work."""
    if not (_vec(buf) and all(isinstance(t, types.Integer) for t in (off, n0, n1))):
        return None

    def codegen(context, builder, signature, args):
        intp = types.intp
        off_, a, b = (context.cast(builder, v, t, intp) for v, t in zip(args[1:], signature.args[1:]))
        return _view(context, builder, signature.args[0], args[0], _MAT, off_, [a, b])

    return _MAT(buf, off, n0, n1), codegen


@intrinsic
def flat_view(typingctx, m):
    """The 1-D view of all entries of a C-contiguous float64 matrix, in C order."""
    if not (isinstance(m, types.Array) and m.ndim == 2 and m.layout == "C" and m.dtype == types.float64):
        return None

    def codegen(context, builder, signature, args):
        mat = context.make_array(signature.args[0])(context, builder, value=args[0])
        s0, s1 = cgutils.unpack_tuple(builder, mat.shape)
        return _view(context, builder, signature.args[0], args[0], _VEC,
                     context.get_constant(types.intp, 0), [builder.mul(s0, s1)])

    return _VEC(m), codegen
