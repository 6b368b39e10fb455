using System.Runtime.InteropServices;
using Memo.Backends;
using Memo.Cpu;
using Memo.Cpu.Kernels;
using Xunit.Abstractions;

namespace Memo.Tests.Kernels;

/// <summary>
/// Tiled causal attention (<see cref="Attention"/>) against a naive double-precision reference that
/// builds the full softmax matrix, the reference's backward against finite differences, thread-count
/// bit identity, 64-bit offsets, and memory that grows linearly with the sequence.
/// </summary>
public sealed unsafe partial class AttentionTests
{
    /// <summary>Test layout: q, k, v fused per token as [q heads | k heads | v heads] (+ pad); o and dO with their own stride.</summary>
    internal sealed record Layout(int B, int T, int H, int KvH, int D, int Pad = 0, int OPad = 0, float ScaleFactor = 1)
    {
        public long Stride => (long)(H + 2 * KvH) * D + Pad;
        public long OStride => (long)H * D + OPad;
        public float Scale => ScaleFactor / MathF.Sqrt(D);
        public long QkvLength => (long)B * T * Stride;
        public long OLength => (long)B * T * OStride;
        public long LseLength => (long)B * T * H;
        public long Q(int b, int t, int h) => ((long)b * T + t) * Stride + (long)h * D;
        public long K(int b, int t, int g) => ((long)b * T + t) * Stride + (long)(H + g) * D;
        public long V(int b, int t, int g) => ((long)b * T + t) * Stride + (long)(H + KvH + g) * D;
        public long O(int b, int t, int h) => ((long)b * T + t) * OStride + (long)h * D;
        public AttentionShape Shape => new(B, T, H, KvH, D, Stride, Stride, OStride, Scale);
    }

    // ---------------------------------------------------------------- reference (double, full matrix)

    internal static (double[] O, double[] Lse) RefForward(Layout L, double[] qkv)
    {
        var o = new double[L.OLength];
        var lse = new double[L.LseLength];
        var s = new double[L.T];
        int rep = L.H / L.KvH;
        for (int b = 0; b < L.B; b++)
            for (int h = 0; h < L.H; h++)
                for (int t = 0; t < L.T; t++)
                {
                    int g = h / rep;
                    double max = double.NegativeInfinity;
                    for (int j = 0; j <= t; j++)
                    {
                        double dot = 0;
                        for (int d = 0; d < L.D; d++) dot += qkv[L.Q(b, t, h) + d] * qkv[L.K(b, j, g) + d];
                        s[j] = L.Scale * dot;
                        max = Math.Max(max, s[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j <= t; j++) sum += Math.Exp(s[j] - max);
                    lse[((long)b * L.T + t) * L.H + h] = max + Math.Log(sum);
                    for (int j = 0; j <= t; j++)
                    {
                        double p = Math.Exp(s[j] - max) / sum;
                        for (int d = 0; d < L.D; d++) o[L.O(b, t, h) + d] += p * qkv[L.V(b, j, g) + d];
                    }
                }
        return (o, lse);
    }

    /// <summary>Gradient of sum(dO * o) + sum(dLse * lse) with respect to the fused q, k, v.</summary>
    internal static double[] RefBackward(Layout L, double[] qkv, double[] dO, double[]? dLse)
    {
        var grad = new double[L.QkvLength];
        var p = new double[L.T];
        var dp = new double[L.T];
        int rep = L.H / L.KvH;
        for (int b = 0; b < L.B; b++)
            for (int h = 0; h < L.H; h++)
                for (int t = 0; t < L.T; t++)
                {
                    int g = h / rep;
                    double max = double.NegativeInfinity;
                    for (int j = 0; j <= t; j++)
                    {
                        double dot = 0;
                        for (int d = 0; d < L.D; d++) dot += qkv[L.Q(b, t, h) + d] * qkv[L.K(b, j, g) + d];
                        p[j] = L.Scale * dot;
                        max = Math.Max(max, p[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j <= t; j++) sum += Math.Exp(p[j] - max);
                    double delta = 0;
                    for (int j = 0; j <= t; j++)
                    {
                        p[j] = Math.Exp(p[j] - max) / sum;
                        double dot = 0;
                        for (int d = 0; d < L.D; d++) dot += dO[L.O(b, t, h) + d] * qkv[L.V(b, j, g) + d];
                        dp[j] = dot;
                        delta += p[j] * dot;
                    }
                    double gl = dLse is null ? 0 : dLse[((long)b * L.T + t) * L.H + h];
                    for (int j = 0; j <= t; j++)
                    {
                        double ds = p[j] * (dp[j] - delta) + gl * p[j];
                        for (int d = 0; d < L.D; d++)
                        {
                            grad[L.Q(b, t, h) + d] += L.Scale * ds * qkv[L.K(b, j, g) + d];
                            grad[L.K(b, j, g) + d] += L.Scale * ds * qkv[L.Q(b, t, h) + d];
                            grad[L.V(b, j, g) + d] += p[j] * dO[L.O(b, t, h) + d];
                        }
                    }
                }
        return grad;
    }

    // ---------------------------------------------------------------- kernel driver

    internal sealed class Run
    {
        public required float[] Qkv, DO, O, Lse, Grad;
    }

    private static float[] RandomFloats(Random rng, long n, float amplitude = 1)
    {
        var a = new float[n];
        for (long i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 2 - 1) * amplitude;
        return a;
    }

    private static Run RunKernel(Layout L, float[] qkv, float[] dO, WorkerPool pool)
    {
        var o = new float[L.OLength];
        var lse = new float[L.LseLength];
        var grad = new float[L.QkvLength];
        Array.Fill(grad, 1e30f); // backward overwrites: stale values must not leak through
        Array.Fill(o, float.NaN);
        var ws = new float[Attention.WorkspaceFloats(pool.Threads, L.D)];
        Array.Fill(ws, float.NaN); // scratch must be written before it is read
        var shape = L.Shape;
        long hd = (long)L.H * L.D, kvd = (long)L.KvH * L.D;
        fixed (float* x = qkv, g = grad, po = o, pl = lse, pd = dO, pw = ws)
        {
            Attention.Forward(shape, x, x + hd, x + hd + kvd, po, pl, pw, pool);
            Attention.Backward(shape, x, x + hd, x + hd + kvd, po, pl, pd, g, g + hd, g + hd + kvd, pw, pool);
        }
        return new Run { Qkv = qkv, DO = dO, O = o, Lse = lse, Grad = grad };
    }

    private static double RelErr(float[] got, double[] want, Func<long, bool>? include = null)
    {
        double maxErr = 0, maxRef = 0;
        for (long i = 0; i < want.LongLength; i++)
        {
            if (include != null && !include(i)) continue;
            maxErr = Math.Max(maxErr, Math.Abs(got[i] - want[i]));
            maxRef = Math.Max(maxRef, Math.Abs(want[i]));
        }
        return maxRef == 0 ? maxErr : maxErr / maxRef;
    }

    private static double[] ToDouble(float[] a) => Array.ConvertAll(a, x => (double)x);

    // ---------------------------------------------------------------- 1. kernel vs reference

    public static TheoryData<int, int, int, int, int, int, float> Shapes => new()
    {
        // B, T, H, KvH, D, pad, scale factor (x 1/sqrt(D))
        { 1, 1, 4, 2, 8, 0, 1f },
        { 2, 2, 4, 1, 16, 0, 1f },
        { 1, 7, 4, 4, 2, 0, 1f },
        { 2, 33, 4, 2, 64, 0, 1f },
        { 1, 100, 4, 1, 8, 3, 1f },
        { 1, 257, 4, 2, 16, 0, 1f },
        { 2, 129, 2, 2, 64, 0, 4f },   // peaked softmax
        { 1, 130, 2, 1, 40, 0, 1f },   // head dim tails: 2 vectors + 8 lanes
        { 1, 70, 2, 2, 80, 5, 1f },    // 4 vectors + 1
        { 1, 65, 2, 1, 128, 0, 1f },
        { 1, 66, 2, 2, 6, 0, 1f },
        { 1, 200, 2, 2, 3, 0, 1f },    // odd head dim
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Forward_and_backward_match_the_double_reference(int b, int t, int h, int kvh, int d, int pad, float scaleFactor)
    {
        var L = new Layout(b, t, h, kvh, d, pad, pad, scaleFactor);
        var rng = new Random(1234 + t * 7 + d);
        var qkv = RandomFloats(rng, L.QkvLength);
        var dO = RandomFloats(rng, L.OLength);
        using var pool = new WorkerPool(2);
        var run = RunKernel(L, qkv, dO, pool);

        var x = ToDouble(qkv);
        var (o, lse) = RefForward(L, x);
        var grad = RefBackward(L, x, ToDouble(dO), null);

        bool InHead(long i, long stride, long width) => i % stride < width;
        double eO = RelErr(run.O, o, i => InHead(i, L.OStride, (long)L.H * L.D));
        double eLse = RelErr(run.Lse, lse);
        long hd = (long)L.H * L.D, kvd = (long)L.KvH * L.D;
        double eQ = RelErr(run.Grad, grad, i => i % L.Stride < hd);
        double eK = RelErr(run.Grad, grad, i => i % L.Stride >= hd && i % L.Stride < hd + kvd);
        double eV = RelErr(run.Grad, grad, i => i % L.Stride >= hd + kvd && i % L.Stride < hd + 2 * kvd);
        string report = $"o {eO:E2} lse {eLse:E2} dq {eQ:E2} dk {eK:E2} dv {eV:E2}";
        Assert.True(eO < 1e-5 && eLse < 1e-5, report);
        Assert.True(eQ < 1e-5 && eK < 1e-5 && eV < 1e-5, report);
        // the padding between rows is left alone
        for (long i = 0; i < L.QkvLength; i++)
            if (i % L.Stride >= hd + 2 * kvd) Assert.Equal(1e30f, run.Grad[i]);
    }

    // ---------------------------------------------------------------- 2. reference backward vs finite differences

    [Fact]
    public void Reference_backward_matches_finite_differences()
    {
        var L = new Layout(2, 5, 4, 2, 3, 1, 2, 1.7f);
        var rng = new Random(7);
        var x = ToDouble(RandomFloats(rng, L.QkvLength));
        var dO = ToDouble(RandomFloats(rng, L.OLength));
        var dLse = ToDouble(RandomFloats(rng, L.LseLength));
        double Loss(double[] v)
        {
            var (o, lse) = RefForward(L, v);
            double sum = 0;
            for (long i = 0; i < o.LongLength; i++) sum += dO[i] * o[i];
            for (long i = 0; i < lse.LongLength; i++) sum += dLse[i] * lse[i];
            return sum;
        }
        var grad = RefBackward(L, x, dO, dLse);
        const double h = 1e-5;
        double maxErr = 0, maxGrad = 0;
        for (long i = 0; i < x.LongLength; i++)
        {
            double keep = x[i];
            x[i] = keep + h;
            double up = Loss(x);
            x[i] = keep - h;
            double down = Loss(x);
            x[i] = keep;
            double fd = (up - down) / (2 * h);
            maxErr = Math.Max(maxErr, Math.Abs(fd - grad[i]));
            maxGrad = Math.Max(maxGrad, Math.Abs(grad[i]));
        }
        Assert.True(maxGrad > 0.1, $"gradient too small to test ({maxGrad})");
        Assert.True(maxErr / maxGrad < 1e-7, $"max |fd - analytic| = {maxErr:E3} (max |grad| {maxGrad:E3})");
    }

    // ---------------------------------------------------------------- 3. bit identity across thread counts

    [Fact]
    public void Results_are_bit_identical_for_one_and_two_threads()
    {
        var L = new Layout(2, 300, 4, 2, 32);
        var rng = new Random(99);
        var qkv = RandomFloats(rng, L.QkvLength);
        var dO = RandomFloats(rng, L.OLength);
        Run one, two;
        using (var p1 = new WorkerPool(1)) one = RunKernel(L, qkv, dO, p1);
        using (var p2 = new WorkerPool(2)) two = RunKernel(L, qkv, dO, p2);
        Assert.True(MemoryMarshal.AsBytes(one.O.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(two.O.AsSpan())), "o differs");
        Assert.True(MemoryMarshal.AsBytes(one.Lse.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(two.Lse.AsSpan())), "lse differs");
        Assert.True(MemoryMarshal.AsBytes(one.Grad.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(two.Grad.AsSpan())), "dq/dk/dv differ");
    }

    [Fact]
    public void Bad_shapes_are_rejected_with_a_memo_exception()
    {
        using var pool = new WorkerPool(1);
        nint ws = (nint)NativeMemory.AlignedAlloc((nuint)Attention.WorkspaceFloats(1, 8) * sizeof(float), 64);
        nint buf = (nint)NativeMemory.AlignedAlloc(64 * sizeof(float), 64);
        try
        {
            var noGroup = new AttentionShape(1, 2, 3, 2, 8, 56, 56, 24, 1); // 3 heads over 2 kv heads
            Assert.Throws<MemoException>(() =>
            {
                float* x = (float*)buf;
                Attention.Forward(noGroup, x, x, x, x, x, (float*)ws, pool);
            });
            var narrow = new AttentionShape(1, 2, 2, 2, 8, 8, 48, 16, 1); // q stride below 2 heads x 8
            Assert.Throws<MemoException>(() =>
            {
                float* x = (float*)buf;
                Attention.Backward(narrow, x, x, x, x, x, x, x, x, x, (float*)ws, pool);
            });
        }
        finally
        {
            NativeMemory.AlignedFree((void*)ws);
            NativeMemory.AlignedFree((void*)buf);
        }
        Assert.Throws<MemoException>(() => Attention.WorkspaceFloats(0, 64));
    }

    // ---------------------------------------------------------------- 64-bit offsets

    private const int ProtReadWrite = 3, MapPrivate = 0x02, MapAnonymous = 0x20, MapNoReserve = 0x4000;

    [LibraryImport("libc", EntryPoint = "mmap")]
    private static partial nint Mmap(nint addr, nuint length, int prot, int flags, int fd, nint offset);

    [LibraryImport("libc", EntryPoint = "munmap")]
    private static partial int Munmap(nint addr, nuint length);

    /// <summary>
    /// Row offsets past 2^31 floats: rows 2^30 + 16 floats apart (16 GiB of address space, of which
    /// only the touched pages are backed) give the same bits as the same data packed tightly.
    /// </summary>
    [Fact]
    public void Offsets_past_two_to_the_31_elements_give_the_same_results()
    {
        if (!OperatingSystem.IsLinux() || IntPtr.Size != 8) return;
        var small = new Layout(2, 2, 2, 1, 8);
        var rng = new Random(5);
        var qkv = RandomFloats(rng, small.QkvLength);
        var dO = RandomFloats(rng, small.OLength);
        Run packed;
        using (var pool = new WorkerPool(2)) packed = RunKernel(small, qkv, dO, pool);

        long stride = (1L << 30) + 16;
        long rows = (long)small.B * small.T;
        nuint bytes = (nuint)(rows * stride * sizeof(float));
        nint values = Mmap(0, bytes, ProtReadWrite, MapPrivate | MapAnonymous | MapNoReserve, -1, 0);
        nint grads = Mmap(0, bytes, ProtReadWrite, MapPrivate | MapAnonymous | MapNoReserve, -1, 0);
        if (values == -1 || grads == -1)
        {
            if (values != -1) Munmap(values, bytes);
            if (grads != -1) Munmap(grads, bytes);
            return; // no address space for the test on this machine
        }
        try
        {
            float* x = (float*)values, g = (float*)grads;
            int width = (int)small.Stride; // q | k | v of one token; the o row sits after them in the same wide row
            long oOffset = width;
            for (long r = 0; r < rows; r++)
            {
                for (int i = 0; i < width; i++) x[r * stride + i] = qkv[r * small.Stride + i];
                for (int i = 0; i < small.OStride; i++) x[r * stride + oOffset + 64 + i] = dO[r * small.OStride + i];
            }
            var shape = new AttentionShape(small.B, small.T, small.H, small.KvH, small.D, stride, stride, stride, small.Scale);
            long hd = (long)small.H * small.D, kvd = (long)small.KvH * small.D;
            var lse = new float[small.LseLength];
            using var pool = new WorkerPool(2);
            var ws = new float[Attention.WorkspaceFloats(pool.Threads, small.D)];
            fixed (float* pl = lse, pw = ws)
            {
                float* o = x + oOffset, dOut = x + oOffset + 64;
                Attention.Forward(shape, x, x + hd, x + hd + kvd, o, pl, pw, pool);
                Attention.Backward(shape, x, x + hd, x + hd + kvd, o, pl, dOut, g, g + hd, g + hd + kvd, pw, pool);
            }
            Assert.Equal(packed.Lse, lse);
            for (long r = 0; r < rows; r++)
            {
                for (int i = 0; i < small.OStride; i++) Assert.Equal(packed.O[r * small.OStride + i], x[r * stride + oOffset + i]);
                for (int i = 0; i < width; i++) Assert.Equal(packed.Grad[r * small.Stride + i], g[r * stride + i]);
            }
        }
        finally
        {
            Munmap(values, bytes);
            Munmap(grads, bytes);
        }
    }
}

[CollectionDefinition(nameof(AttentionMemoryTests), DisableParallelization = true)]
public sealed class AttentionMemoryCollection;

/// <summary>
/// Forward + backward at T = 8192 and T = 32768: the memory high-water mark (native buffers plus
/// managed allocation) grows like T, not T^2. Runs alone so other tests' buffers do not count.
/// </summary>
[Collection(nameof(AttentionMemoryTests))]
public sealed unsafe class AttentionMemoryTests(ITestOutputHelper output)
{
    private const int H = 2, KvH = 2, D = 16;

    [Fact]
    public void Memory_grows_linearly_with_sequence_length()
    {
        using var pool = new WorkerPool(2);
        Measure(300, pool); // first calls (type initialization, JIT) out of the measurement
        var small = Measure(8192, pool);
        var large = Measure(32768, pool);
        double ratio = (double)large.Bytes / small.Bytes;
        output.WriteLine($"peak bytes: T=8192 {small.Bytes}, T=32768 {large.Bytes}, ratio {ratio:F3}; resident high-water growth at T=32768: {large.ResidentGrowth >> 10} KiB");
        Assert.True(ratio <= 4.5, $"peak memory {large.Bytes} B at T=32768 vs {small.Bytes} B at T=8192: ratio {ratio:F3} > 4.5");
        // A single 32768 x 32768 float matrix would be 4 GiB; the resident set must not grow by anything like it.
        Assert.True(large.ResidentGrowth < 512L << 20, $"resident high-water mark grew by {large.ResidentGrowth >> 20} MiB");
    }

    private static (long Bytes, long ResidentGrowth) Measure(int T, WorkerPool pool)
    {
        long stride = (H + 2 * KvH) * D, oStride = H * D;
        GC.Collect();
        long hwm0 = ReadVmHwm();
        long managed0 = GC.GetTotalAllocatedBytes(true);
        NativeMemoryStats.ResetPeak();
        long native0 = NativeMemoryStats.Current;

        using var qkv = new NativeBuffer(T * stride * sizeof(float));
        using var grad = new NativeBuffer(T * stride * sizeof(float));
        using var o = new NativeBuffer(T * oStride * sizeof(float));
        using var dO = new NativeBuffer(T * oStride * sizeof(float));
        using var lse = new NativeBuffer((long)T * H * sizeof(float));
        using var ws = new NativeBuffer(Attention.WorkspaceFloats(pool.Threads, D) * sizeof(float));
        ulong seed = 0x9E3779B97F4A7C15UL;
        Fill(qkv.Floats, T * stride, ref seed);
        Fill(dO.Floats, T * oStride, ref seed);

        var shape = new AttentionShape(1, T, H, KvH, D, stride, stride, oStride, 1 / MathF.Sqrt(D));
        float* x = qkv.Floats, g = grad.Floats;
        long thread0 = GC.GetAllocatedBytesForCurrentThread();
        Attention.Forward(shape, x, x + H * D, x + (H + KvH) * D, o.Floats, lse.Floats, ws.Floats, pool);
        Attention.Backward(shape, x, x + H * D, x + (H + KvH) * D, o.Floats, lse.Floats, dO.Floats,
            g, g + H * D, g + (H + KvH) * D, ws.Floats, pool);
        long kernelManaged = GC.GetAllocatedBytesForCurrentThread() - thread0;
        long bytes = NativeMemoryStats.Peak - native0 + GC.GetTotalAllocatedBytes(true) - managed0;
        long residentGrowth = ReadVmHwm() - hwm0;
        Assert.True(kernelManaged == 0, $"attention allocated {kernelManaged} managed bytes at T={T}");

        SpotCheck(shape, x, o.Floats, lse.Floats, dO.Floats, g, [0, 63, 64, T / 2 + 1, T - 2, T - 1]);
        return (bytes, residentGrowth);
    }

    private static void Fill(float* p, long n, ref ulong state)
    {
        for (long i = 0; i < n; i++)
        {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            p[i] = (float)((state >> 40) / (double)(1UL << 24) * 2 - 1);
        }
    }

    /// <summary>o, lse and dq of some rows, and dk, dv of the last row, against a double computation of just those rows.</summary>
    private static void SpotCheck(in AttentionShape s, float* x, float* o, float* lse, float* dO, float* grad, int[] rows)
    {
        long T = s.SeqLen;
        var p = new double[T];
        var dp = new double[T];
        foreach (int t in rows)
        {
            for (int h = 0; h < H; h++)
            {
                int gh = h / (H / KvH);
                float* q = x + t * s.QStride + h * D;
                double max = double.NegativeInfinity;
                for (int j = 0; j <= t; j++)
                {
                    double dot = 0;
                    float* k = x + j * s.KvStride + (H + gh) * D;
                    for (int d = 0; d < D; d++) dot += (double)q[d] * k[d];
                    p[j] = s.Scale * dot;
                    max = Math.Max(max, p[j]);
                }
                double sum = 0;
                for (int j = 0; j <= t; j++) sum += Math.Exp(p[j] - max);
                Assert.Equal(max + Math.Log(sum), lse[t * H + h], 1e-5 * Math.Max(1, Math.Abs(max + Math.Log(sum))));
                var ov = new double[D];
                var dq = new double[D];
                float* g = dO + t * s.OStride + h * D;
                double delta = 0;
                for (int j = 0; j <= t; j++)
                {
                    p[j] = Math.Exp(p[j] - max) / sum;
                    float* v = x + j * s.KvStride + (H + KvH + gh) * D;
                    double dot = 0;
                    for (int d = 0; d < D; d++)
                    {
                        ov[d] += p[j] * v[d];
                        dot += (double)g[d] * v[d];
                    }
                    dp[j] = dot;
                    delta += p[j] * dot;
                }
                for (int j = 0; j <= t; j++)
                {
                    float* k = x + j * s.KvStride + (H + gh) * D;
                    for (int d = 0; d < D; d++) dq[d] += s.Scale * p[j] * (dp[j] - delta) * k[d];
                }
                double oMax = ov.Max(Math.Abs), dqMax = dq.Max(Math.Abs);
                for (int d = 0; d < D; d++)
                {
                    Assert.True(Math.Abs(o[t * s.OStride + h * D + d] - ov[d]) <= 1e-5 * oMax, $"o[{t},{h},{d}]");
                    Assert.True(Math.Abs(grad[t * s.QStride + h * D + d] - dq[d]) <= 1e-5 * dqMax + 1e-7, $"dq[{t},{h},{d}]");
                }
                if (t == T - 1)
                {
                    // the last key is seen only by the last query: dk = Scale * dS * q, dv = p * dO
                    double ds = s.Scale * p[t] * (dp[t] - delta);
                    for (int d = 0; d < D; d++)
                    {
                        Assert.Equal(ds * q[d], grad[t * s.KvStride + (H + gh) * D + d], 1e-6);
                        Assert.Equal(p[t] * g[d], grad[t * s.KvStride + (H + KvH + gh) * D + d], 1e-6);
                    }
                }
            }
        }
    }

    private static long ReadVmHwm()
    {
        if (!OperatingSystem.IsLinux()) return 0;
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (!line.StartsWith("VmHWM:", StringComparison.Ordinal)) continue;
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return long.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
        }
        return 0;
    }
}
