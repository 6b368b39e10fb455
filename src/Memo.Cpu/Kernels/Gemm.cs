using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

[assembly: InternalsVisibleTo("Memo.Tests")]
[assembly: InternalsVisibleTo("Memo.Benchmarks")]

namespace Memo.Cpu.Kernels;

/// <summary>
/// Single-precision matrix multiply, row-major.
/// C[M,N] = (accumulate ? C : 0) + op(A)[M,K] * op(B)[K,N], where op(A) is A stored (M x K, leading
/// dimension lda) or, with transA, the transpose of A stored (K x M, lda); likewise op(B) is B
/// stored (K x N, ldb) or, with transB, the transpose of B stored (N x K, ldb).
///
/// Determinism contract (the memory policies rely on it): each C[i,j] is computed with the same
/// sequence of floating-point operations whatever M, N, the tiling, the thread count, or which
/// other rows are in the call; so a row computed alone equals the same row computed in a batch.
/// </summary>
/// <remarks>
/// Blocked as in Goto's GEMM, with the roles of A and B swapped for row-major C (vectors run
/// along N):
/// <code>
///   work item = rows [i0, i0+rows) x columns [j0, j0+cols) of C   (items spread over the pool)
///     for pc in 0..K step KC                 (KC fixed: the k-blocking never depends on the shape)
///       pack A rows x kc          -> [rows/MR][kc][MR]           (streamed, one MR panel in L1)
///       for jc in j0.. step NCB
///         pack B kc x NCB         -> [NCB/NR][kc][NR]            (stays in L2)
///         for each MR panel of A, for each NR panel of B: micro-kernel on C[MR, NR]
/// </code>
/// So C[i,j] is exactly the float FMA chain c = fma(op(A)[i,k], op(B)[k,j], c) for k = 0..K-1 in
/// order, starting from c = (accumulate ? C[i,j] : 0): between k-blocks the running sum is stored
/// in C as a float, which loses nothing. Edge tiles run the same micro-kernel on zero-padded
/// panels through a scratch tile. The result therefore does not depend on the tiling, the split of
/// rows or columns over threads, the blocking constants, or the micro-kernel variant (Vector512
/// and Vector256 give the same bits). Scratch (packed panels) is allocated once per thread.
/// </remarks>
public static unsafe class Gemm
{
    /// <summary>The k-block length (rows of the packed panels).</summary>
    internal const int KC = 256;

    /// <summary>Most rows of C in one work item (rows of the packed A block).</summary>
    private const int MaxRows = 2048;

    /// <summary>Target number of B columns packed at once, so the packed B block (KC x NCB) stays in L2.</summary>
    private const int BlockCols = 512;

    /// <summary>Below this many flops the call runs on the calling thread alone.</summary>
    private const double SerialFlops = 1 << 22;

    /// <summary>
    /// C = (accumulate ? C : 0) + op(A) op(B) on <paramref name="pool"/>'s threads
    /// (<see cref="WorkerPool.Default"/> if null; small products run on the calling thread).
    /// </summary>
    public static void Multiply(bool transA, bool transB, long M, long N, long K,
        float* A, long lda, float* B, long ldb, float* C, long ldc, bool accumulate, WorkerPool? pool = null)
        => Multiply(GemmVariant.Auto, transA, transB, M, N, K, A, lda, B, ldb, C, ldc, accumulate, pool);

    /// <summary>The variant <see cref="GemmVariant.Auto"/> resolves to on this machine.</summary>
    internal static GemmVariant BestVariant { get; } =
        Vector512.IsHardwareAccelerated ? GemmVariant.Vector512x8x3
        : Avx512F.VL.IsSupported ? GemmVariant.Vector256x8x3
        : GemmVariant.Vector256x6x2;

    /// <summary>
    /// <see cref="Multiply(bool, bool, long, long, long, float*, long, float*, long, float*, long, bool, WorkerPool?)"/>
    /// with a chosen micro-kernel variant (tests use it to exercise every variant on one machine).
    /// </summary>
    internal static void Multiply(GemmVariant variant, bool transA, bool transB, long M, long N, long K,
        float* A, long lda, float* B, long ldb, float* C, long ldc, bool accumulate, WorkerPool? pool)
    {
        Validate(transA, transB, M, N, K, A, lda, B, ldb, C, ldc);
        if (M == 0 || N == 0) return;
        if (K == 0)
        {
            if (!accumulate)
            {
                for (long i = 0; i < M; i++) new Span<float>(C + i * ldc, (int)N).Clear();
            }
            return;
        }
        if (variant == GemmVariant.Auto) variant = BestVariant;

        var job = new Job
        {
            TransA = transA,
            TransB = transB,
            Accumulate = accumulate,
            M = M,
            N = N,
            K = K,
            A = A,
            Lda = lda,
            B = B,
            Ldb = ldb,
            C = C,
            Ldc = ldc,
            Variant = variant,
        };
        (job.Mr, job.Nr) = variant switch
        {
            GemmVariant.Vector512x8x3 => (8, 3 * Vector512<float>.Count),
            GemmVariant.Vector256x8x3 => (8, 3 * Vector256<float>.Count),
            _ => (6, 2 * Vector256<float>.Count),
        };
        job.BlockCols = Math.Max(1, BlockCols / job.Nr) * job.Nr;

        int threads = 2.0 * M * N * K < SerialFlops ? 1 : (pool ??= WorkerPool.Default).Threads;
        Partition(ref job, threads);
        int items = checked((int)(job.RowChunks * job.ColChunks));
        if (threads == 1 || items == 1)
        {
            for (int i = 0; i < items; i++) RunItem(i, &job);
        }
        else
        {
            pool!.For(items, &RunItem, &job);
        }
    }

    private static void Validate(bool transA, bool transB, long M, long N, long K,
        float* A, long lda, float* B, long ldb, float* C, long ldc)
    {
        if (M < 0 || N < 0 || K < 0)
            throw new ArgumentOutOfRangeException(nameof(M), $"gemm sizes must be >= 0, got M={M} N={N} K={K}");
        if (M == 0 || N == 0) return;
        if (ldc < N) throw new ArgumentOutOfRangeException(nameof(ldc), $"gemm ldc={ldc} is less than N={N}");
        if (C == null) throw new ArgumentNullException(nameof(C));
        if (K == 0) return;
        if (lda < (transA ? M : K))
            throw new ArgumentOutOfRangeException(nameof(lda), $"gemm lda={lda} is less than {(transA ? $"M={M} (transA)" : $"K={K}")}");
        if (ldb < (transB ? K : N))
            throw new ArgumentOutOfRangeException(nameof(ldb), $"gemm ldb={ldb} is less than {(transB ? $"K={K} (transB)" : $"N={N}")}");
        if (A == null) throw new ArgumentNullException(nameof(A));
        if (B == null) throw new ArgumentNullException(nameof(B));
    }

    /// <summary>
    /// Splits C into row x column work items: chunks of at most <see cref="MaxRows"/> rows, a
    /// multiple of the thread count so the threads get equal shares. With fewer row chunks than
    /// threads it splits the longer side instead, since each item packs its own A rows and B columns.
    /// </summary>
    private static void Partition(ref Job job, int threads)
    {
        long M = job.M, N = job.N;
        long rowChunks = CeilDiv(M, MaxRows), colChunks = 1;
        if (rowChunks < threads)
        {
            if (M >= N && M >= threads * (long)job.Mr) rowChunks = threads;
            else if (N >= threads * (long)job.Nr) colChunks = CeilDiv(threads, rowChunks);
            else if (M >= threads * (long)job.Mr) rowChunks = threads;
        }
        else
        {
            rowChunks = CeilDiv(rowChunks, threads) * threads;
        }
        job.RowsPer = CeilDiv(CeilDiv(M, rowChunks), job.Mr) * job.Mr;
        job.RowChunks = CeilDiv(M, job.RowsPer);
        job.ColsPer = CeilDiv(CeilDiv(N, colChunks), job.Nr) * job.Nr;
        job.ColChunks = CeilDiv(N, job.ColsPer);
    }

    private static long CeilDiv(long a, long b) => (a + b - 1) / b;

    private static void RunItem(int index, void* state)
    {
        ref Job job = ref *(Job*)state;
        long i0 = index / job.ColChunks * job.RowsPer;
        long j0 = index % job.ColChunks * job.ColsPer;
        long rows = Math.Min(job.RowsPer, job.M - i0);
        long cols = Math.Min(job.ColsPer, job.N - j0);
        var scratch = GemmScratch.ForThisThread(job.RowsPer, job.BlockCols, job.Mr * job.Nr);
        switch (job.Variant)
        {
            case GemmVariant.Vector512x8x3:
                Macro<GemmVector512, Vector512<float>>(ref job, scratch, i0, rows, j0, cols);
                break;
            default:
                Macro<GemmVector256, Vector256<float>>(ref job, scratch, i0, rows, j0, cols);
                break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Macro<TOps, TVec>(ref Job job, GemmScratch scratch, long i0, long rows, long j0, long cols)
        where TOps : struct, IGemmVector<TVec>
        where TVec : struct
    {
        int mr = job.Mr, nr = job.Nr, w = TOps.Count;
        bool wide = mr == 8;
        long K = job.K, ldc = job.Ldc;
        float* pa = scratch.A, pb = scratch.B, tile = scratch.Tile;
        for (long pc = 0; pc < K; pc += KC)
        {
            long kc = Math.Min(KC, K - pc);
            bool load = job.Accumulate || pc > 0;
            GemmPack.PackA(job.TransA, job.A, job.Lda, i0, rows, pc, kc, mr, pa);
            for (long jc = j0; jc < j0 + cols; jc += job.BlockCols)
            {
                long nc = Math.Min(job.BlockCols, j0 + cols - jc);
                GemmPack.PackB(job.TransB, job.B, job.Ldb, jc, nc, pc, kc, nr, pb);
                for (long ir = 0; ir < rows; ir += mr)
                {
                    float* a = pa + ir * kc;
                    int mv = (int)Math.Min(mr, rows - ir);
                    float* cRow = job.C + (i0 + ir) * ldc + jc;
                    for (long jr = 0; jr < nc; jr += nr)
                    {
                        float* b = pb + jr * kc;
                        int nv = (int)Math.Min(nr, nc - jr);
                        float* c = cRow + jr;
                        if (jr + nr < nc) PrefetchTile(c + nr, ldc, mr, nr);
                        if (mv == mr && nv == nr)
                        {
                            if (wide) GemmMicroKernel.Kernel8x3<TOps, TVec>(kc, a, b, c, ldc, load);
                            else GemmMicroKernel.Kernel6x2<TOps, TVec>(kc, a, b, c, ldc, load);
                            continue;
                        }
                        // Edge tile: the narrowest kernel that covers the valid columns. Where the
                        // tile is whole vectors by whole rows it works on C directly, else on a
                        // scratch tile whose valid part is copied in and out.
                        int vecs = (nv + w - 1) / w;
                        bool direct = mv == mr && nv == vecs * w;
                        float* t = direct ? c : tile;
                        long ldt = direct ? ldc : nr;
                        if (!direct && load)
                        {
                            for (int r = 0; r < mv; r++)
                                Unsafe.CopyBlockUnaligned(t + r * ldt, c + r * ldc, (uint)(nv * sizeof(float)));
                        }
                        Edge<TOps, TVec>(wide, vecs, kc, a, b, nr, t, ldt, load);
                        if (!direct)
                        {
                            for (int r = 0; r < mv; r++)
                                Unsafe.CopyBlockUnaligned(c + r * ldc, t + r * ldt, (uint)(nv * sizeof(float)));
                        }
                    }
                }
            }
        }
    }

    /// <summary>Runs the kernel for an edge tile <paramref name="vecs"/> vectors wide.</summary>
    private static void Edge<TOps, TVec>(bool wide, int vecs, long kc, float* a, float* b, long nr, float* c, long ldc, bool load)
        where TOps : struct, IGemmVector<TVec>
        where TVec : struct
    {
        if (wide)
        {
            if (vecs == 1) GemmMicroKernel.Kernel8x1<TOps, TVec>(kc, a, b, nr, c, ldc, load);
            else if (vecs == 2) GemmMicroKernel.Kernel8x2<TOps, TVec>(kc, a, b, nr, c, ldc, load);
            else GemmMicroKernel.Kernel8x3<TOps, TVec>(kc, a, b, c, ldc, load);
        }
        else
        {
            if (vecs == 1) GemmMicroKernel.Kernel6x1<TOps, TVec>(kc, a, b, nr, c, ldc, load);
            else GemmMicroKernel.Kernel6x2<TOps, TVec>(kc, a, b, c, ldc, load);
        }
    }

    /// <summary>
    /// Asks for the next C tile while the current one computes: C is often too large for the
    /// caches, and the micro-kernel would otherwise stall on its first loads (or stores) of C.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchTile(float* c, long ldc, int mr, int nr)
    {
        if (!Sse.IsSupported) return;
        for (int r = 0; r < mr; r++)
        {
            for (int j = 0; j < nr; j += 16) Sse.Prefetch0(c + r * ldc + j);
        }
    }

    [StructLayout(LayoutKind.Auto)]
    private struct Job
    {
        public bool TransA, TransB, Accumulate;
        public long M, N, K;
        public float* A, B, C;
        public long Lda, Ldb, Ldc;
        public GemmVariant Variant;
        public int Mr, Nr, BlockCols;
        public long RowsPer, ColsPer, RowChunks, ColChunks;
    }
}

/// <summary>The micro-kernel a GEMM call uses: vector width and tile (rows x vectors).</summary>
internal enum GemmVariant
{
    /// <summary>The fastest variant this machine supports (<see cref="Gemm.BestVariant"/>).</summary>
    Auto,

    /// <summary>8 x 48 tile of Vector512 (AVX-512: 32 vector registers).</summary>
    Vector512x8x3,

    /// <summary>8 x 24 tile of Vector256 (needs 32 vector registers, e.g. AVX-512VL).</summary>
    Vector256x8x3,

    /// <summary>6 x 16 tile of Vector256 (fits AVX2's 16 registers).</summary>
    Vector256x6x2,
}

/// <summary>
/// Per-thread packing buffers, allocated on a thread's first GEMM and kept for its lifetime
/// (freed by the finalizer once the thread is gone). Sizes only grow, to the largest blocks used:
/// at most (2048 + MR) x KC floats for A (2 MiB), KC x 512 for B, one tile.
/// </summary>
internal sealed unsafe class GemmScratch
{
    [ThreadStatic] private static GemmScratch? _current;

    private long _aFloats, _bFloats, _tileFloats;

    public float* A { get; private set; }

    public float* B { get; private set; }

    public float* Tile { get; private set; }

    public static GemmScratch ForThisThread(long rows, long blockCols, long tileFloats)
    {
        var s = _current ??= new GemmScratch();
        long aFloats = (rows + 8) * Gemm.KC, bFloats = blockCols * Gemm.KC;
        if (s._aFloats < aFloats) s.A = Grow(s.A, ref s._aFloats, aFloats);
        if (s._bFloats < bFloats) s.B = Grow(s.B, ref s._bFloats, bFloats);
        if (s._tileFloats < tileFloats) s.Tile = Grow(s.Tile, ref s._tileFloats, tileFloats);
        return s;
    }

    private static float* Grow(float* old, ref long have, long need)
    {
        if (old != null) NativeMemory.AlignedFree(old);
        have = need;
        return (float*)NativeMemory.AlignedAlloc((nuint)(need * sizeof(float)), 64);
    }

    ~GemmScratch()
    {
        if (A != null) NativeMemory.AlignedFree(A);
        if (B != null) NativeMemory.AlignedFree(B);
        if (Tile != null) NativeMemory.AlignedFree(Tile);
    }
}
