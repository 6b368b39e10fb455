using System.Runtime.CompilerServices;

namespace Memo.Cpu.Kernels;

/// <summary>
/// GEMM register-blocked micro-kernels. Each computes one MR x (NV*W) tile of C from a packed A
/// micro-panel (kc x MR, k-major) and a packed B micro-panel (kc x NV*W, k-major):
/// <code>
///   acc = load ? C : 0
///   for k in 0..kc:  acc[r, :] = fma(A[k, r], B[k, :], acc[r, :])     (one FMA per element per k)
///   C = acc
/// </code>
/// Every element of the tile sees the same chain of FMAs in increasing k whatever its position,
/// so a C element's value does not depend on the tile it falls in (the determinism contract of
/// <see cref="Gemm"/>). The accumulators are spelled out as locals so the JIT keeps them in
/// registers: 8x3 needs 24 + 4 vector registers (AVX-512 register file), 6x2 needs 12 + 3
/// (AVX2's 16 registers). The narrower 8x2, 8x1 and 6x1 kernels do the column tails of a block
/// (fewer than NR columns left) with the same per-element arithmetic and less wasted work.
/// </summary>
internal static unsafe class GemmMicroKernel
{
    /// <summary>C[8, 3*W] (+)= A panel [kc][8] * B panel [kc][3*W]; W = TOps.Count.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Kernel8x3<TOps, TVec>(long kc, float* a, float* b, float* c, long ldc, bool load)
        where TOps : struct, IGemmVector<TVec>
        where TVec : struct
    {
        int w = TOps.Count;
        TVec c00, c01, c02, c10, c11, c12, c20, c21, c22, c30, c31, c32, c40, c41, c42, c50, c51, c52, c60, c61, c62, c70, c71, c72;
        if (load)
        {
            float* cr = c;
            c00 = TOps.Load(cr);
            c01 = TOps.Load(cr + w);
            c02 = TOps.Load(cr + 2 * w);
            cr += ldc;
            c10 = TOps.Load(cr);
            c11 = TOps.Load(cr + w);
            c12 = TOps.Load(cr + 2 * w);
            cr += ldc;
            c20 = TOps.Load(cr);
            c21 = TOps.Load(cr + w);
            c22 = TOps.Load(cr + 2 * w);
            cr += ldc;
            c30 = TOps.Load(cr);
            c31 = TOps.Load(cr + w);
            c32 = TOps.Load(cr + 2 * w);
            cr += ldc;
            c40 = TOps.Load(cr);
            c41 = TOps.Load(cr + w);
            c42 = TOps.Load(cr + 2 * w);
            cr += ldc;
            c50 = TOps.Load(cr);
            c51 = TOps.Load(cr + w);
            c52 = TOps.Load(cr + 2 * w);
            cr += ldc;
            c60 = TOps.Load(cr);
            c61 = TOps.Load(cr + w);
            c62 = TOps.Load(cr + 2 * w);
            cr += ldc;
            c70 = TOps.Load(cr);
            c71 = TOps.Load(cr + w);
            c72 = TOps.Load(cr + 2 * w);
        }
        else
        {
            c00 = TOps.Zero;
            c01 = TOps.Zero;
            c02 = TOps.Zero;
            c10 = TOps.Zero;
            c11 = TOps.Zero;
            c12 = TOps.Zero;
            c20 = TOps.Zero;
            c21 = TOps.Zero;
            c22 = TOps.Zero;
            c30 = TOps.Zero;
            c31 = TOps.Zero;
            c32 = TOps.Zero;
            c40 = TOps.Zero;
            c41 = TOps.Zero;
            c42 = TOps.Zero;
            c50 = TOps.Zero;
            c51 = TOps.Zero;
            c52 = TOps.Zero;
            c60 = TOps.Zero;
            c61 = TOps.Zero;
            c62 = TOps.Zero;
            c70 = TOps.Zero;
            c71 = TOps.Zero;
            c72 = TOps.Zero;
        }
        for (long k = 0; k < kc; k++)
        {
            TVec b0 = TOps.Load(b);
            TVec b1 = TOps.Load(b + w);
            TVec b2 = TOps.Load(b + 2 * w);
            TVec a0 = TOps.Broadcast(a[0]);
            c00 = TOps.Fma(a0, b0, c00);
            c01 = TOps.Fma(a0, b1, c01);
            c02 = TOps.Fma(a0, b2, c02);
            TVec a1 = TOps.Broadcast(a[1]);
            c10 = TOps.Fma(a1, b0, c10);
            c11 = TOps.Fma(a1, b1, c11);
            c12 = TOps.Fma(a1, b2, c12);
            TVec a2 = TOps.Broadcast(a[2]);
            c20 = TOps.Fma(a2, b0, c20);
            c21 = TOps.Fma(a2, b1, c21);
            c22 = TOps.Fma(a2, b2, c22);
            TVec a3 = TOps.Broadcast(a[3]);
            c30 = TOps.Fma(a3, b0, c30);
            c31 = TOps.Fma(a3, b1, c31);
            c32 = TOps.Fma(a3, b2, c32);
            TVec a4 = TOps.Broadcast(a[4]);
            c40 = TOps.Fma(a4, b0, c40);
            c41 = TOps.Fma(a4, b1, c41);
            c42 = TOps.Fma(a4, b2, c42);
            TVec a5 = TOps.Broadcast(a[5]);
            c50 = TOps.Fma(a5, b0, c50);
            c51 = TOps.Fma(a5, b1, c51);
            c52 = TOps.Fma(a5, b2, c52);
            TVec a6 = TOps.Broadcast(a[6]);
            c60 = TOps.Fma(a6, b0, c60);
            c61 = TOps.Fma(a6, b1, c61);
            c62 = TOps.Fma(a6, b2, c62);
            TVec a7 = TOps.Broadcast(a[7]);
            c70 = TOps.Fma(a7, b0, c70);
            c71 = TOps.Fma(a7, b1, c71);
            c72 = TOps.Fma(a7, b2, c72);
            a += 8;
            b += 3 * w;
        }
        float* o = c;
        TOps.Store(o, c00);
        TOps.Store(o + w, c01);
        TOps.Store(o + 2 * w, c02);
        o += ldc;
        TOps.Store(o, c10);
        TOps.Store(o + w, c11);
        TOps.Store(o + 2 * w, c12);
        o += ldc;
        TOps.Store(o, c20);
        TOps.Store(o + w, c21);
        TOps.Store(o + 2 * w, c22);
        o += ldc;
        TOps.Store(o, c30);
        TOps.Store(o + w, c31);
        TOps.Store(o + 2 * w, c32);
        o += ldc;
        TOps.Store(o, c40);
        TOps.Store(o + w, c41);
        TOps.Store(o + 2 * w, c42);
        o += ldc;
        TOps.Store(o, c50);
        TOps.Store(o + w, c51);
        TOps.Store(o + 2 * w, c52);
        o += ldc;
        TOps.Store(o, c60);
        TOps.Store(o + w, c61);
        TOps.Store(o + 2 * w, c62);
        o += ldc;
        TOps.Store(o, c70);
        TOps.Store(o + w, c71);
        TOps.Store(o + 2 * w, c72);
    }

    /// <summary>C[8, 2*W] (+)= A panel [kc][8] * the first 2*W columns of a B panel [kc][bStride] (column tails).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Kernel8x2<TOps, TVec>(long kc, float* a, float* b, long bStride, float* c, long ldc, bool load)
        where TOps : struct, IGemmVector<TVec>
        where TVec : struct
    {
        int w = TOps.Count;
        TVec c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61, c70, c71;
        if (load)
        {
            float* cr = c;
            c00 = TOps.Load(cr);
            c01 = TOps.Load(cr + w);
            cr += ldc;
            c10 = TOps.Load(cr);
            c11 = TOps.Load(cr + w);
            cr += ldc;
            c20 = TOps.Load(cr);
            c21 = TOps.Load(cr + w);
            cr += ldc;
            c30 = TOps.Load(cr);
            c31 = TOps.Load(cr + w);
            cr += ldc;
            c40 = TOps.Load(cr);
            c41 = TOps.Load(cr + w);
            cr += ldc;
            c50 = TOps.Load(cr);
            c51 = TOps.Load(cr + w);
            cr += ldc;
            c60 = TOps.Load(cr);
            c61 = TOps.Load(cr + w);
            cr += ldc;
            c70 = TOps.Load(cr);
            c71 = TOps.Load(cr + w);
        }
        else
        {
            c00 = TOps.Zero;
            c01 = TOps.Zero;
            c10 = TOps.Zero;
            c11 = TOps.Zero;
            c20 = TOps.Zero;
            c21 = TOps.Zero;
            c30 = TOps.Zero;
            c31 = TOps.Zero;
            c40 = TOps.Zero;
            c41 = TOps.Zero;
            c50 = TOps.Zero;
            c51 = TOps.Zero;
            c60 = TOps.Zero;
            c61 = TOps.Zero;
            c70 = TOps.Zero;
            c71 = TOps.Zero;
        }
        for (long k = 0; k < kc; k++)
        {
            TVec b0 = TOps.Load(b);
            TVec b1 = TOps.Load(b + w);
            TVec a0 = TOps.Broadcast(a[0]);
            c00 = TOps.Fma(a0, b0, c00);
            c01 = TOps.Fma(a0, b1, c01);
            TVec a1 = TOps.Broadcast(a[1]);
            c10 = TOps.Fma(a1, b0, c10);
            c11 = TOps.Fma(a1, b1, c11);
            TVec a2 = TOps.Broadcast(a[2]);
            c20 = TOps.Fma(a2, b0, c20);
            c21 = TOps.Fma(a2, b1, c21);
            TVec a3 = TOps.Broadcast(a[3]);
            c30 = TOps.Fma(a3, b0, c30);
            c31 = TOps.Fma(a3, b1, c31);
            TVec a4 = TOps.Broadcast(a[4]);
            c40 = TOps.Fma(a4, b0, c40);
            c41 = TOps.Fma(a4, b1, c41);
            TVec a5 = TOps.Broadcast(a[5]);
            c50 = TOps.Fma(a5, b0, c50);
            c51 = TOps.Fma(a5, b1, c51);
            TVec a6 = TOps.Broadcast(a[6]);
            c60 = TOps.Fma(a6, b0, c60);
            c61 = TOps.Fma(a6, b1, c61);
            TVec a7 = TOps.Broadcast(a[7]);
            c70 = TOps.Fma(a7, b0, c70);
            c71 = TOps.Fma(a7, b1, c71);
            a += 8;
            b += bStride;
        }
        float* o = c;
        TOps.Store(o, c00);
        TOps.Store(o + w, c01);
        o += ldc;
        TOps.Store(o, c10);
        TOps.Store(o + w, c11);
        o += ldc;
        TOps.Store(o, c20);
        TOps.Store(o + w, c21);
        o += ldc;
        TOps.Store(o, c30);
        TOps.Store(o + w, c31);
        o += ldc;
        TOps.Store(o, c40);
        TOps.Store(o + w, c41);
        o += ldc;
        TOps.Store(o, c50);
        TOps.Store(o + w, c51);
        o += ldc;
        TOps.Store(o, c60);
        TOps.Store(o + w, c61);
        o += ldc;
        TOps.Store(o, c70);
        TOps.Store(o + w, c71);
    }

    /// <summary>C[8, 1*W] (+)= A panel [kc][8] * the first 1*W columns of a B panel [kc][bStride] (column tails).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Kernel8x1<TOps, TVec>(long kc, float* a, float* b, long bStride, float* c, long ldc, bool load)
        where TOps : struct, IGemmVector<TVec>
        where TVec : struct
    {
        int w = TOps.Count;
        TVec c00, c10, c20, c30, c40, c50, c60, c70;
        if (load)
        {
            float* cr = c;
            c00 = TOps.Load(cr);
            cr += ldc;
            c10 = TOps.Load(cr);
            cr += ldc;
            c20 = TOps.Load(cr);
            cr += ldc;
            c30 = TOps.Load(cr);
            cr += ldc;
            c40 = TOps.Load(cr);
            cr += ldc;
            c50 = TOps.Load(cr);
            cr += ldc;
            c60 = TOps.Load(cr);
            cr += ldc;
            c70 = TOps.Load(cr);
        }
        else
        {
            c00 = TOps.Zero;
            c10 = TOps.Zero;
            c20 = TOps.Zero;
            c30 = TOps.Zero;
            c40 = TOps.Zero;
            c50 = TOps.Zero;
            c60 = TOps.Zero;
            c70 = TOps.Zero;
        }
        for (long k = 0; k < kc; k++)
        {
            TVec b0 = TOps.Load(b);
            TVec a0 = TOps.Broadcast(a[0]);
            c00 = TOps.Fma(a0, b0, c00);
            TVec a1 = TOps.Broadcast(a[1]);
            c10 = TOps.Fma(a1, b0, c10);
            TVec a2 = TOps.Broadcast(a[2]);
            c20 = TOps.Fma(a2, b0, c20);
            TVec a3 = TOps.Broadcast(a[3]);
            c30 = TOps.Fma(a3, b0, c30);
            TVec a4 = TOps.Broadcast(a[4]);
            c40 = TOps.Fma(a4, b0, c40);
            TVec a5 = TOps.Broadcast(a[5]);
            c50 = TOps.Fma(a5, b0, c50);
            TVec a6 = TOps.Broadcast(a[6]);
            c60 = TOps.Fma(a6, b0, c60);
            TVec a7 = TOps.Broadcast(a[7]);
            c70 = TOps.Fma(a7, b0, c70);
            a += 8;
            b += bStride;
        }
        float* o = c;
        TOps.Store(o, c00);
        o += ldc;
        TOps.Store(o, c10);
        o += ldc;
        TOps.Store(o, c20);
        o += ldc;
        TOps.Store(o, c30);
        o += ldc;
        TOps.Store(o, c40);
        o += ldc;
        TOps.Store(o, c50);
        o += ldc;
        TOps.Store(o, c60);
        o += ldc;
        TOps.Store(o, c70);
    }

    /// <summary>C[6, 2*W] (+)= A panel [kc][6] * B panel [kc][2*W]; W = TOps.Count.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Kernel6x2<TOps, TVec>(long kc, float* a, float* b, float* c, long ldc, bool load)
        where TOps : struct, IGemmVector<TVec>
        where TVec : struct
    {
        int w = TOps.Count;
        TVec c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
        if (load)
        {
            float* cr = c;
            c00 = TOps.Load(cr);
            c01 = TOps.Load(cr + w);
            cr += ldc;
            c10 = TOps.Load(cr);
            c11 = TOps.Load(cr + w);
            cr += ldc;
            c20 = TOps.Load(cr);
            c21 = TOps.Load(cr + w);
            cr += ldc;
            c30 = TOps.Load(cr);
            c31 = TOps.Load(cr + w);
            cr += ldc;
            c40 = TOps.Load(cr);
            c41 = TOps.Load(cr + w);
            cr += ldc;
            c50 = TOps.Load(cr);
            c51 = TOps.Load(cr + w);
        }
        else
        {
            c00 = TOps.Zero;
            c01 = TOps.Zero;
            c10 = TOps.Zero;
            c11 = TOps.Zero;
            c20 = TOps.Zero;
            c21 = TOps.Zero;
            c30 = TOps.Zero;
            c31 = TOps.Zero;
            c40 = TOps.Zero;
            c41 = TOps.Zero;
            c50 = TOps.Zero;
            c51 = TOps.Zero;
        }
        for (long k = 0; k < kc; k++)
        {
            TVec b0 = TOps.Load(b);
            TVec b1 = TOps.Load(b + w);
            TVec a0 = TOps.Broadcast(a[0]);
            c00 = TOps.Fma(a0, b0, c00);
            c01 = TOps.Fma(a0, b1, c01);
            TVec a1 = TOps.Broadcast(a[1]);
            c10 = TOps.Fma(a1, b0, c10);
            c11 = TOps.Fma(a1, b1, c11);
            TVec a2 = TOps.Broadcast(a[2]);
            c20 = TOps.Fma(a2, b0, c20);
            c21 = TOps.Fma(a2, b1, c21);
            TVec a3 = TOps.Broadcast(a[3]);
            c30 = TOps.Fma(a3, b0, c30);
            c31 = TOps.Fma(a3, b1, c31);
            TVec a4 = TOps.Broadcast(a[4]);
            c40 = TOps.Fma(a4, b0, c40);
            c41 = TOps.Fma(a4, b1, c41);
            TVec a5 = TOps.Broadcast(a[5]);
            c50 = TOps.Fma(a5, b0, c50);
            c51 = TOps.Fma(a5, b1, c51);
            a += 6;
            b += 2 * w;
        }
        float* o = c;
        TOps.Store(o, c00);
        TOps.Store(o + w, c01);
        o += ldc;
        TOps.Store(o, c10);
        TOps.Store(o + w, c11);
        o += ldc;
        TOps.Store(o, c20);
        TOps.Store(o + w, c21);
        o += ldc;
        TOps.Store(o, c30);
        TOps.Store(o + w, c31);
        o += ldc;
        TOps.Store(o, c40);
        TOps.Store(o + w, c41);
        o += ldc;
        TOps.Store(o, c50);
        TOps.Store(o + w, c51);
    }

    /// <summary>C[6, 1*W] (+)= A panel [kc][6] * the first 1*W columns of a B panel [kc][bStride] (column tails).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Kernel6x1<TOps, TVec>(long kc, float* a, float* b, long bStride, float* c, long ldc, bool load)
        where TOps : struct, IGemmVector<TVec>
        where TVec : struct
    {
        int w = TOps.Count;
        TVec c00, c10, c20, c30, c40, c50;
        if (load)
        {
            float* cr = c;
            c00 = TOps.Load(cr);
            cr += ldc;
            c10 = TOps.Load(cr);
            cr += ldc;
            c20 = TOps.Load(cr);
            cr += ldc;
            c30 = TOps.Load(cr);
            cr += ldc;
            c40 = TOps.Load(cr);
            cr += ldc;
            c50 = TOps.Load(cr);
        }
        else
        {
            c00 = TOps.Zero;
            c10 = TOps.Zero;
            c20 = TOps.Zero;
            c30 = TOps.Zero;
            c40 = TOps.Zero;
            c50 = TOps.Zero;
        }
        for (long k = 0; k < kc; k++)
        {
            TVec b0 = TOps.Load(b);
            TVec a0 = TOps.Broadcast(a[0]);
            c00 = TOps.Fma(a0, b0, c00);
            TVec a1 = TOps.Broadcast(a[1]);
            c10 = TOps.Fma(a1, b0, c10);
            TVec a2 = TOps.Broadcast(a[2]);
            c20 = TOps.Fma(a2, b0, c20);
            TVec a3 = TOps.Broadcast(a[3]);
            c30 = TOps.Fma(a3, b0, c30);
            TVec a4 = TOps.Broadcast(a[4]);
            c40 = TOps.Fma(a4, b0, c40);
            TVec a5 = TOps.Broadcast(a[5]);
            c50 = TOps.Fma(a5, b0, c50);
            a += 6;
            b += bStride;
        }
        float* o = c;
        TOps.Store(o, c00);
        o += ldc;
        TOps.Store(o, c10);
        o += ldc;
        TOps.Store(o, c20);
        o += ldc;
        TOps.Store(o, c30);
        o += ldc;
        TOps.Store(o, c40);
        o += ldc;
        TOps.Store(o, c50);
    }
}
