using Memo.Cpu;
using Memo.Cpu.Kernels;

namespace Memo.Tests.Kernels;

/// <summary>
/// <see cref="Gemm"/> against a naive double-precision triple loop, and its determinism contract:
/// rows computed alone, any thread count and every micro-kernel variant give bit-identical results.
/// </summary>
public sealed unsafe class GemmTests : IDisposable
{
    private readonly WorkerPool _pool1 = new(1);
    private readonly WorkerPool _pool2 = new(2);

    public void Dispose()
    {
        _pool1.Dispose();
        _pool2.Dispose();
    }

    public static TheoryData<bool, bool> TransposeCombos => new() { { false, false }, { false, true }, { true, false }, { true, true } };

    /// <summary>Operands of one call, stored with padded leading dimensions (padding filled with NaN).</summary>
    private sealed class Problem
    {
        public readonly bool TransA, TransB;
        public readonly int M, N, K, Lda, Ldb, Ldc;
        public readonly float[] A, B, C;

        public Problem(bool transA, bool transB, int m, int n, int k, int seed, int pad = 0)
        {
            (TransA, TransB, M, N, K) = (transA, transB, m, n, k);
            Lda = (transA ? m : k) + pad;
            Ldb = (transB ? k : n) + pad;
            Ldc = n + pad;
            var rng = new Random(seed);
            A = Fill(rng, (transA ? k : m) * Lda, transA ? m : k, Lda);
            B = Fill(rng, (transB ? n : k) * Ldb, transB ? k : n, Ldb);
            C = Fill(rng, m * Ldc, n, Ldc);
        }

        private static float[] Fill(Random rng, int count, int width, int ld)
        {
            var x = new float[Math.Max(count, 1)];
            for (int i = 0; i < count; i++) x[i] = i % ld < width ? rng.NextSingle() * 2 - 1 : float.NaN;
            return x;
        }

        public float OpA(int i, int k) => TransA ? A[k * Lda + i] : A[i * Lda + k];

        public float OpB(int k, int j) => TransB ? B[j * Ldb + k] : B[k * Ldb + j];

        /// <summary>Runs Gemm on rows [r0, r0+rows) of this problem into <paramref name="c"/> (a copy of C).</summary>
        public void Run(float[] c, bool accumulate, WorkerPool pool, GemmVariant variant = GemmVariant.Auto, int r0 = 0, int rows = -1)
        {
            if (rows < 0) rows = M;
            fixed (float* a = A, b = B, pc = c)
            {
                float* aRows = TransA ? a + r0 : a + (long)r0 * Lda;
                Gemm.Multiply(variant, TransA, TransB, rows, N, K, aRows, Lda, b, Ldb, pc + (long)r0 * Ldc, Ldc, accumulate, pool);
            }
        }

        /// <summary>Checks <paramref name="c"/> against C0 (+) op(A) op(B) in double, with an FMA-chain error bound.</summary>
        public void AssertMatchesReference(float[] c, bool accumulate, string label)
        {
            for (int i = 0; i < M; i++)
            {
                for (int j = 0; j < Ldc; j++)
                {
                    float got = c[i * Ldc + j];
                    if (j >= N)
                    {
                        Assert.True(float.IsNaN(got), $"{label}: padding C[{i},{j}] was written");
                        continue;
                    }
                    double sum = accumulate ? C[i * Ldc + j] : 0, mag = Math.Abs(sum);
                    for (int k = 0; k < K; k++)
                    {
                        double p = (double)OpA(i, k) * OpB(k, j);
                        sum += p;
                        mag += Math.Abs(p);
                    }
                    double tol = (K + 2) * 1.2e-7 * mag + 1e-30;
                    if (!(Math.Abs(got - sum) <= tol))
                        Assert.Fail($"{label}: C[{i},{j}] = {got}, reference {sum} (tolerance {tol})");
                }
            }
        }
    }

    private static void AssertBitIdentical(float[] expected, float[] actual, int from, int count, string label)
    {
        for (int i = from; i < from + count; i++)
        {
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                Assert.Fail($"{label}: element {i} differs: {expected[i]:R} vs {actual[i]:R}");
        }
    }

    /// <summary>Random shapes with every dimension in 1..70 (mostly not multiples of the tile), both accumulate modes.</summary>
    [Theory]
    [MemberData(nameof(TransposeCombos))]
    public void MatchesReference_OddShapes(bool transA, bool transB)
    {
        var rng = new Random(transA ? (transB ? 4 : 3) : (transB ? 2 : 1));
        for (int t = 0; t < 60; t++)
        {
            int m = rng.Next(1, 71), n = rng.Next(1, 71), k = rng.Next(1, 71);
            bool accumulate = t % 2 == 1;
            var p = new Problem(transA, transB, m, n, k, seed: t, pad: t % 3 == 0 ? 5 : 0);
            var c = (float[])p.C.Clone();
            p.Run(c, accumulate, _pool2);
            p.AssertMatchesReference(c, accumulate, $"{m}x{n}x{k} acc={accumulate}");
        }
    }

    /// <summary>Dimensions around tile and block edges: MR (6, 8), NR (16, 24, 48), KC (256), the B block (512) and a row chunk (2048).</summary>
    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(8, 48, 256)]
    [InlineData(9, 49, 257)]
    [InlineData(7, 47, 255)]
    [InlineData(16, 96, 513)]
    [InlineData(13, 530, 40)]
    [InlineData(16, 1024, 20)]
    [InlineData(2100, 5, 9)]
    [InlineData(3, 1100, 3)]
    [InlineData(50, 40, 700)]
    public void MatchesReference_BlockEdges(int m, int n, int k)
    {
        int seed = m * 7 + n * 3 + k;
        foreach (var (transA, transB) in new[] { (false, false), (false, true), (true, false), (true, true) })
        {
            foreach (bool accumulate in new[] { false, true })
            {
                var p = new Problem(transA, transB, m, n, k, seed++, pad: 3);
                var c = (float[])p.C.Clone();
                p.Run(c, accumulate, _pool2);
                p.AssertMatchesReference(c, accumulate, $"{m}x{n}x{k} tA={transA} tB={transB} acc={accumulate}");
            }
        }
    }

    [Theory]
    [InlineData("Vector512x8x3")]
    [InlineData("Vector256x8x3")]
    [InlineData("Vector256x6x2")]
    public void EveryVariant_MatchesReference_AndIsBitIdenticalToVector512(string name)
    {
        var variant = Enum.Parse<GemmVariant>(name);
        int seed = 100;
        // Besides odd sizes, column tails of whole vectors and whole rows, which the narrow edge
        // kernels compute directly in C: 64 = 48 + 16, 80 = 48 + 32, 32 = 24 + 8, 40 = 24 + 16, 24 = 16 + 8.
        var shapes = new[] { (1, 1, 1), (5, 17, 9), (23, 61, 300), (70, 33, 70), (40, 100, 520), (16, 64, 30), (24, 80, 40), (8, 32, 17), (16, 40, 9), (12, 24, 20) };
        foreach (var (m, n, k) in shapes)
        {
            foreach (var (transA, transB) in new[] { (false, false), (false, true), (true, false), (true, true) })
            {
                bool accumulate = seed % 2 == 0;
                var p = new Problem(transA, transB, m, n, k, seed++, pad: 2);
                var c = (float[])p.C.Clone();
                p.Run(c, accumulate, _pool2, variant);
                string label = $"{variant} {m}x{n}x{k} tA={transA} tB={transB} acc={accumulate}";
                p.AssertMatchesReference(c, accumulate, label);
                var c512 = (float[])p.C.Clone();
                p.Run(c512, accumulate, _pool2, GemmVariant.Vector512x8x3);
                AssertBitIdentical(c512, c, 0, c.Length, label);
            }
        }
    }

    /// <summary>Rows computed alone (any start, any count) equal the same rows of a full multi-threaded call, bit for bit.</summary>
    [Theory]
    [MemberData(nameof(TransposeCombos))]
    public void RowSubset_IsBitIdenticalToFullCall(bool transA, bool transB)
    {
        foreach (bool accumulate in new[] { false, true })
        {
            var p = new Problem(transA, transB, 301, 203, 600, seed: 7, pad: 1);
            var full = (float[])p.C.Clone();
            p.Run(full, accumulate, _pool2);
            foreach (var (r0, rows) in new[] { (0, 1), (37, 115), (150, 151), (299, 2), (5, 3), (100, 64) })
            {
                var part = (float[])p.C.Clone();
                p.Run(part, accumulate, _pool2, r0: r0, rows: rows);
                AssertBitIdentical(full, part, r0 * p.Ldc, rows * p.Ldc, $"rows [{r0}, {r0 + rows}) acc={accumulate}");
            }
        }
    }

    /// <summary>One thread and two threads give bit-identical results (the two-thread call splits rows or columns).</summary>
    [Theory]
    [MemberData(nameof(TransposeCombos))]
    public void ThreadCount_IsBitIdentical(bool transA, bool transB)
    {
        foreach (var (m, n, k) in new[] { (517, 311, 700), (40, 1500, 300) })
        {
            var p = new Problem(transA, transB, m, n, k, seed: m + n, pad: 0);
            var one = (float[])p.C.Clone();
            var two = (float[])p.C.Clone();
            p.Run(one, accumulate: true, _pool1);
            p.Run(two, accumulate: true, _pool2);
            AssertBitIdentical(one, two, 0, one.Length, $"{m}x{n}x{k}");
        }
    }

    /// <summary>
    /// Each element is exactly the float FMA chain c = fma(a[i,k], b[k,j], c) over k in order,
    /// starting from C or 0: the arithmetic the determinism contract fixes.
    /// </summary>
    [Theory]
    [MemberData(nameof(TransposeCombos))]
    public void EqualsScalarFmaChain_Bitwise(bool transA, bool transB)
    {
        foreach (var (m, n, k, accumulate) in new[] { (19, 53, 600, false), (70, 9, 31, true), (8, 48, 256, true) })
        {
            var p = new Problem(transA, transB, m, n, k, seed: m * n, pad: 4);
            var c = (float[])p.C.Clone();
            p.Run(c, accumulate, _pool2);
            for (int i = 0; i < m; i++)
            {
                for (int j = 0; j < n; j++)
                {
                    float s = accumulate ? p.C[i * p.Ldc + j] : 0f;
                    for (int kk = 0; kk < k; kk++) s = MathF.FusedMultiplyAdd(p.OpA(i, kk), p.OpB(kk, j), s);
                    if (BitConverter.SingleToInt32Bits(s) != BitConverter.SingleToInt32Bits(c[i * p.Ldc + j]))
                        Assert.Fail($"{m}x{n}x{k}: C[{i},{j}] = {c[i * p.Ldc + j]:R}, FMA chain {s:R}");
                }
            }
        }
    }

    [Fact]
    public void ZeroSizes_ClearOrKeepC()
    {
        var c = new float[] { 1, 2, 3, 4, 5, 6 };
        fixed (float* pc = c)
        {
            Gemm.Multiply(false, false, 2, 3, 0, null, 1, null, 3, pc, 3, accumulate: true, _pool2);
            Assert.Equal(new float[] { 1, 2, 3, 4, 5, 6 }, c);
            Gemm.Multiply(false, false, 0, 3, 4, null, 4, null, 3, pc, 3, accumulate: false, _pool2);
            Gemm.Multiply(false, false, 2, 0, 4, null, 4, null, 3, pc, 3, accumulate: false, _pool2);
            Assert.Equal(new float[] { 1, 2, 3, 4, 5, 6 }, c);
            Gemm.Multiply(false, false, 2, 3, 0, null, 1, null, 3, pc, 3, accumulate: false, _pool2);
            Assert.Equal(new float[6], c);
        }
    }

    [Fact]
    public void BadArguments_Throw()
    {
        var x = new float[64];
        fixed (float* p = x)
        {
            float* q = p;
            Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.Multiply(false, false, -1, 2, 2, q, 2, q, 2, q, 2, false));
            Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.Multiply(false, false, 2, 4, 2, q, 2, q, 4, q, 3, false));
            Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.Multiply(false, false, 2, 2, 4, q, 3, q, 2, q, 2, false));
            Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.Multiply(true, false, 4, 2, 2, q, 3, q, 2, q, 2, false));
            Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.Multiply(false, true, 2, 2, 4, q, 4, q, 3, q, 2, false));
            Assert.Throws<ArgumentNullException>(() => Gemm.Multiply(false, false, 2, 2, 2, null, 2, q, 2, q, 2, false));
        }
    }

    /// <summary>After a warm-up call, further calls allocate nothing on the managed heap.</summary>
    [Fact]
    public void WarmCalls_DoNotAllocate()
    {
        var p = new Problem(false, true, 200, 300, 300, seed: 3);
        var c = (float[])p.C.Clone();
        p.Run(c, accumulate: false, _pool2);
        p.Run(c, accumulate: false, _pool1);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 3; i++)
        {
            p.Run(c, accumulate: false, _pool2);
            p.Run(c, accumulate: true, _pool1);
        }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
