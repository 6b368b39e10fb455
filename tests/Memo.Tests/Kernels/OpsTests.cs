using Memo.Cpu;
using Memo.Cpu.Kernels;
using Memo.Reference;
using static Memo.Tests.Kernels.OpsTestData;

namespace Memo.Tests.Kernels;

/// <summary>
/// The fp32 element-wise and row-wise kernels against the double references in <see cref="OpsReference"/>,
/// over row counts 0..20 (<see cref="OpsTestData.RowCounts"/>) and widths 1..70, 128, 257 (every SIMD tail). Tolerances are relative plus an
/// absolute term scaled by the tensor's largest magnitude; the numbers are a few float ulps times the
/// length of the longest fixed-order sum involved.
/// </summary>
public sealed unsafe class OpsTests : IDisposable
{
    private const float Eps = 1e-5f;
    private readonly WorkerPool _pool = new(2);

    public void Dispose() => _pool.Dispose();

    [Fact]
    public void RmsNorm_matches_reference()
    {
        var rng = new Random(1);
        foreach (int rows in RowCounts)
        {
            foreach (int C in Widths)
            {
                var x = Uniform(rng, rows * C, -2, 2);
                var w = Uniform(rng, C, 0.5f, 1.5f);
                var dy = Uniform(rng, rows * C);
                var dx = Uniform(rng, rows * C);
                var dw = Uniform(rng, C);
                var dx0 = ToDouble(dx);
                var dw0 = ToDouble(dw);
                var y = new float[rows * C];
                var rstd = new float[rows];
                fixed (float* px = x, pw = w, py = y, prs = rstd, pdy = dy, pdx = dx, pdw = dw)
                {
                    RmsNorm.Forward(rows, C, px, pw, py, prs, Eps, _pool);
                    RmsNorm.Backward(rows, C, pdy, px, pw, prs, pdx, pdw, _pool);
                }
                var (ry, rrstd) = OpsReference.RmsNormForward(rows, C, ToDouble(x), ToDouble(w), Eps);
                var (rdx, rdw) = OpsReference.RmsNormBackward(rows, C, ToDouble(dy), ToDouble(x), ToDouble(w), Eps);
                string at = $"rows={rows} C={C}";
                AssertClose(y, ry, 1e-5, 1e-6, "rmsnorm y " + at);
                AssertClose(rstd, rrstd, 1e-5, 0, "rmsnorm rstd " + at);
                AssertClose(dx, Add(dx0, rdx), 1e-5, 2e-6, "rmsnorm dx " + at);
                AssertClose(dw, Add(dw0, rdw), 1e-5, 2e-7, "rmsnorm dw " + at, rows + 1);
            }
        }
    }

    [Fact]
    public void LayerNorm_matches_reference()
    {
        var rng = new Random(2);
        foreach (int rows in RowCounts)
        {
            foreach (int C in Widths)
            {
                var x = WellSpread(rng, rows * C);
                var w = Uniform(rng, C, 0.5f, 1.5f);
                var b = Uniform(rng, C);
                var dy = Uniform(rng, rows * C);
                var dx = Uniform(rng, rows * C);
                var dw = Uniform(rng, C);
                var db = Uniform(rng, C);
                var dx0 = ToDouble(dx);
                var dw0 = ToDouble(dw);
                var db0 = ToDouble(db);
                var y = new float[rows * C];
                var mean = new float[rows];
                var rstd = new float[rows];
                fixed (float* px = x, pw = w, pb = b, py = y, pm = mean, prs = rstd, pdy = dy, pdx = dx, pdw = dw, pdb = db)
                {
                    LayerNorm.Forward(rows, C, px, pw, pb, py, pm, prs, Eps, _pool);
                    LayerNorm.Backward(rows, C, pdy, px, pw, pm, prs, pdx, pdw, pdb, _pool);
                }
                var (ry, rmean, rrstd) = OpsReference.LayerNormForward(rows, C, ToDouble(x), ToDouble(w), ToDouble(b), Eps);
                var (rdx, rdw, rdb) = OpsReference.LayerNormBackward(rows, C, ToDouble(dy), ToDouble(x), ToDouble(w), ToDouble(b), Eps);
                string at = $"rows={rows} C={C}";
                AssertClose(y, ry, 1e-5, 2e-6, "layernorm y " + at);
                AssertClose(mean, rmean, 1e-6, 0, "layernorm mean " + at);
                // rstd = 1/sqrt(var + eps): for C = 1 the variance is 0 and rstd is exactly 1/sqrt(eps).
                AssertClose(rstd, rrstd, 2e-5, 0, "layernorm rstd " + at);
                AssertClose(dx, Add(dx0, rdx), 1e-5, 1e-5, "layernorm dx " + at);
                AssertClose(dw, Add(dw0, rdw), 1e-5, 2e-7, "layernorm dw " + at, rows + 1);
                AssertClose(db, Add(db0, rdb), 1e-6, 2e-7, "layernorm db " + at, rows + 1);
            }
        }
    }

    [Fact]
    public void Rope_matches_reference_and_leaves_the_rest_of_the_row()
    {
        var rng = new Random(3);
        const double theta = 10000;
        const long seqLen = 13, rowOffset = 7;
        int[] halves = [.. Enumerable.Range(1, 35), 64];
        foreach (int half in halves)
        {
            int D = 2 * half;
            var (cos, sin) = Rope.Table(seqLen, D, theta);
            for (int heads = 1; heads <= 3; heads++)
            {
                int stride = heads * D + 5; // five floats after the heads that RoPE must not touch
                foreach (int rows in heads == 2 ? RowCounts : [0, 7, 20])
                {
                    var x = Uniform(rng, rows * stride);
                    var fwd = (float[])x.Clone();
                    var bwd = (float[])x.Clone();
                    fixed (float* pf = fwd, pb = bwd, pc = cos, ps = sin)
                    {
                        Rope.Forward(pf, stride, rows, heads, D, rowOffset, seqLen, pc, ps, _pool);
                        Rope.Backward(pb, stride, rows, heads, D, rowOffset, seqLen, pc, ps, _pool);
                    }
                    var xd = ToDouble(x);
                    string at = $"rows={rows} heads={heads} D={D}";
                    AssertClose(fwd, OpsReference.Rope(xd, stride, rows, heads, D, rowOffset, seqLen, theta, false), 1e-6, 1e-6, "rope forward " + at);
                    AssertClose(bwd, OpsReference.Rope(xd, stride, rows, heads, D, rowOffset, seqLen, theta, true), 1e-6, 1e-6, "rope backward " + at);
                    for (int r = 0; r < rows; r++)
                    {
                        for (int i = heads * D; i < stride; i++)
                        {
                            Assert.Equal(x[r * stride + i], fwd[r * stride + i]);
                            Assert.Equal(x[r * stride + i], bwd[r * stride + i]);
                        }
                    }
                }
            }
        }
    }

    [Fact]
    public void Rope_table_is_double_precision_rounded()
    {
        const int D = 128;
        const double theta = 500000;
        var (cos, sin) = Rope.Table(4096, D, theta);
        Assert.Equal(4096 * D / 2, cos.Length);
        foreach (long pos in new long[] { 0, 1, 17, 1000, 4095 })
        {
            for (int i = 0; i < D / 2; i++)
            {
                double angle = pos / Math.Pow(theta, 2.0 * i / D);
                Assert.Equal(Math.Cos(angle), cos[pos * D / 2 + i], 1e-7);
                Assert.Equal(Math.Sin(angle), sin[pos * D / 2 + i], 1e-7);
            }
        }
    }

    /// <summary>
    /// Pins the rotate-half convention to Hugging Face's apply_rotary_pos_emb. Expected values from
    /// PyTorch 1.13 (/usr/bin/python3):
    /// <code>
    /// import torch
    /// D, H, theta = 8, 2, 10000.0
    /// pos = torch.tensor([998, 999, 0, 1], dtype=torch.float64)  # rowOffset 998, seqLen 1000
    /// inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
    /// freqs = torch.outer(pos, inv_freq)
    /// emb = torch.cat((freqs, freqs), dim=-1)
    /// cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]
    /// def rotate_half(x):
    ///     x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    ///     return torch.cat((-x2, x1), dim=-1)
    /// x = torch.sin(torch.arange(4 * H * D, dtype=torch.float64) * 0.37).float().double().reshape(4, H, D)
    /// y = x * cos + rotate_half(x) * sin
    /// print(", ".join(f"{v:.9g}" for v in y.flatten().tolist()))
    /// </code>
    /// </summary>
    [Fact]
    public void Rope_matches_pytorch_rotate_half()
    {
        double[] expected =
        [
            0.851949323, 0.910969881, -0.153103539, 0.0450535586, 0.515714071, 0.474288557, -1.03234687, 1.03675877,
            -0.730411408, -0.80385714, -0.0202972103, 0.128472897, -0.653249886, -0.615950774, 1.03785077, -1.03558875,
            -0.331348664, 0.593347594, 0.203112864, -0.298774692, 0.907793701, 0.800592759, -1.00724386, 1.00006467,
            0.496752992, -0.42883398, -0.368871782, 0.458215629, -0.818161827, -0.881732317, 0.943768212, -0.931782089,
            -0.664160728, -0.348875195, 0.0136289634, 0.374288499, 0.684289873, 0.901675761, 0.997024119, 0.957429886,
            0.788252056, 0.512387991, 0.167174622, -0.200665057, -0.541345656, -0.808757663, -0.966708124, -0.993819177,
            -0.799198658, -0.724567763, -0.351509371, 0.0194451171, -0.540259346, 0.620004622, 0.901131595, 0.997546232,
            0.690694303, 0.834738546, 0.514626034, 0.161420357, 0.691951127, -0.466056354, -0.80764109, -0.96826845,
        ];
        const int D = 8, H = 2, rows = 4, stride = H * D;
        var x = new float[rows * stride];
        for (int i = 0; i < x.Length; i++) x[i] = (float)Math.Sin(i * 0.37);
        var (cos, sin) = Rope.Table(1000, D, 10000.0);
        fixed (float* px = x, pc = cos, ps = sin)
        {
            Rope.Forward(px, stride, rows, H, D, 998, 1000, pc, ps, _pool);
        }
        AssertClose(x, expected, 0, 5e-7, "rope vs pytorch");
    }

    [Fact]
    public void SwiGlu_matches_reference()
    {
        var rng = new Random(4);
        foreach (int rows in RowCounts)
        {
            foreach (int F in Widths)
            {
                var gu = Uniform(rng, rows * 2 * F, -6, 6);
                var dm = Uniform(rng, rows * F);
                var m = new float[rows * F];
                var dgu = Uniform(rng, rows * 2 * F); // overwritten
                fixed (float* pgu = gu, pm = m, pdm = dm, pdgu = dgu)
                {
                    SwiGlu.Forward(rows, F, pgu, pm, _pool);
                    SwiGlu.Backward(rows, F, pdm, pgu, pdgu, _pool);
                }
                string at = $"rows={rows} F={F}";
                AssertClose(m, OpsReference.SwiGluForward(rows, F, ToDouble(gu)), 2e-6, 1e-7, "swiglu m " + at);
                AssertClose(dgu, OpsReference.SwiGluBackward(rows, F, ToDouble(dm), ToDouble(gu)), 2e-6, 1e-7, "swiglu dgu " + at);
            }
        }
    }

    [Fact]
    public void Gelu_matches_reference()
    {
        var rng = new Random(5);
        foreach (int rows in RowCounts)
        {
            foreach (int C in Widths)
            {
                int n = rows * C;
                var x = Uniform(rng, n, -6, 6);
                if (n > 2)
                {
                    x[0] = 12; // beyond the clamp: gelu is x, its slope 1
                    x[1] = -12; // gelu and its slope are 0 (to float precision)
                }
                var dy = Uniform(rng, n);
                var y = new float[n];
                var dx = Uniform(rng, n); // overwritten
                fixed (float* px = x, py = y, pdy = dy, pdx = dx)
                {
                    Gelu.Forward(n, px, py, _pool);
                    Gelu.Backward(n, pdy, px, pdx, _pool);
                }
                var ry = new double[n];
                var rdx = new double[n];
                for (int i = 0; i < n; i++)
                {
                    ry[i] = OpsReference.Gelu(x[i]);
                    rdx[i] = dy[i] * OpsReference.GeluGrad(x[i]);
                }
                string at = $"rows={rows} C={C}";
                AssertClose(y, ry, 2e-6, 1e-7, "gelu y " + at);
                AssertClose(dx, rdx, 2e-6, 1e-7, "gelu dx " + at);
            }
        }
    }

    [Fact]
    public void Bias_matches_reference()
    {
        var rng = new Random(6);
        foreach (int rows in RowCounts)
        {
            foreach (int N in Widths)
            {
                var y = Uniform(rng, rows * N);
                var b = Uniform(rng, N);
                var db = Uniform(rng, N);
                var y0 = ToDouble(y);
                var db0 = ToDouble(db);
                fixed (float* py = y, pb = b, pdb = db)
                {
                    Bias.Backward(rows, N, py, pdb, _pool); // db += column sums of the original y
                    Bias.Forward(rows, N, py, pb, _pool);
                }
                var ry = new double[rows * N];
                var rdb = (double[])db0.Clone();
                for (int r = 0; r < rows; r++)
                {
                    for (int i = 0; i < N; i++)
                    {
                        ry[r * N + i] = y0[r * N + i] + b[i];
                        rdb[i] += y0[r * N + i];
                    }
                }
                string at = $"rows={rows} N={N}";
                AssertClose(y, ry, 1e-7, 0, "bias y " + at);
                AssertClose(db, rdb, 1e-6, 2e-7, "bias db " + at, rows + 1);
            }
        }
    }

    [Fact]
    public void Embedding_matches_reference()
    {
        var rng = new Random(7);
        const int V = 11;
        const long seqLen = 7, rowOffset = 3;
        foreach (bool positions in new[] { true, false })
        {
            foreach (int rows in RowCounts)
            {
                foreach (int C in Widths)
                {
                    var tokens = new int[rows];
                    for (int r = 0; r < rows; r++) tokens[r] = rng.Next(V);
                    var wte = Uniform(rng, V * C);
                    float[]? wpe = positions ? Uniform(rng, (int)seqLen * C) : null;
                    var dx = Uniform(rng, rows * C);
                    var dwte = Uniform(rng, V * C);
                    var dwpe = Uniform(rng, (int)seqLen * C);
                    var dwte0 = ToDouble(dwte);
                    var dwpe0 = ToDouble(dwpe);
                    var x = new float[rows * C];
                    fixed (int* pt = tokens)
                    fixed (float* pwte = wte, pwpe = wpe, px = x, pdx = dx, pdwte = dwte, pdwpe = dwpe)
                    {
                        Embedding.Forward(rows, C, pt, pwte, pwpe, rowOffset, seqLen, px, _pool);
                        Embedding.Backward(rows, C, pt, pdx, pdwte, positions ? pdwpe : null, rowOffset, seqLen, _pool);
                    }
                    string at = $"rows={rows} C={C} positions={positions}";
                    var rx = OpsReference.EmbeddingForward(rows, C, tokens, ToDouble(wte), wpe == null ? null : ToDouble(wpe), rowOffset, seqLen);
                    AssertClose(x, rx, 1e-7, 0, "embedding x " + at);
                    OpsReference.EmbeddingBackward(rows, C, tokens, ToDouble(dx), dwte0, positions ? dwpe0 : null, rowOffset, seqLen);
                    AssertClose(dwte, dwte0, 1e-6, 2e-7, "embedding dwte " + at, rows + 1);
                    AssertClose(dwpe, dwpe0, 1e-6, 2e-7, "embedding dwpe " + at, rows + 1); // untouched without positions
                }
            }
        }
    }

    [Fact]
    public void CrossEntropy_matches_reference()
    {
        var rng = new Random(8);
        foreach (int rows in RowCounts)
        {
            foreach (int V in Widths)
            {
                int ld = V + rows % 3; // a leading dimension wider than V leaves padding the kernel must not touch
                var logits = Uniform(rng, rows * ld, -8, 8);
                var targets = new int[rows];
                for (int r = 0; r < rows; r++) targets[r] = rng.Next(V);
                var dense = new double[rows * V];
                for (int r = 0; r < rows; r++)
                {
                    for (int i = 0; i < V; i++) dense[r * V + i] = logits[r * ld + i];
                }
                var before = (float[])logits.Clone();
                var losses = new float[rows];
                float gradScale = 1f / Math.Max(rows, 1);
                fixed (float* pl = logits, ploss = losses)
                fixed (int* pt = targets)
                {
                    CrossEntropy.ForwardBackward(rows, V, pl, ld, pt, ploss, gradScale, _pool);
                }
                var (rloss, rgrad) = OpsReference.CrossEntropy(rows, V, dense, targets);
                var grad = new float[rows * V];
                for (int r = 0; r < rows; r++)
                {
                    for (int i = 0; i < V; i++) grad[r * V + i] = logits[r * ld + i];
                    for (int i = V; i < ld; i++) Assert.Equal(before[r * ld + i], logits[r * ld + i]);
                }
                string at = $"rows={rows} V={V}";
                AssertClose(losses, rloss, 1e-5, 1e-6, "cross-entropy loss " + at);
                AssertClose(grad, [.. rgrad.Select(g => g * gradScale)], 1e-5, 1e-6, "cross-entropy grad " + at);
            }
        }
    }

    [Fact]
    public void CrossEntropy_rejects_a_target_outside_the_vocabulary()
    {
        var logits = new float[2 * 5];
        var losses = new float[2];
        var targets = new[] { 1, 5 };
        var e = Assert.Throws<MemoException>(() =>
        {
            fixed (float* pl = logits, ploss = losses)
            fixed (int* pt = targets)
            {
                CrossEntropy.ForwardBackward(2, 5, pl, 5, pt, ploss, 1f, _pool);
            }
        });
        Assert.Contains("vocab", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Kernels_do_not_allocate()
    {
        const int rows = 64, C = 300, V = 50;
        var rng = new Random(9);
        var x = Uniform(rng, rows * C);
        var y = new float[rows * C];
        var dx = new float[rows * C];
        var w = Uniform(rng, C);
        var b = Uniform(rng, C);
        var dw = new float[C];
        var db = new float[C];
        var stats = new float[2 * rows];
        var wte = Uniform(rng, V * C);
        var tokens = new int[rows];
        var (cos, sin) = Rope.Table(rows, 20, 10000);
        using var pool = new WorkerPool(1); // runs inline, so every allocation would land on this thread
        fixed (float* px = x, py = y, pdx = dx, pw = w, pb = b, pdw = dw, pdb = db, ps = stats, pwte = wte, pc = cos, psn = sin)
        fixed (int* pt = tokens)
        {
            for (int pass = 0; pass < 2; pass++) // the first pass warms up the code
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                RmsNorm.Forward(rows, C, px, pw, py, ps, Eps, pool);
                RmsNorm.Backward(rows, C, px, px, pw, ps, pdx, pdw, pool);
                LayerNorm.Forward(rows, C, px, pw, pb, py, ps, ps + rows, Eps, pool);
                LayerNorm.Backward(rows, C, px, px, pw, ps, ps + rows, pdx, pdw, pdb, pool);
                Rope.Forward(py, C, rows, 15, 20, 0, rows, pc, psn, pool);
                Rope.Backward(py, C, rows, 15, 20, 0, rows, pc, psn, pool);
                SwiGlu.Forward(rows, C / 2, px, py, pool);
                SwiGlu.Backward(rows, C / 2, px, px, pdx, pool);
                Gelu.Forward(rows * C, px, py, pool);
                Gelu.Backward(rows * C, px, px, pdx, pool);
                Bias.Forward(rows, C, py, pb, pool);
                Bias.Backward(rows, C, px, pdb, pool);
                Embedding.Forward(rows, C, pt, pwte, null, 0, rows, py, pool);
                Embedding.Backward(rows, C, pt, px, pdx, null, 0, rows, pool);
                CrossEntropy.ForwardBackward(rows, C, py, C, pt, ps, 1f, pool);
                AdamW.Step(rows * C, py, px, pdx, pdx, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1, pool);
                _ = AdamW.SumOfSquares(rows * C, px, pool);
                AdamW.Scale(rows * C, py, 0.5f, pool);
                long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
                if (pass == 1) Assert.Equal(0, allocated);
            }
        }
    }

    /// <summary>
    /// Values around 2 (an offset mean, so the two-pass variance matters) that alternate above and
    /// below it by 0.5..1: every row of two or more has variance of order 1, so LayerNorm is well
    /// conditioned and float rounding of the mean cannot be amplified beyond the tolerance.
    /// </summary>
    private static float[] WellSpread(Random rng, int n)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)(2 + (i % 2 == 0 ? 1 : -1) * (0.5 + 0.5 * rng.NextDouble()));
        return x;
    }

    private static double[] Add(double[] a, double[] b) => [.. a.Zip(b, (p, q) => p + q)];
}
