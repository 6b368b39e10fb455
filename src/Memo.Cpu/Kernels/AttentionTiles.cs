using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Vec = System.Runtime.Intrinsics.Vector512;

namespace Memo.Cpu.Kernels;

/// <summary>How a tile product starts its accumulators.</summary>
internal enum TileInit
{
    /// <summary>C = A*B.</summary>
    Zero,

    /// <summary>C = C + A*B.</summary>
    Accumulate,

    /// <summary>C = alpha (one factor per column) * C + A*B.</summary>
    Scale,
}

/// <summary>
/// Micro-kernels of the tiled attention (<see cref="Attention"/>). A query tile is
/// <see cref="Rows"/> = 64 queries wide, four 16-lane vectors, and most products are vectorized across
/// those queries, so any head dimension works without tails:
/// <see cref="ProductT"/> computes C[m, 0:64] from a broadcast operand A with arbitrary strides
/// (a key/value row read along d, or a column read along keys) and a 64-wide operand B.
/// <see cref="ProductRows"/> vectorizes across the head dimension instead (dK and dV rows) and handles
/// the tail of a head dimension that is not a multiple of 16.
/// Every product sums its contraction index in increasing order, whatever the caller's thread.
/// </summary>
[SkipLocalsInit]
internal static unsafe class AttentionTiles
{
    /// <summary>Queries per tile (4 vectors) and keys per tile.</summary>
    public const int Rows = 64;

    public const int Keys = 64;

    public const int Lanes = 16;

    /// <summary>
    /// C[m*64 + n] = init(C) + sum over k &lt; kCount of A[m*am + k*ak] * B[k*64 + n], m &lt; mRows, n &lt; 64.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ProductT(float* c, int mRows, float* a, nint am, nint ak, int kCount, float* b, TileInit init, float* alpha)
    {
        Vector512<float> s0 = Vector512<float>.One, s1 = s0, s2 = s0, s3 = s0;
        if (init == TileInit.Scale)
        {
            s0 = Vec.Load(alpha);
            s1 = Vec.Load(alpha + 16);
            s2 = Vec.Load(alpha + 32);
            s3 = Vec.Load(alpha + 48);
        }
        int m = 0;
        for (; m + 4 <= mRows; m += 4)
        {
            float* a0 = a + m * am;
            float* a1 = a0 + am;
            float* a2 = a1 + am;
            float* a3 = a2 + am;
            float* c0 = c + m * Rows;
            Vector512<float> c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33;
            if (init == TileInit.Zero)
            {
                c00 = c01 = c02 = c03 = c10 = c11 = c12 = c13 = Vector512<float>.Zero;
                c20 = c21 = c22 = c23 = c30 = c31 = c32 = c33 = Vector512<float>.Zero;
            }
            else
            {
                c00 = Vec.Load(c0) * s0; c01 = Vec.Load(c0 + 16) * s1; c02 = Vec.Load(c0 + 32) * s2; c03 = Vec.Load(c0 + 48) * s3;
                c10 = Vec.Load(c0 + 64) * s0; c11 = Vec.Load(c0 + 80) * s1; c12 = Vec.Load(c0 + 96) * s2; c13 = Vec.Load(c0 + 112) * s3;
                c20 = Vec.Load(c0 + 128) * s0; c21 = Vec.Load(c0 + 144) * s1; c22 = Vec.Load(c0 + 160) * s2; c23 = Vec.Load(c0 + 176) * s3;
                c30 = Vec.Load(c0 + 192) * s0; c31 = Vec.Load(c0 + 208) * s1; c32 = Vec.Load(c0 + 224) * s2; c33 = Vec.Load(c0 + 240) * s3;
            }
            float* pb = b;
            for (int k = 0; k < kCount; k++, pb += Rows, a0 += ak, a1 += ak, a2 += ak, a3 += ak)
            {
                var b0 = Vec.Load(pb);
                var b1 = Vec.Load(pb + 16);
                var b2 = Vec.Load(pb + 32);
                var b3 = Vec.Load(pb + 48);
                var x = Vec.Create(*a0);
                c00 = Vec.FusedMultiplyAdd(x, b0, c00); c01 = Vec.FusedMultiplyAdd(x, b1, c01);
                c02 = Vec.FusedMultiplyAdd(x, b2, c02); c03 = Vec.FusedMultiplyAdd(x, b3, c03);
                x = Vec.Create(*a1);
                c10 = Vec.FusedMultiplyAdd(x, b0, c10); c11 = Vec.FusedMultiplyAdd(x, b1, c11);
                c12 = Vec.FusedMultiplyAdd(x, b2, c12); c13 = Vec.FusedMultiplyAdd(x, b3, c13);
                x = Vec.Create(*a2);
                c20 = Vec.FusedMultiplyAdd(x, b0, c20); c21 = Vec.FusedMultiplyAdd(x, b1, c21);
                c22 = Vec.FusedMultiplyAdd(x, b2, c22); c23 = Vec.FusedMultiplyAdd(x, b3, c23);
                x = Vec.Create(*a3);
                c30 = Vec.FusedMultiplyAdd(x, b0, c30); c31 = Vec.FusedMultiplyAdd(x, b1, c31);
                c32 = Vec.FusedMultiplyAdd(x, b2, c32); c33 = Vec.FusedMultiplyAdd(x, b3, c33);
            }
            c00.Store(c0); c01.Store(c0 + 16); c02.Store(c0 + 32); c03.Store(c0 + 48);
            c10.Store(c0 + 64); c11.Store(c0 + 80); c12.Store(c0 + 96); c13.Store(c0 + 112);
            c20.Store(c0 + 128); c21.Store(c0 + 144); c22.Store(c0 + 160); c23.Store(c0 + 176);
            c30.Store(c0 + 192); c31.Store(c0 + 208); c32.Store(c0 + 224); c33.Store(c0 + 240);
        }
        for (; m < mRows; m++)
        {
            float* a0 = a + m * am;
            float* c0 = c + m * Rows;
            Vector512<float> c00, c01, c02, c03;
            if (init == TileInit.Zero)
            {
                c00 = c01 = c02 = c03 = Vector512<float>.Zero;
            }
            else
            {
                c00 = Vec.Load(c0) * s0; c01 = Vec.Load(c0 + 16) * s1; c02 = Vec.Load(c0 + 32) * s2; c03 = Vec.Load(c0 + 48) * s3;
            }
            float* pb = b;
            for (int k = 0; k < kCount; k++, pb += Rows, a0 += ak)
            {
                var x = Vec.Create(*a0);
                c00 = Vec.FusedMultiplyAdd(x, Vec.Load(pb), c00);
                c01 = Vec.FusedMultiplyAdd(x, Vec.Load(pb + 16), c01);
                c02 = Vec.FusedMultiplyAdd(x, Vec.Load(pb + 32), c02);
                c03 = Vec.FusedMultiplyAdd(x, Vec.Load(pb + 48), c03);
            }
            c00.Store(c0); c01.Store(c0 + 16); c02.Store(c0 + 32); c03.Store(c0 + 48);
        }
    }

    /// <summary>
    /// C[m*ldc + d] += sum over k &lt; kCount of A[m*64 + k] * B[k*ldb + d], m &lt; mRows, d &lt; width.
    /// B rows are padded with zeros to a multiple of 16 (ldb); C is written only for d &lt; width.
    /// Each element is summed over k first and then added to C once.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ProductRows(float* c, nint ldc, int mRows, int width, float* a, int kCount, float* b, nint ldb)
    {
        int vectors = (width + Lanes - 1) / Lanes;
        int v = 0;
        for (; v + 4 <= vectors; v += 4)
            ProductRows4(c + v * Lanes, ldc, mRows, width - v * Lanes, a, kCount, b + v * Lanes, ldb);
        if (v + 2 <= vectors)
        {
            ProductRows2(c + v * Lanes, ldc, mRows, width - v * Lanes, a, kCount, b + v * Lanes, ldb);
            v += 2;
        }
        if (v < vectors) ProductRows1(c + v * Lanes, ldc, mRows, width - v * Lanes, a, kCount, b + v * Lanes, ldb);
    }

    /// <summary>Four vectors of columns (valid: columns left from here, at least 49), four rows at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ProductRows4(float* c, nint ldc, int mRows, int valid, float* a, int kCount, float* b, nint ldb)
    {
        int m = 0;
        for (; m + 4 <= mRows; m += 4)
        {
            float* a0 = a + m * Rows;
            Vector512<float> c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33;
            c00 = c01 = c02 = c03 = c10 = c11 = c12 = c13 = Vector512<float>.Zero;
            c20 = c21 = c22 = c23 = c30 = c31 = c32 = c33 = Vector512<float>.Zero;
            float* pb = b;
            for (int k = 0; k < kCount; k++, pb += ldb)
            {
                var b0 = Vec.Load(pb);
                var b1 = Vec.Load(pb + 16);
                var b2 = Vec.Load(pb + 32);
                var b3 = Vec.Load(pb + 48);
                var x = Vec.Create(a0[k]);
                c00 = Vec.FusedMultiplyAdd(x, b0, c00); c01 = Vec.FusedMultiplyAdd(x, b1, c01);
                c02 = Vec.FusedMultiplyAdd(x, b2, c02); c03 = Vec.FusedMultiplyAdd(x, b3, c03);
                x = Vec.Create(a0[Rows + k]);
                c10 = Vec.FusedMultiplyAdd(x, b0, c10); c11 = Vec.FusedMultiplyAdd(x, b1, c11);
                c12 = Vec.FusedMultiplyAdd(x, b2, c12); c13 = Vec.FusedMultiplyAdd(x, b3, c13);
                x = Vec.Create(a0[2 * Rows + k]);
                c20 = Vec.FusedMultiplyAdd(x, b0, c20); c21 = Vec.FusedMultiplyAdd(x, b1, c21);
                c22 = Vec.FusedMultiplyAdd(x, b2, c22); c23 = Vec.FusedMultiplyAdd(x, b3, c23);
                x = Vec.Create(a0[3 * Rows + k]);
                c30 = Vec.FusedMultiplyAdd(x, b0, c30); c31 = Vec.FusedMultiplyAdd(x, b1, c31);
                c32 = Vec.FusedMultiplyAdd(x, b2, c32); c33 = Vec.FusedMultiplyAdd(x, b3, c33);
            }
            float* r = c + m * ldc;
            AddRow4(r, c00, c01, c02, c03, valid);
            AddRow4(r + ldc, c10, c11, c12, c13, valid);
            AddRow4(r + 2 * ldc, c20, c21, c22, c23, valid);
            AddRow4(r + 3 * ldc, c30, c31, c32, c33, valid);
        }
        for (; m < mRows; m++)
        {
            float* a0 = a + m * Rows;
            Vector512<float> c00, c01, c02, c03;
            c00 = c01 = c02 = c03 = Vector512<float>.Zero;
            float* pb = b;
            for (int k = 0; k < kCount; k++, pb += ldb)
            {
                var x = Vec.Create(a0[k]);
                c00 = Vec.FusedMultiplyAdd(x, Vec.Load(pb), c00);
                c01 = Vec.FusedMultiplyAdd(x, Vec.Load(pb + 16), c01);
                c02 = Vec.FusedMultiplyAdd(x, Vec.Load(pb + 32), c02);
                c03 = Vec.FusedMultiplyAdd(x, Vec.Load(pb + 48), c03);
            }
            AddRow4(c + m * ldc, c00, c01, c02, c03, valid);
        }
    }

    /// <summary>Two vectors of columns (valid: at least 17), eight rows at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ProductRows2(float* c, nint ldc, int mRows, int valid, float* a, int kCount, float* b, nint ldb)
    {
        int m = 0;
        for (; m + 8 <= mRows; m += 8)
        {
            float* a0 = a + m * Rows;
            Vector512<float> c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61, c70, c71;
            c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = Vector512<float>.Zero;
            c40 = c41 = c50 = c51 = c60 = c61 = c70 = c71 = Vector512<float>.Zero;
            float* pb = b;
            for (int k = 0; k < kCount; k++, pb += ldb)
            {
                var b0 = Vec.Load(pb);
                var b1 = Vec.Load(pb + 16);
                var x = Vec.Create(a0[k]);
                c00 = Vec.FusedMultiplyAdd(x, b0, c00); c01 = Vec.FusedMultiplyAdd(x, b1, c01);
                x = Vec.Create(a0[Rows + k]);
                c10 = Vec.FusedMultiplyAdd(x, b0, c10); c11 = Vec.FusedMultiplyAdd(x, b1, c11);
                x = Vec.Create(a0[2 * Rows + k]);
                c20 = Vec.FusedMultiplyAdd(x, b0, c20); c21 = Vec.FusedMultiplyAdd(x, b1, c21);
                x = Vec.Create(a0[3 * Rows + k]);
                c30 = Vec.FusedMultiplyAdd(x, b0, c30); c31 = Vec.FusedMultiplyAdd(x, b1, c31);
                x = Vec.Create(a0[4 * Rows + k]);
                c40 = Vec.FusedMultiplyAdd(x, b0, c40); c41 = Vec.FusedMultiplyAdd(x, b1, c41);
                x = Vec.Create(a0[5 * Rows + k]);
                c50 = Vec.FusedMultiplyAdd(x, b0, c50); c51 = Vec.FusedMultiplyAdd(x, b1, c51);
                x = Vec.Create(a0[6 * Rows + k]);
                c60 = Vec.FusedMultiplyAdd(x, b0, c60); c61 = Vec.FusedMultiplyAdd(x, b1, c61);
                x = Vec.Create(a0[7 * Rows + k]);
                c70 = Vec.FusedMultiplyAdd(x, b0, c70); c71 = Vec.FusedMultiplyAdd(x, b1, c71);
            }
            float* r = c + m * ldc;
            AddRow2(r, c00, c01, valid);
            AddRow2(r + ldc, c10, c11, valid);
            AddRow2(r + 2 * ldc, c20, c21, valid);
            AddRow2(r + 3 * ldc, c30, c31, valid);
            AddRow2(r + 4 * ldc, c40, c41, valid);
            AddRow2(r + 5 * ldc, c50, c51, valid);
            AddRow2(r + 6 * ldc, c60, c61, valid);
            AddRow2(r + 7 * ldc, c70, c71, valid);
        }
        for (; m < mRows; m++)
        {
            float* a0 = a + m * Rows;
            Vector512<float> c00 = Vector512<float>.Zero, c01 = Vector512<float>.Zero;
            float* pb = b;
            for (int k = 0; k < kCount; k++, pb += ldb)
            {
                var x = Vec.Create(a0[k]);
                c00 = Vec.FusedMultiplyAdd(x, Vec.Load(pb), c00);
                c01 = Vec.FusedMultiplyAdd(x, Vec.Load(pb + 16), c01);
            }
            AddRow2(c + m * ldc, c00, c01, valid);
        }
    }

    /// <summary>One vector of columns (valid: 1 to 16), eight rows at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ProductRows1(float* c, nint ldc, int mRows, int valid, float* a, int kCount, float* b, nint ldb)
    {
        int m = 0;
        for (; m + 8 <= mRows; m += 8)
        {
            float* a0 = a + m * Rows;
            Vector512<float> c0, c1, c2, c3, c4, c5, c6, c7;
            c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = Vector512<float>.Zero;
            float* pb = b;
            for (int k = 0; k < kCount; k++, pb += ldb)
            {
                var b0 = Vec.Load(pb);
                c0 = Vec.FusedMultiplyAdd(Vec.Create(a0[k]), b0, c0);
                c1 = Vec.FusedMultiplyAdd(Vec.Create(a0[Rows + k]), b0, c1);
                c2 = Vec.FusedMultiplyAdd(Vec.Create(a0[2 * Rows + k]), b0, c2);
                c3 = Vec.FusedMultiplyAdd(Vec.Create(a0[3 * Rows + k]), b0, c3);
                c4 = Vec.FusedMultiplyAdd(Vec.Create(a0[4 * Rows + k]), b0, c4);
                c5 = Vec.FusedMultiplyAdd(Vec.Create(a0[5 * Rows + k]), b0, c5);
                c6 = Vec.FusedMultiplyAdd(Vec.Create(a0[6 * Rows + k]), b0, c6);
                c7 = Vec.FusedMultiplyAdd(Vec.Create(a0[7 * Rows + k]), b0, c7);
            }
            float* r = c + m * ldc;
            AddTo(r, c0, valid);
            AddTo(r + ldc, c1, valid);
            AddTo(r + 2 * ldc, c2, valid);
            AddTo(r + 3 * ldc, c3, valid);
            AddTo(r + 4 * ldc, c4, valid);
            AddTo(r + 5 * ldc, c5, valid);
            AddTo(r + 6 * ldc, c6, valid);
            AddTo(r + 7 * ldc, c7, valid);
        }
        for (; m < mRows; m++)
        {
            float* a0 = a + m * Rows;
            Vector512<float> c0 = Vector512<float>.Zero;
            float* pb = b;
            for (int k = 0; k < kCount; k++, pb += ldb) c0 = Vec.FusedMultiplyAdd(Vec.Create(a0[k]), Vec.Load(pb), c0);
            AddTo(c + m * ldc, c0, valid);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddRow4(float* r, Vector512<float> x0, Vector512<float> x1, Vector512<float> x2, Vector512<float> x3, int valid)
    {
        AddTo(r, x0, 16);
        AddTo(r + 16, x1, 16);
        AddTo(r + 32, x2, 16);
        AddTo(r + 48, x3, valid - 48);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddRow2(float* r, Vector512<float> x0, Vector512<float> x1, int valid)
    {
        AddTo(r, x0, 16);
        AddTo(r + 16, x1, valid - 16);
    }

    /// <summary>r[0:valid] += x[0:valid]; a full vector when valid &gt;= 16, lane by lane otherwise.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddTo(float* r, Vector512<float> x, int valid)
    {
        if (valid >= Lanes)
        {
            (Vec.Load(r) + x).Store(r);
            return;
        }
        for (int i = 0; i < valid; i++) r[i] += x.GetElement(i);
    }

    /// <summary>
    /// 2^x, within about 2e-7 relative for x in [-125, 1]; exactly 0 below -125 (and for -inf).
    /// x = n + r with n = round(x), |r| &lt;= 1/2 (both exact); 2^r from a degree-7 polynomial
    /// (Cephes exp2f coefficients, 2e-9 relative), scaled by adding n to the exponent bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Exp2(Vector512<float> x)
    {
        var magic = Vec.Create(12582912f); // 1.5 * 2^23: adding it rounds to an integer in the low bits
        var t = x + magic;
        var n = t - magic;
        var r = x - n;
        var p = Vec.FusedMultiplyAdd(Vec.Create(1.535336188319500E-4f), r, Vec.Create(1.339887440266574E-3f));
        p = Vec.FusedMultiplyAdd(p, r, Vec.Create(9.618437357674640E-3f));
        p = Vec.FusedMultiplyAdd(p, r, Vec.Create(5.550332471162809E-2f));
        p = Vec.FusedMultiplyAdd(p, r, Vec.Create(2.402264791363012E-1f));
        p = Vec.FusedMultiplyAdd(p, r, Vec.Create(6.931472028550421E-1f));
        p = Vec.FusedMultiplyAdd(p, r, Vector512<float>.One);
        var scaled = (p.AsInt32() + Vec.ShiftLeft(t.AsInt32(), 23)).AsSingle();
        return Vec.ConditionalSelect(Vec.GreaterThanOrEqual(x, Vec.Create(-125f)), scaled, Vector512<float>.Zero);
    }

    /// <summary>
    /// Asks for the next key tile's rows (<paramref name="rows"/> rows of <paramref name="width"/> floats,
    /// <paramref name="stride"/> apart) to be brought into cache while the current tile computes:
    /// rows of a fused layout lie far apart, where the hardware prefetchers do not follow.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Prefetch(float* p, long stride, int rows, int width)
    {
        if (!Sse.IsSupported) return;
        for (int r = 0; r < rows; r++, p += stride)
            for (int d = 0; d < width; d += Lanes) Sse.Prefetch0(p + d);
    }

    /// <summary>
    /// Sets S[j, i] to -inf where key k0 + j is after query q0 + i (the causal mask), for j &lt; keys.
    /// </summary>
    public static void MaskCausal(float* s, int keys, long firstKeyMinusFirstQuery)
    {
        var iota = Vector512<int>.Indices;
        var negInf = Vec.Create(float.NegativeInfinity);
        for (int j = 0; j < keys; j++)
        {
            long threshold = firstKeyMinusFirstQuery + j; // query lanes i >= threshold are visible
            if (threshold <= 0) continue;
            var th = Vec.Create((int)Math.Min(threshold, Rows));
            float* row = s + j * Rows;
            for (int v = 0; v < Rows / Lanes; v++)
            {
                var visible = Vec.GreaterThanOrEqual(iota + Vec.Create(v * Lanes), th).AsSingle();
                Vec.ConditionalSelect(visible, Vec.Load(row + v * Lanes), negInf).Store(row + v * Lanes);
            }
        }
    }
}
