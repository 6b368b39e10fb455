using Memo.Cpu;
using Memo.Cpu.Kernels;
using static Memo.Tests.Kernels.OpsTestData;

namespace Memo.Tests.Kernels;

/// <summary>
/// Bit-identity the memory policies rely on: (1) every kernel gives the same bits with 1, 2 or 3
/// threads, reductions over rows (dw, db, dwte, dwpe, sum of squares) included, on shapes large
/// enough to split into many chunks; (2) a subset of rows (or elements) computed alone, with the
/// row offset set to match, gives the same bits as within the full call.
/// </summary>
public sealed unsafe class OpsDeterminismTests : IDisposable
{
    private readonly WorkerPool[] _pools = [new(1), new(2), new(3)];

    public void Dispose()
    {
        foreach (var p in _pools) p.Dispose();
    }

    /// <summary>Runs the kernel under each pool and asserts every output is bit-identical to the 1-thread run.</summary>
    private void AssertSameForAnyThreadCount(string what, Func<WorkerPool, float[][]> run)
    {
        var first = run(_pools[0]);
        foreach (var pool in _pools.Skip(1))
        {
            var other = run(pool);
            for (int k = 0; k < first.Length; k++) AssertBitEqual(first[k], other[k], $"{what} output {k}, {pool.Threads} threads");
        }
    }

    [Fact]
    public void Norms_are_identical_for_any_thread_count()
    {
        var rng = new Random(21);
        const int rows = 333, C = 300; // 13 row chunks, 5 column blocks
        var x = Uniform(rng, rows * C, -2, 2);
        var w = Uniform(rng, C, 0.5f, 1.5f);
        var b = Uniform(rng, C);
        var dy = Uniform(rng, rows * C);
        AssertSameForAnyThreadCount("rmsnorm", pool =>
        {
            var y = new float[rows * C];
            var rstd = new float[rows];
            var dx = new float[rows * C];
            var dw = new float[C];
            fixed (float* px = x, pw = w, py = y, prs = rstd, pdy = dy, pdx = dx, pdw = dw)
            {
                RmsNorm.Forward(rows, C, px, pw, py, prs, 1e-5f, pool);
                RmsNorm.Backward(rows, C, pdy, px, pw, prs, pdx, pdw, pool);
            }
            return [y, rstd, dx, dw];
        });
        AssertSameForAnyThreadCount("layernorm", pool =>
        {
            var y = new float[rows * C];
            var mean = new float[rows];
            var rstd = new float[rows];
            var dx = new float[rows * C];
            var dw = new float[C];
            var db = new float[C];
            fixed (float* px = x, pw = w, pb = b, py = y, pm = mean, prs = rstd, pdy = dy, pdx = dx, pdw = dw, pdb = db)
            {
                LayerNorm.Forward(rows, C, px, pw, pb, py, pm, prs, 1e-5f, pool);
                LayerNorm.Backward(rows, C, pdy, px, pw, pm, prs, pdx, pdw, pdb, pool);
            }
            return [y, mean, rstd, dx, dw, db];
        });
    }

    [Fact]
    public void Bias_and_embedding_reductions_are_identical_for_any_thread_count()
    {
        var rng = new Random(22);
        const int rows = 1000, C = 200, V = 13; // many repeats of each token and position
        const long seqLen = 37;
        var dy = Uniform(rng, rows * C);
        var tokens = new int[rows];
        for (int r = 0; r < rows; r++) tokens[r] = rng.Next(V);
        var wte = Uniform(rng, V * C);
        var wpe = Uniform(rng, (int)seqLen * C);
        AssertSameForAnyThreadCount("bias", pool =>
        {
            var db = new float[C];
            var y = (float[])dy.Clone();
            fixed (float* pdy = dy, pdb = db, py = y, pb = wte)
            {
                Bias.Backward(rows, C, pdy, pdb, pool);
                Bias.Forward(rows, C, py, pb, pool);
            }
            return [db, y];
        });
        AssertSameForAnyThreadCount("embedding", pool =>
        {
            var x = new float[rows * C];
            var dwte = new float[V * C];
            var dwpe = new float[seqLen * C];
            fixed (int* pt = tokens)
            fixed (float* pwte = wte, pwpe = wpe, px = x, pdy = dy, pdwte = dwte, pdwpe = dwpe)
            {
                Embedding.Forward(rows, C, pt, pwte, pwpe, 5, seqLen, px, pool);
                Embedding.Backward(rows, C, pt, pdy, pdwte, pdwpe, 5, seqLen, pool);
            }
            return [x, dwte, dwpe];
        });
    }

    [Fact]
    public void Elementwise_kernels_and_optimizer_are_identical_for_any_thread_count()
    {
        var rng = new Random(23);
        const int rows = 64, F = 700, V = 5000, n = 100_003;
        var gu = Uniform(rng, rows * 2 * F, -5, 5);
        var dm = Uniform(rng, rows * F);
        var logits = Uniform(rng, 8 * V, -5, 5);
        var targets = new int[8];
        for (int r = 0; r < 8; r++) targets[r] = rng.Next(V);
        var big = Uniform(rng, n, -3, 3);
        var grad = Uniform(rng, n);
        AssertSameForAnyThreadCount("activations", pool =>
        {
            var m = new float[rows * F];
            var dgu = new float[rows * 2 * F];
            var y = new float[n];
            var dx = new float[n];
            fixed (float* pgu = gu, pdm = dm, pm = m, pdgu = dgu, pbig = big, py = y, pg = grad, pdx = dx)
            {
                SwiGlu.Forward(rows, F, pgu, pm, pool);
                SwiGlu.Backward(rows, F, pdm, pgu, pdgu, pool);
                Gelu.Forward(n, pbig, py, pool);
                Gelu.Backward(n, pg, pbig, pdx, pool);
            }
            return [m, dgu, y, dx];
        });
        AssertSameForAnyThreadCount("cross-entropy", pool =>
        {
            var l = (float[])logits.Clone();
            var losses = new float[8];
            fixed (float* pl = l, ploss = losses)
            fixed (int* pt = targets)
            {
                CrossEntropy.ForwardBackward(8, V, pl, V, pt, ploss, 0.125f, pool);
            }
            return [l, losses];
        });
        AssertSameForAnyThreadCount("adamw", pool =>
        {
            var p = (float[])big.Clone();
            var m = new float[n];
            var v = new float[n];
            double ss;
            fixed (float* pp = p, pg = grad, pm = m, pv = v)
            {
                for (int step = 1; step <= 3; step++) AdamW.Step(n, pp, pg, pm, pv, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, step, pool);
                ss = AdamW.SumOfSquares(n, pg, pool);
                AdamW.Scale(n, pp, 0.75f, pool);
            }
            return [p, m, v, [(float)ss, (float)(ss - (float)ss)]];
        });
    }

    [Fact]
    public void Sum_of_squares_is_identical_for_any_thread_count()
    {
        var rng = new Random(24);
        var x = Uniform(rng, 1_000_003, -3, 3); // 62 fixed chunks
        var sums = new List<double>();
        fixed (float* px = x)
        {
            foreach (var pool in _pools) sums.Add(AdamW.SumOfSquares(x.Length, px, pool));
        }
        Assert.All(sums, s => Assert.Equal(BitConverter.DoubleToInt64Bits(sums[0]), BitConverter.DoubleToInt64Bits(s)));
    }

    [Fact]
    public void Norm_rows_computed_alone_match_the_full_call()
    {
        var rng = new Random(25);
        const int rows = 200, C = 257; // 4 row chunks
        var x = Uniform(rng, rows * C, -2, 2);
        var w = Uniform(rng, C, 0.5f, 1.5f);
        var b = Uniform(rng, C);
        var dy = Uniform(rng, rows * C);
        var dx0 = Uniform(rng, rows * C);
        var pool = _pools[1];
        var full = RunNorms(x, w, b, dy, dx0, 0, rows, C, pool);
        foreach (var (start, count) in new[] { (5, 5), (60, 10), (199, 1), (0, 1), (63, 130) })
        {
            var part = RunNorms(x, w, b, dy, dx0, start, count, C, pool);
            for (int k = 0; k < full.Length; k++)
            {
                int per = full[k].Length / rows;
                AssertBitEqual(full[k].AsSpan(start * per, count * per), part[k], $"norm output {k}, rows {start}..{start + count}");
            }
        }
    }

    private static float[][] RunNorms(float[] x, float[] w, float[] b, float[] dy, float[] dx0, int start, int count, int C, WorkerPool pool)
    {
        var y = new float[count * C];
        var rstd = new float[count];
        var dx = dx0.AsSpan(start * C, count * C).ToArray();
        var dw = new float[C];
        var lny = new float[count * C];
        var mean = new float[count];
        var lnrstd = new float[count];
        var lndx = dx0.AsSpan(start * C, count * C).ToArray();
        var db = new float[C];
        fixed (float* px0 = x, pw = w, pb = b, pdy0 = dy, py = y, prs = rstd, pdx = dx, pdw = dw, plny = lny, pm = mean, plnrs = lnrstd, plndx = lndx, pdb = db)
        {
            float* px = px0 + start * C;
            float* pdy = pdy0 + start * C;
            RmsNorm.Forward(count, C, px, pw, py, prs, 1e-5f, pool);
            RmsNorm.Backward(count, C, pdy, px, pw, prs, pdx, pdw, pool);
            LayerNorm.Forward(count, C, px, pw, pb, plny, pm, plnrs, 1e-5f, pool);
            LayerNorm.Backward(count, C, pdy, px, pw, pm, plnrs, plndx, pdw, pdb, pool);
        }
        return [y, rstd, dx, lny, mean, lnrstd, lndx];
    }

    [Fact]
    public void Rope_rows_computed_alone_match_the_full_call()
    {
        var rng = new Random(26);
        const int rows = 200, heads = 3, D = 40, stride = 130; // 2 row chunks
        const long offset = 11, seqLen = 77;
        var x = Uniform(rng, rows * stride);
        var (cos, sin) = Rope.Table(seqLen, D, 10000);
        var pool = _pools[1];
        foreach (bool backward in new[] { false, true })
        {
            var full = (float[])x.Clone();
            Apply(full, 0, rows);
            foreach (var (start, count) in new[] { (5, 5), (60, 10), (136, 64), (199, 1) })
            {
                var part = (float[])x.Clone();
                Apply(part, start, count);
                AssertBitEqual(full.AsSpan(start * stride, count * stride), part.AsSpan(start * stride, count * stride), $"rope backward={backward} rows {start}..{start + count}");
            }

            void Apply(float[] buf, int start, int count)
            {
                fixed (float* p = buf, pc = cos, ps = sin)
                {
                    if (backward) Rope.Backward(p + start * stride, stride, count, heads, D, offset + start, seqLen, pc, ps, pool);
                    else Rope.Forward(p + start * stride, stride, count, heads, D, offset + start, seqLen, pc, ps, pool);
                }
            }
        }
    }

    [Fact]
    public void Activation_and_loss_subsets_match_the_full_call()
    {
        var rng = new Random(27);
        var pool = _pools[1];
        const int n = 40_000; // 3 chunks
        var x = Uniform(rng, n, -6, 6);
        var dy = Uniform(rng, n);
        var (y, dx) = GeluRun(x, dy, 0, n);
        foreach (var (start, count) in new[] { (13, 20_001), (16_380, 9), (n - 3, 3) })
        {
            var (ys, dxs) = GeluRun(x, dy, start, count);
            AssertBitEqual(y.AsSpan(start, count), ys, $"gelu y {start}+{count}");
            AssertBitEqual(dx.AsSpan(start, count), dxs, $"gelu dx {start}+{count}");
        }

        const int rows = 100, F = 203;
        var gu = Uniform(rng, rows * 2 * F, -6, 6);
        var dm = Uniform(rng, rows * F);
        var (m, dgu) = SwiGluRun(gu, dm, 0, rows, F);
        foreach (var (start, count) in new[] { (7, 3), (40, 60), (99, 1) })
        {
            var (ms, dgus) = SwiGluRun(gu, dm, start, count, F);
            AssertBitEqual(m.AsSpan(start * F, count * F), ms, $"swiglu m rows {start}+{count}");
            AssertBitEqual(dgu.AsSpan(start * 2 * F, count * 2 * F), dgus, $"swiglu dgu rows {start}+{count}");
        }

        const int V = 1001, ceRows = 30;
        var logits = Uniform(rng, ceRows * V, -8, 8);
        var targets = new int[ceRows];
        for (int r = 0; r < ceRows; r++) targets[r] = rng.Next(V);
        var (g, l) = CeRun(logits, targets, 0, ceRows, V);
        foreach (var (start, count) in new[] { (3, 4), (17, 13) })
        {
            var (gs, ls) = CeRun(logits, targets, start, count, V);
            AssertBitEqual(g.AsSpan(start * V, count * V), gs, $"cross-entropy grad rows {start}+{count}");
            AssertBitEqual(l.AsSpan(start, count), ls, $"cross-entropy loss rows {start}+{count}");
        }

        (float[], float[]) GeluRun(float[] xs, float[] dys, int start, int count)
        {
            var yo = new float[count];
            var dxo = new float[count];
            fixed (float* px = xs, pdy = dys, py = yo, pdx = dxo)
            {
                Gelu.Forward(count, px + start, py, pool);
                Gelu.Backward(count, pdy + start, px + start, pdx, pool);
            }
            return (yo, dxo);
        }

        (float[], float[]) SwiGluRun(float[] gus, float[] dms, int start, int count, int f)
        {
            var mo = new float[count * f];
            var dguo = new float[count * 2 * f];
            fixed (float* pgu = gus, pdm = dms, pm = mo, pdgu = dguo)
            {
                SwiGlu.Forward(count, f, pgu + start * 2 * f, pm, pool);
                SwiGlu.Backward(count, f, pdm + start * f, pgu + start * 2 * f, pdgu, pool);
            }
            return (mo, dguo);
        }

        (float[], float[]) CeRun(float[] ls, int[] ts, int start, int count, int v)
        {
            var rowsCopy = ls.AsSpan(start * v, count * v).ToArray();
            var loss = new float[count];
            fixed (float* pl = rowsCopy, ploss = loss)
            fixed (int* pt = ts)
            {
                CrossEntropy.ForwardBackward(count, v, pl, v, pt + start, ploss, 0.5f, pool);
            }
            return (rowsCopy, loss);
        }
    }

    [Fact]
    public void Optimizer_split_into_ranges_matches_one_call()
    {
        var rng = new Random(28);
        const int n = 40_000;
        var p0 = Uniform(rng, n);
        var g = Uniform(rng, n);
        var pool = _pools[1];
        var whole = Run([(0, n)]);
        var split = Run([(0, 13), (13, 16_384), (16_397, n - 16_397)]);
        for (int k = 0; k < whole.Length; k++) AssertBitEqual(whole[k], split[k], $"adamw output {k}");

        float[][] Run((int Start, int Count)[] ranges)
        {
            var p = (float[])p0.Clone();
            var m = new float[n];
            var v = new float[n];
            fixed (float* pp = p, pg = g, pm = m, pv = v)
            {
                for (int step = 1; step <= 2; step++)
                {
                    foreach (var (s, c) in ranges) AdamW.Step(c, pp + s, pg + s, pm + s, pv + s, 3e-4f, 0.9f, 0.999f, 1e-8f, 0.01f, step, pool);
                }
            }
            return [p, m, v];
        }
    }
}
