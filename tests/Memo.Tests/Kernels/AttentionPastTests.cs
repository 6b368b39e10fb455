using Memo.Backends;
using System.Runtime.InteropServices;
using Memo.Cpu;
using Memo.Cpu.Kernels;

namespace Memo.Tests.Kernels;

/// <summary>
/// Attention of a query block against a key block in its past (<see cref="Attention.ForwardPast"/>,
/// <see cref="Attention.BackwardPast"/>), the off-diagonal blocks of ring attention, against a naive
/// double-precision reference (itself checked by finite differences): fresh output, the log-sum-exp
/// merge of two key blocks, accumulation of the backward into existing gradients, thread-count bit identity.
/// </summary>
public sealed unsafe class AttentionPastTests
{
    /// <summary>q rows (B, Tq, H*D + pad); packed key rows (B, Tk, [k heads | v heads] + pad); o rows (B, Tq, H*D + oPad).</summary>
    private sealed record Layout(int B, int Tq, int Tk, int H, int KvH, int D, int Pad = 0, int OPad = 0, float ScaleFactor = 1)
    {
        public long QStride => (long)H * D + Pad;
        public long KvStride => 2L * KvH * D + Pad;
        public long OStride => (long)H * D + OPad;
        public float Scale => ScaleFactor / MathF.Sqrt(D);
        public long QLength => (long)B * Tq * QStride;
        public long KvLength => (long)B * Tk * KvStride;
        public long OLength => (long)B * Tq * OStride;
        public long LseLength => (long)B * Tq * H;
        public long Q(int b, int t, int h) => ((long)b * Tq + t) * QStride + (long)h * D;
        public long K(int b, int j, int g) => ((long)b * Tk + j) * KvStride + (long)g * D;
        public long V(int b, int j, int g) => ((long)b * Tk + j) * KvStride + (long)(KvH + g) * D;
        public long O(int b, int t, int h) => ((long)b * Tq + t) * OStride + (long)h * D;
        public long Lse(int b, int t, int h) => ((long)b * Tq + t) * H + h;

        /// <summary>The kernel's shape for keys [j0, j0 + keys) of every sequence (Batch 1 per sequence when a sub-range is taken).</summary>
        public AttentionPastShape Shape(long keys) => new(B, Tq, keys, H, KvH, D, QStride, KvStride, OStride, Scale);
    }

    // ---------------------------------------------------------------- reference (double, every key visible)

    private static (double[] O, double[] Lse) RefForward(Layout L, double[] q, double[] kv)
    {
        var o = new double[L.OLength];
        var lse = new double[L.LseLength];
        var s = new double[L.Tk];
        int rep = L.H / L.KvH;
        for (int b = 0; b < L.B; b++)
            for (int h = 0; h < L.H; h++)
                for (int t = 0; t < L.Tq; t++)
                {
                    int g = h / rep;
                    double max = double.NegativeInfinity;
                    for (int j = 0; j < L.Tk; j++)
                    {
                        double dot = 0;
                        for (int d = 0; d < L.D; d++) dot += q[L.Q(b, t, h) + d] * kv[L.K(b, j, g) + d];
                        s[j] = L.Scale * dot;
                        max = Math.Max(max, s[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < L.Tk; j++) sum += Math.Exp(s[j] - max);
                    lse[L.Lse(b, t, h)] = max + Math.Log(sum);
                    for (int j = 0; j < L.Tk; j++)
                    {
                        double p = Math.Exp(s[j] - max) / sum;
                        for (int d = 0; d < L.D; d++) o[L.O(b, t, h) + d] += p * kv[L.V(b, j, g) + d];
                    }
                }
        return (o, lse);
    }

    /// <summary>Gradient of sum(dO * o) + sum(dLse * lse) with respect to q and the packed k, v.</summary>
    private static (double[] DQ, double[] DKv) RefBackward(Layout L, double[] q, double[] kv, double[] dO, double[]? dLse)
    {
        var dq = new double[L.QLength];
        var dkv = new double[L.KvLength];
        var p = new double[L.Tk];
        var dp = new double[L.Tk];
        int rep = L.H / L.KvH;
        for (int b = 0; b < L.B; b++)
            for (int h = 0; h < L.H; h++)
                for (int t = 0; t < L.Tq; t++)
                {
                    int g = h / rep;
                    double max = double.NegativeInfinity;
                    for (int j = 0; j < L.Tk; j++)
                    {
                        double dot = 0;
                        for (int d = 0; d < L.D; d++) dot += q[L.Q(b, t, h) + d] * kv[L.K(b, j, g) + d];
                        p[j] = L.Scale * dot;
                        max = Math.Max(max, p[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < L.Tk; j++) sum += Math.Exp(p[j] - max);
                    double delta = 0;
                    for (int j = 0; j < L.Tk; j++)
                    {
                        p[j] = Math.Exp(p[j] - max) / sum;
                        double dot = 0;
                        for (int d = 0; d < L.D; d++) dot += dO[L.O(b, t, h) + d] * kv[L.V(b, j, g) + d];
                        dp[j] = dot;
                        delta += p[j] * dot;
                    }
                    double gl = dLse is null ? 0 : dLse[L.Lse(b, t, h)];
                    for (int j = 0; j < L.Tk; j++)
                    {
                        double ds = p[j] * (dp[j] - delta) + gl * p[j];
                        for (int d = 0; d < L.D; d++)
                        {
                            dq[L.Q(b, t, h) + d] += L.Scale * ds * kv[L.K(b, j, g) + d];
                            dkv[L.K(b, j, g) + d] += L.Scale * ds * q[L.Q(b, t, h) + d];
                            dkv[L.V(b, j, g) + d] += p[j] * dO[L.O(b, t, h) + d];
                        }
                    }
                }
        return (dq, dkv);
    }

    private static float[] RandomFloats(Random rng, long n, float amplitude = 1)
    {
        var a = new float[n];
        for (long i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 2 - 1) * amplitude;
        return a;
    }

    private static double[] ToDouble(float[] a) => Array.ConvertAll(a, x => (double)x);

    /// <summary>max |got - base - want| / max |want| over the entries <paramref name="include"/> selects (base: the values the kernel added to).</summary>
    private static double RelErr(float[] got, double[] want, Func<long, bool> include, float[]? baseline = null)
    {
        double maxErr = 0, maxRef = 0;
        for (long i = 0; i < want.LongLength; i++)
        {
            if (!include(i)) continue;
            double g = baseline is null ? got[i] : (double)got[i] - baseline[i];
            maxErr = Math.Max(maxErr, Math.Abs(g - want[i]));
            maxRef = Math.Max(maxRef, Math.Abs(want[i]));
        }
        return maxRef == 0 ? maxErr : maxErr / maxRef;
    }

    public static TheoryData<int, int, int, int, int, int, int, float> Shapes => new()
    {
        // B, Tq, Tk, H, KvH, D, pad, scale factor (x 1/sqrt(D))
        { 1, 1, 1, 2, 1, 8, 0, 1f },
        { 2, 7, 3, 4, 2, 16, 0, 1f },
        { 1, 65, 130, 4, 1, 64, 3, 1f },
        { 2, 130, 64, 2, 2, 40, 0, 1f },    // head dim tails: 2 vectors + 8 lanes
        { 1, 129, 200, 2, 1, 80, 5, 4f },   // peaked softmax, 4 vectors + 1
        { 1, 100, 67, 2, 2, 3, 0, 1f },     // odd head dim
    };

    /// <summary>Keys split into two blocks: the first fresh, the second merged into it by log-sum-exp; backward of each block added to random gradients.</summary>
    [Theory]
    [MemberData(nameof(Shapes))]
    public void Split_keys_merged_and_accumulated_match_the_double_reference(int b, int tq, int tk, int h, int kvh, int d, int pad, float scaleFactor)
    {
        var L = new Layout(b, tq, tk, h, kvh, d, pad, pad, scaleFactor);
        var rng = new Random(31 + tq * 5 + tk + d);
        var q = RandomFloats(rng, L.QLength);
        var kv = RandomFloats(rng, L.KvLength);
        var dO = RandomFloats(rng, L.OLength);
        var dq0 = RandomFloats(rng, L.QLength);
        var dkv0 = RandomFloats(rng, L.KvLength);
        var (refO, refLse) = RefForward(L, ToDouble(q), ToDouble(kv));
        var (refDq, refDkv) = RefBackward(L, ToDouble(q), ToDouble(kv), ToDouble(dO), null);

        using var pool = new WorkerPool(2);
        var o = new float[L.OLength];
        var lse = new float[L.LseLength];
        var dq = (float[])dq0.Clone();
        var dkv = (float[])dkv0.Clone();
        var ws = new float[Attention.WorkspaceFloats(pool.Threads, d)];
        Array.Fill(ws, float.NaN); // scratch must be written before it is read
        Array.Fill(o, float.NaN);
        long hd = (long)kvh * d;
        int split = Math.Max(1, tk / 3); // keys [0, split) first, then [split, tk)
        fixed (float* pq = q, pkv = kv, po = o, pl = lse, pdO = dO, pdq = dq, pdkv = dkv, pw = ws)
        {
            for (int s = 0; s < b; s++)
            {
                var one = new AttentionPastShape(1, tq, split, h, kvh, d, L.QStride, L.KvStride, L.OStride, L.Scale);
                var rest = one with { KeyLen = tk - split };
                float* qs = pq + L.Q(s, 0, 0), os = po + L.O(s, 0, 0), ls = pl + L.Lse(s, 0, 0);
                float* k1 = pkv + L.K(s, 0, 0), k2 = pkv + L.K(s, split, 0);
                Attention.ForwardPast(one, qs, k1, k1 + hd, os, ls, merge: false, pw, pool);
                Attention.ForwardPast(rest, qs, k2, k2 + hd, os, ls, merge: true, pw, pool);
            }
            for (int s = 0; s < b; s++)
            {
                var one = new AttentionPastShape(1, tq, split, h, kvh, d, L.QStride, L.KvStride, L.OStride, L.Scale);
                var rest = one with { KeyLen = tk - split };
                float* qs = pq + L.Q(s, 0, 0), os = po + L.O(s, 0, 0), ls = pl + L.Lse(s, 0, 0), dOs = pdO + L.O(s, 0, 0);
                float* k1 = pkv + L.K(s, 0, 0), k2 = pkv + L.K(s, split, 0);
                float* dqs = pdq + L.Q(s, 0, 0), dk1 = pdkv + L.K(s, 0, 0), dk2 = pdkv + L.K(s, split, 0);
                Attention.BackwardPast(rest, qs, k2, k2 + hd, os, ls, dOs, dqs, dk2, dk2 + hd, pw, pool);
                Attention.BackwardPast(one, qs, k1, k1 + hd, os, ls, dOs, dqs, dk1, dk1 + hd, pw, pool);
            }
        }

        double eO = RelErr(o, refO, i => i % L.OStride < (long)h * d);
        double eLse = RelErr(lse, refLse, _ => true);
        double eQ = RelErr(dq, refDq, i => i % L.QStride < (long)h * d, dq0);
        double eKv = RelErr(dkv, refDkv, i => i % L.KvStride < 2 * hd, dkv0);
        string report = $"o {eO:E2} lse {eLse:E2} dq {eQ:E2} dkv {eKv:E2}";
        Assert.True(eO < 1e-5 && eLse < 1e-5, report);
        Assert.True(eQ < 1e-5 && eKv < 1e-5, report);
        // Padding columns are never written.
        for (long i = 0; i < L.QLength; i++)
            if (i % L.QStride >= (long)h * d) Assert.Equal(dq0[i], dq[i]);
    }

    [Fact]
    public void Fresh_forward_over_all_keys_matches_the_double_reference()
    {
        var L = new Layout(2, 70, 150, 4, 2, 32);
        var rng = new Random(5);
        var q = RandomFloats(rng, L.QLength);
        var kv = RandomFloats(rng, L.KvLength);
        var (refO, refLse) = RefForward(L, ToDouble(q), ToDouble(kv));
        using var pool = new WorkerPool(2);
        var o = new float[L.OLength];
        var lse = new float[L.LseLength];
        var ws = new float[Attention.WorkspaceFloats(pool.Threads, L.D)];
        fixed (float* pq = q, pkv = kv, po = o, pl = lse, pw = ws)
            Attention.ForwardPast(L.Shape(L.Tk), pq, pkv, pkv + (long)L.KvH * L.D, po, pl, merge: false, pw, pool);
        double eO = RelErr(o, refO, _ => true), eLse = RelErr(lse, refLse, _ => true);
        Assert.True(eO < 1e-5 && eLse < 1e-5, $"o {eO:E2} lse {eLse:E2}");
    }

    [Fact]
    public void Reference_backward_matches_finite_differences()
    {
        var L = new Layout(1, 3, 4, 2, 1, 3, 1, 1, 1.3f);
        var rng = new Random(17);
        var q = ToDouble(RandomFloats(rng, L.QLength));
        var kv = ToDouble(RandomFloats(rng, L.KvLength));
        var dO = ToDouble(RandomFloats(rng, L.OLength));
        var dLse = ToDouble(RandomFloats(rng, L.LseLength));
        double Loss()
        {
            var (o, lse) = RefForward(L, q, kv);
            double sum = 0;
            for (long i = 0; i < o.LongLength; i++) sum += dO[i] * o[i];
            for (long i = 0; i < lse.LongLength; i++) sum += dLse[i] * lse[i];
            return sum;
        }
        var (dq, dkv) = RefBackward(L, q, kv, dO, dLse);
        const double step = 1e-5;
        double maxErr = 0, maxGrad = 0;
        foreach (var (x, g) in new[] { (q, dq), (kv, dkv) })
            for (long i = 0; i < x.LongLength; i++)
            {
                double keep = x[i];
                x[i] = keep + step;
                double up = Loss();
                x[i] = keep - step;
                double down = Loss();
                x[i] = keep;
                maxErr = Math.Max(maxErr, Math.Abs((up - down) / (2 * step) - g[i]));
                maxGrad = Math.Max(maxGrad, Math.Abs(g[i]));
            }
        Assert.True(maxGrad > 0.1, $"gradient too small to test ({maxGrad})");
        Assert.True(maxErr / maxGrad < 1e-7, $"max |fd - analytic| = {maxErr:E3} (max |grad| {maxGrad:E3})");
    }

    [Fact]
    public void Results_are_bit_identical_for_one_and_two_threads()
    {
        var L = new Layout(2, 150, 130, 4, 2, 32);
        var rng = new Random(9);
        var q = RandomFloats(rng, L.QLength);
        var kv = RandomFloats(rng, L.KvLength);
        var dO = RandomFloats(rng, L.OLength);
        (float[] O, float[] Lse, float[] Dq, float[] Dkv) RunWith(int threads)
        {
            using var pool = new WorkerPool(threads);
            var o = new float[L.OLength];
            var lse = new float[L.LseLength];
            var dq = new float[L.QLength];
            var dkv = new float[L.KvLength];
            var ws = new float[Attention.WorkspaceFloats(pool.Threads, L.D)];
            long hd = (long)L.KvH * L.D;
            fixed (float* pq = q, pkv = kv, po = o, pl = lse, pdO = dO, pdq = dq, pdkv = dkv, pw = ws)
            {
                Attention.ForwardPast(L.Shape(L.Tk), pq, pkv, pkv + hd, po, pl, merge: false, pw, pool);
                Attention.BackwardPast(L.Shape(L.Tk), pq, pkv, pkv + hd, po, pl, pdO, pdq, pdkv, pdkv + hd, pw, pool);
            }
            return (o, lse, dq, dkv);
        }
        var one = RunWith(1);
        var two = RunWith(2);
        Assert.True(MemoryMarshal.AsBytes(one.O.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(two.O.AsSpan())), "o differs");
        Assert.True(MemoryMarshal.AsBytes(one.Lse.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(two.Lse.AsSpan())), "lse differs");
        Assert.True(MemoryMarshal.AsBytes(one.Dq.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(two.Dq.AsSpan())), "dq differs");
        Assert.True(MemoryMarshal.AsBytes(one.Dkv.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(two.Dkv.AsSpan())), "dk/dv differ");
    }

    [Fact]
    public void An_empty_key_block_is_rejected_unless_merging()
    {
        using var pool = new WorkerPool(1);
        var L = new Layout(1, 4, 0, 2, 1, 8);
        var o = new float[L.OLength];
        var lse = new float[L.LseLength];
        var q = new float[L.QLength];
        var ws = new float[Attention.WorkspaceFloats(1, 8)];
        Array.Fill(o, 7f);
        fixed (float* pq = q, po = o, pl = lse, pw = ws)
        {
            var shape = L.Shape(0);
            nint x = (nint)pq, y = (nint)po, z = (nint)pl, w = (nint)pw;
            var e = Assert.Throws<MemoException>(() =>
                Attention.ForwardPast(shape, (float*)x, (float*)x, (float*)x, (float*)y, (float*)z, merge: false, (float*)w, pool));
            Assert.Contains("empty key block", e.Message);
            Attention.ForwardPast(shape, pq, pq, pq, po, pl, merge: true, pw, pool);
        }
        Assert.All(o, x => Assert.Equal(7f, x)); // merging nothing leaves o unchanged
    }
}
