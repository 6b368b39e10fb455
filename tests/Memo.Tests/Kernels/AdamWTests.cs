using Memo.Cpu;
using Memo.Cpu.Kernels;
using static Memo.Tests.Kernels.OpsTestData;

namespace Memo.Tests.Kernels;

/// <summary>AdamW against a naive double implementation and against PyTorch; the clipping helpers against double sums.</summary>
public sealed unsafe class AdamWTests : IDisposable
{
    private readonly WorkerPool _pool = new(2);

    public void Dispose() => _pool.Dispose();

    [Fact]
    public void Step_matches_naive_double_over_several_steps()
    {
        var rng = new Random(31);
        const float lr = 1e-2f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f;
        int[] sizes = [.. Enumerable.Range(0, 21), 37, 1000, 40_000];
        foreach (int n in sizes)
        {
            var p = Uniform(rng, n);
            var m = new float[n];
            var v = new float[n];
            var rp = ToDouble(p);
            var rm = new double[n];
            var rv = new double[n];
            for (int step = 1; step <= 5; step++)
            {
                var g = Uniform(rng, n);
                fixed (float* pp = p, pg = g, pm = m, pv = v)
                {
                    AdamW.Step(n, pp, pg, pm, pv, lr, b1, b2, eps, wd, step, _pool);
                }
                // torch.optim.AdamW, written out in double.
                double bc1 = 1 - Math.Pow(b1, step), bc2 = 1 - Math.Pow(b2, step);
                for (int i = 0; i < n; i++)
                {
                    rp[i] *= 1 - (double)lr * wd;
                    rm[i] = b1 * rm[i] + (1 - (double)b1) * g[i];
                    rv[i] = b2 * rv[i] + (1 - (double)b2) * g[i] * g[i];
                    double mhat = rm[i] / bc1, vhat = rv[i] / bc2;
                    rp[i] -= lr * mhat / (Math.Sqrt(vhat) + eps);
                }
                string at = $"n={n} step={step}";
                AssertClose(p, rp, 1e-6, 1e-6, "adamw param " + at);
                AssertClose(m, rm, 1e-5, 1e-6, "adamw m " + at);
                AssertClose(v, rv, 1e-5, 1e-6, "adamw v " + at);
            }
        }
    }

    /// <summary>
    /// Pins the update to PyTorch's. Expected values from PyTorch 1.13 (/usr/bin/python3):
    /// <code>
    /// import torch
    /// p = torch.tensor([0.5, -1.25, 2.0, 0.0, -0.75], dtype=torch.float32, requires_grad=True)
    /// opt = torch.optim.AdamW([p], lr=0.01, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, foreach=False)
    /// grads = [[0.1, -0.2, 0.3, -0.4, 0.5], [-0.05, 0.25, 0.0, 1.5, -0.5], [0.2, 0.2, -0.1, 0.0, 0.01]]
    /// for g in grads:
    ///     p.grad = torch.tensor(g, dtype=torch.float32)
    ///     opt.step()
    ///     print(repr([float(x) for x in p.detach()]))
    /// st = opt.state[p]
    /// print(repr([float(x) for x in st['exp_avg']]))
    /// print(repr([float(x) for x in st['exp_avg_sq']]))
    /// </code>
    /// </summary>
    [Fact]
    public void Step_matches_pytorch()
    {
        double[][] expectedParams =
        [
            [0.4895000159740448, -1.2387499809265137, 1.9880000352859497, 0.010000000707805157, -0.7592499852180481],
            [0.48632681369781494, -1.2391340732574463, 1.9792256355285645, 0.004583926405757666, -0.7579644322395325],
            [0.47935304045677185, -1.2423481941223145, 1.974295735359192, 0.000346397515386343, -0.7568860054016113],
        ];
        double[] expectedM = [0.023600000888109207, 0.02630000002682209, 0.014299998991191387, 0.10260000079870224, -0.0035000022035092115];
        double[] expectedV = [0.0025700002443045378, 0.006773750763386488, 0.004561250098049641, 0.11409500241279602, 0.02316124737262726];
        float[][] grads = [[0.1f, -0.2f, 0.3f, -0.4f, 0.5f], [-0.05f, 0.25f, 0f, 1.5f, -0.5f], [0.2f, 0.2f, -0.1f, 0f, 0.01f]];
        float[] p = [0.5f, -1.25f, 2.0f, 0.0f, -0.75f];
        var m = new float[5];
        var v = new float[5];
        for (int step = 1; step <= 3; step++)
        {
            fixed (float* pp = p, pg = grads[step - 1], pm = m, pv = v)
            {
                AdamW.Step(5, pp, pg, pm, pv, 0.01f, 0.9f, 0.95f, 1e-8f, 0.1f, step, _pool);
            }
            // A few float ulps: PyTorch's vector kernels fuse some multiply-adds.
            AssertClose(p, expectedParams[step - 1], 0, 3e-7, $"param after step {step}");
        }
        AssertClose(m, expectedM, 1e-6, 1e-8, "exp_avg");
        AssertClose(v, expectedV, 1e-6, 1e-8, "exp_avg_sq");
    }

    [Fact]
    public void Step_rejects_step_zero()
    {
        var a = new float[1];
        Assert.Throws<ArgumentOutOfRangeException>(() =>
        {
            fixed (float* p = a)
            {
                AdamW.Step(1, p, p, p, p, 1e-3f, 0.9f, 0.999f, 1e-8f, 0, 0, _pool);
            }
        });
    }

    [Fact]
    public void SumOfSquares_matches_a_double_sum()
    {
        var rng = new Random(32);
        int[] sizes = [.. Enumerable.Range(0, 41), 1000, 100_003];
        foreach (int n in sizes)
        {
            var x = Uniform(rng, n, -3, 3);
            double expected = 0;
            foreach (var f in x) expected += (double)f * f;
            double actual;
            fixed (float* px = x)
            {
                actual = AdamW.SumOfSquares(n, px, _pool);
            }
            Assert.True(Math.Abs(actual - expected) <= 1e-13 * expected, $"n={n}: {actual:R} vs {expected:R}");
        }
    }

    [Fact]
    public void Scale_multiplies_every_element()
    {
        var rng = new Random(33);
        foreach (int n in new[] { 0, 1, 7, 8, 9, 100, 40_001 })
        {
            var x = Uniform(rng, n);
            var y = (float[])x.Clone();
            fixed (float* py = y)
            {
                AdamW.Scale(n, py, 0.3f, _pool);
            }
            AssertBitEqual([.. x.Select(v => v * 0.3f)], y, $"scale n={n}");
        }
    }
}
