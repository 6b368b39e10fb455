using Memo.Backends;
using Memo.Reference;
using Memo.Tests.Kernels;
using Memo.Training;

namespace Memo.Tests.Backends;

/// <summary>
/// Every registered backend's kernels against the double-precision definitions in <see cref="OpsReference"/>
/// (and the attention reference of <see cref="AttentionTests"/>), on odd shapes. A backend is covered by
/// being registered in <see cref="BackendRegistry"/>.
/// </summary>
public sealed unsafe class BackendKernelTests
{
    public static TheoryData<string> Backends()
    {
        var data = new TheoryData<string>();
        foreach (var name in BackendRegistry.Names) data.Add(name);
        return data;
    }

    private static float[] Random(int n, int seed, float amplitude = 1)
    {
        var rng = new Random(seed);
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)((rng.NextDouble() * 2 - 1) * amplitude);
        return a;
    }

    private static double[] D(float[] a) => Array.ConvertAll(a, x => (double)x);

    private static void Close(double[] want, float[] got, double tol, string what)
    {
        Assert.Equal(want.Length, got.Length);
        for (int i = 0; i < want.Length; i++)
        {
            double err = Math.Abs(got[i] - want[i]);
            Assert.True(err <= tol * (1 + Math.Abs(want[i])), $"{what}[{i}]: got {got[i]:R}, want {want[i]:R}");
        }
    }

    [Fact]
    public void Registry_lists_cpu_first_and_the_reference()
    {
        Assert.Equal("cpu", BackendRegistry.Default);
        Assert.Contains("reference", BackendRegistry.Names);
        foreach (var name in BackendRegistry.Names)
        {
            using var b = BackendRegistry.Create(name);
            Assert.Equal(name, b.Name);
            Assert.True(b.Threads >= 1);
        }
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void Gemm_matches_a_double_triple_loop(string name)
    {
        using var b = BackendRegistry.Create(name);
        const int M = 7, N = 13, K = 19;
        var a = Random(M * K, 1);
        var w = Random(K * N, 2);
        var c0 = Random(M * N, 3);
        foreach (bool tA in new[] { false, true })
            foreach (bool tB in new[] { false, true })
                foreach (bool acc in new[] { false, true })
                {
                    var c = (float[])c0.Clone();
                    int lda = tA ? M : K, ldb = tB ? K : N;
                    fixed (float* pa = a, pb = w, pc = c) b.Gemm(tA, tB, M, N, K, pa, lda, pb, ldb, pc, N, acc);
                    var want = new double[M * N];
                    for (int i = 0; i < M; i++)
                        for (int j = 0; j < N; j++)
                        {
                            double s = acc ? c0[i * N + j] : 0;
                            for (int p = 0; p < K; p++) s += (double)(tA ? a[p * lda + i] : a[i * lda + p]) * (tB ? w[j * ldb + p] : w[p * ldb + j]);
                            want[i * N + j] = s;
                        }
                    Close(want, c, 1e-5, $"gemm tA={tA} tB={tB} acc={acc}");
                }
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void Norms_and_activations_match_the_references(string name)
    {
        using var b = BackendRegistry.Create(name);
        const int rows = 5, C = 37, F = 11;
        var x = Random(rows * C, 4);
        var w = Random(C, 5);
        var bias = Random(C, 6);
        var y = new float[rows * C];
        var mean = new float[rows];
        var rstd = new float[rows];
        fixed (float* px = x, pw = w, py = y, pr = rstd) b.RmsNormForward(rows, C, px, pw, py, pr, 1e-5f);
        Close(OpsReference.RmsNormForward(rows, C, D(x), D(w), 1e-5).Y, y, 1e-5, "rmsnorm");

        var dy = Random(rows * C, 7);
        var dx = new float[rows * C];
        var dw = new float[C];
        fixed (float* pdy = dy, px = x, pw = w, pr = rstd, pdx = dx, pdw = dw) b.RmsNormBackward(rows, C, pdy, px, pw, pr, pdx, pdw);
        var (rdx, rdw) = OpsReference.RmsNormBackward(rows, C, D(dy), D(x), D(w), 1e-5);
        Close(rdx, dx, 1e-4, "rmsnorm dx");
        Close(rdw, dw, 1e-4, "rmsnorm dw");

        fixed (float* px = x, pw = w, pb = bias, py = y, pm = mean, pr = rstd) b.LayerNormForward(rows, C, px, pw, pb, py, pm, pr, 1e-5f);
        Close(OpsReference.LayerNormForward(rows, C, D(x), D(w), D(bias), 1e-5).Y, y, 1e-5, "layernorm");

        var gu = Random(rows * 2 * F, 8, 3);
        var m = new float[rows * F];
        fixed (float* pgu = gu, pm = m) b.SwiGluForward(rows, F, pgu, pm);
        Close(OpsReference.SwiGluForward(rows, F, D(gu)), m, 1e-5, "swiglu");

        var g = new float[rows * C];
        fixed (float* px = x, pg = g) b.GeluForward(rows * C, px, pg);
        Close(Array.ConvertAll(x, v => OpsReference.Gelu(v)), g, 1e-5, "gelu");
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void Rope_and_cross_entropy_match_the_references(string name)
    {
        using var b = BackendRegistry.Create(name);
        const int rows = 6, heads = 3, D = 8, stride = heads * D + 5, maxPos = 4;
        var cos = new float[maxPos * D / 2];
        var sin = new float[maxPos * D / 2];
        var invFreq = new double[D / 2];
        for (int i = 0; i < D / 2; i++) invFreq[i] = 1.0 / Math.Pow(10000, 2.0 * i / D); // theta^(-2i/D), unscaled RoPE
        fixed (float* pc = cos, ps = sin) b.RopeTable(maxPos, invFreq, 1.0, pc, ps);
        var x = Random(rows * stride, 9);
        var y = (float[])x.Clone();
        fixed (float* py = y, pc = cos, ps = sin) b.RopeForward(py, stride, rows, heads, D, 1, maxPos, pc, ps);
        Close(OpsReference.Rope(Memo.Tests.Backends.BackendKernelTests.D(x), stride, rows, heads, D, 1, maxPos, 10000, inverse: false), y, 1e-5, "rope");

        const int V = 29;
        var logits = Random(rows * V, 10, 4);
        var targets = new int[rows];
        for (int r = 0; r < rows; r++) targets[r] = (r * 7) % V;
        var (loss, grad) = OpsReference.CrossEntropy(rows, V, Memo.Tests.Backends.BackendKernelTests.D(logits), targets);
        var losses = new float[rows];
        var argmax = new int[rows];
        fixed (float* pl = logits, pls = losses)
        fixed (int* pt = targets, pa = argmax)
        {
            b.ArgMaxRows(rows, V, pl, V, pa);
            b.CrossEntropy(rows, V, pl, V, pt, pls, 1f);
        }
        Close(loss, losses, 1e-5, "cross-entropy loss");
        Close(grad, logits, 1e-5, "cross-entropy grad");
        for (int r = 0; r < rows; r++)
        {
            var row = Random(rows * V, 10, 4).AsSpan(r * V, V).ToArray();
            Assert.Equal(Array.IndexOf(row, row.Max()), argmax[r]);
        }
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void Attention_matches_the_full_matrix_reference(string name)
    {
        using var b = BackendRegistry.Create(name);
        var L = new AttentionTests.Layout(B: 2, T: 19, H: 4, KvH: 2, D: 8);
        var qkv = Random((int)L.QkvLength, 11);
        var dO = Random((int)L.OLength, 12);
        var o = new float[L.OLength];
        var lse = new float[L.LseLength];
        var grad = new float[L.QkvLength];
        var ws = new float[Math.Max(1, b.AttentionWorkspaceBytes(L.D) / sizeof(float))];
        var shape = L.Shape;
        long kOff = (long)L.H * L.D, vOff = kOff + (long)L.KvH * L.D;
        fixed (float* q = qkv, po = o, pl = lse, pd = dO, pg = grad, pw = ws)
        {
            b.AttentionForward(shape, q, q + kOff, q + vOff, po, pl, pw);
            b.AttentionBackward(shape, q, q + kOff, q + vOff, po, pl, pd, pg, pg + kOff, pg + vOff, pw);
        }
        var (ro, rl) = AttentionTests.RefForward(L, D(qkv));
        Close(ro, o, 1e-5, "attention o");
        Close(rl, lse, 1e-5, "attention lse");
        Close(AttentionTests.RefBackward(L, D(qkv), D(dO), null), grad, 1e-4, "attention dqkv");
    }
}
