using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Memo.Cpu.Kernels;

/// <summary>
/// Packing of GEMM operands into the layouts the micro-kernels stream:
/// <code>
///   A block (rows x kc)  ->  ceil(rows/MR) panels, each [kc][MR]   (row r of the panel at [k*MR + r])
///   B block (kc x cols)  ->  ceil(cols/NR) panels, each [kc][NR]   (column j of the panel at [k*NR + j])
/// </code>
/// Rows or columns past the end of the block are zero, so edge tiles run the same micro-kernel;
/// their extra lanes are computed and thrown away. Packing only copies values, so it has no
/// effect on the numbers.
/// </summary>
internal static unsafe class GemmPack
{
    /// <summary>
    /// Packs rows [i0, i0+rows) and k in [pc, pc+kc) of op(A). A is M x K (lda) or, with transA,
    /// K x M (lda).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void PackA(bool transA, float* A, long lda, long i0, long rows, long pc, long kc, int mr, float* dst)
    {
        long p = 0;
        if (transA && mr == 8)
        {
            // Four panels at a time, so each row of A is read 128 contiguous bytes at once.
            for (; p + 32 <= rows; p += 32)
            {
                float* s = A + pc * lda + i0 + p;
                float* d = dst + p * kc;
                for (long k = 0; k < kc; k++)
                {
                    float* sk = s + k * lda;
                    float* dk = d + k * 8;
                    Vector256.Store(Vector256.Load(sk), dk);
                    Vector256.Store(Vector256.Load(sk + 8), dk + 8 * kc);
                    Vector256.Store(Vector256.Load(sk + 16), dk + 16 * kc);
                    Vector256.Store(Vector256.Load(sk + 24), dk + 24 * kc);
                }
            }
        }
        for (; p < rows; p += mr)
        {
            long r0 = i0 + p;
            int valid = (int)Math.Min(mr, rows - p);
            float* d = dst + p * kc;
            if (transA)
            {
                float* s = A + pc * lda + r0;
                if (mr == 8 && valid == 8)
                {
                    for (long k = 0; k < kc; k++) Vector256.Store(Vector256.Load(s + k * lda), d + k * 8);
                }
                else
                {
                    for (long k = 0; k < kc; k++)
                    {
                        float* sk = s + k * lda;
                        float* dk = d + k * mr;
                        for (int r = 0; r < valid; r++) dk[r] = sk[r];
                        for (int r = valid; r < mr; r++) dk[r] = 0f;
                    }
                }
            }
            else
            {
                float* s = A + r0 * lda + pc;
                if (mr == 8 && valid == 8 && Avx.IsSupported)
                {
                    long k = 0;
                    for (; k + 8 <= kc; k += 8) Transpose8x8(s + k, lda, d + k * 8, 8);
                    for (; k < kc; k++)
                    {
                        for (int r = 0; r < 8; r++) d[k * 8 + r] = s[r * lda + k];
                    }
                }
                else
                {
                    for (int r = 0; r < mr; r++)
                    {
                        float* sr = s + r * lda;
                        if (r < valid)
                        {
                            for (long k = 0; k < kc; k++) d[k * mr + r] = sr[k];
                        }
                        else
                        {
                            for (long k = 0; k < kc; k++) d[k * mr + r] = 0f;
                        }
                    }
                }
            }
        }
    }

    /// <summary>
    /// Packs k in [pc, pc+kc) and columns [j0, j0+cols) of op(B). B is K x N (ldb) or, with transB,
    /// N x K (ldb). <paramref name="nr"/> is a multiple of 8.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void PackB(bool transB, float* B, long ldb, long j0, long cols, long pc, long kc, int nr, float* dst)
    {
        long p = 0;
        if (!transB)
        {
            // All full panels row by row, so each row of B is read contiguously.
            long full = cols / nr * nr;
            if (full > 0)
            {
                for (long k = 0; k < kc; k++)
                {
                    float* sk = B + (pc + k) * ldb + j0;
                    float* dk = dst + k * nr;
                    for (long q = 0; q < full; q += nr)
                    {
                        float* sq = sk + q, dq = dk + q * kc;
                        for (int j = 0; j < nr; j += 8) Vector256.Store(Vector256.Load(sq + j), dq + j);
                    }
                }
                p = full;
            }
        }
        for (; p < cols; p += nr)
        {
            long c0 = j0 + p;
            int valid = (int)Math.Min(nr, cols - p);
            float* d = dst + p * kc;
            if (!transB)
            {
                float* s = B + pc * ldb + c0;
                if (valid == nr)
                {
                    for (long k = 0; k < kc; k++)
                    {
                        float* sk = s + k * ldb;
                        float* dk = d + k * nr;
                        for (int j = 0; j < nr; j += 8) Vector256.Store(Vector256.Load(sk + j), dk + j);
                    }
                }
                else
                {
                    for (long k = 0; k < kc; k++)
                    {
                        float* sk = s + k * ldb;
                        float* dk = d + k * nr;
                        for (int j = 0; j < valid; j++) dk[j] = sk[j];
                        for (int j = valid; j < nr; j++) dk[j] = 0f;
                    }
                }
            }
            else
            {
                float* s = B + c0 * ldb + pc;
                if (valid == nr && Avx.IsSupported)
                {
                    for (int j = 0; j < nr; j += 8)
                    {
                        float* sj = s + j * ldb;
                        long k = 0;
                        for (; k + 8 <= kc; k += 8) Transpose8x8(sj + k, ldb, d + k * nr + j, nr);
                        for (; k < kc; k++)
                        {
                            for (int jj = 0; jj < 8; jj++) d[k * nr + j + jj] = sj[jj * ldb + k];
                        }
                    }
                }
                else
                {
                    for (int j = 0; j < nr; j++)
                    {
                        float* sj = s + j * ldb;
                        if (j < valid)
                        {
                            for (long k = 0; k < kc; k++) d[k * nr + j] = sj[k];
                        }
                        else
                        {
                            for (long k = 0; k < kc; k++) d[k * nr + j] = 0f;
                        }
                    }
                }
            }
        }
    }

    /// <summary>
    /// Reads an 8x8 block (8 rows of 8 floats, row stride <paramref name="ls"/>) and writes its
    /// transpose (8 rows of 8 floats, row stride <paramref name="ld"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose8x8(float* s, long ls, float* d, long ld)
    {
        var r0 = Avx.LoadVector256(s);
        var r1 = Avx.LoadVector256(s + ls);
        var r2 = Avx.LoadVector256(s + 2 * ls);
        var r3 = Avx.LoadVector256(s + 3 * ls);
        var r4 = Avx.LoadVector256(s + 4 * ls);
        var r5 = Avx.LoadVector256(s + 5 * ls);
        var r6 = Avx.LoadVector256(s + 6 * ls);
        var r7 = Avx.LoadVector256(s + 7 * ls);
        var t0 = Avx.UnpackLow(r0, r1);
        var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3);
        var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5);
        var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7);
        var t7 = Avx.UnpackHigh(r6, r7);
        var u0 = Avx.Shuffle(t0, t2, 0x44);
        var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44);
        var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44);
        var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44);
        var u7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Store(d, Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store(d + ld, Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store(d + 2 * ld, Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store(d + 3 * ld, Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store(d + 4 * ld, Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store(d + 5 * ld, Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store(d + 6 * ld, Avx.Permute2x128(u2, u6, 0x31));
        Avx.Store(d + 7 * ld, Avx.Permute2x128(u3, u7, 0x31));
    }
}
