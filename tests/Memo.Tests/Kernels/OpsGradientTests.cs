using Memo.Reference;
using static Memo.Tests.Kernels.OpsTestData;

namespace Memo.Tests.Kernels;

/// <summary>
/// The double references' backward passes against central finite differences of their forward
/// passes, on small shapes. Each checks the gradient of L = sum(dy .* y) for a random dy, so the
/// references the fp32 kernels are held to (<see cref="OpsTests"/>) are themselves right.
/// </summary>
public sealed class OpsGradientTests
{
    private const double Eps = 1e-5;

    [Fact]
    public void RmsNorm_backward_is_the_gradient()
    {
        var rng = new Random(11);
        const int rows = 3, C = 5;
        var x = Uniform64(rng, rows * C, -2, 2);
        var w = Uniform64(rng, C, 0.5, 1.5);
        var dy = Uniform64(rng, rows * C);
        var (dx, dw) = OpsReference.RmsNormBackward(rows, C, dy, x, w, Eps);
        CheckGradient(p => Dot(dy, OpsReference.RmsNormForward(rows, C, p, w, Eps).Y), x, dx, "rmsnorm dx");
        CheckGradient(p => Dot(dy, OpsReference.RmsNormForward(rows, C, x, p, Eps).Y), w, dw, "rmsnorm dw");
    }

    [Fact]
    public void LayerNorm_backward_is_the_gradient()
    {
        var rng = new Random(12);
        const int rows = 3, C = 6;
        var x = Uniform64(rng, rows * C, 1, 3);
        var w = Uniform64(rng, C, 0.5, 1.5);
        var b = Uniform64(rng, C);
        var dy = Uniform64(rng, rows * C);
        var (dx, dw, db) = OpsReference.LayerNormBackward(rows, C, dy, x, w, b, Eps);
        CheckGradient(p => Dot(dy, OpsReference.LayerNormForward(rows, C, p, w, b, Eps).Y), x, dx, "layernorm dx");
        CheckGradient(p => Dot(dy, OpsReference.LayerNormForward(rows, C, x, p, b, Eps).Y), w, dw, "layernorm dw");
        CheckGradient(p => Dot(dy, OpsReference.LayerNormForward(rows, C, x, w, p, Eps).Y), b, db, "layernorm db");
    }

    [Fact]
    public void Rope_inverse_rotation_is_the_gradient()
    {
        var rng = new Random(13);
        const int rows = 3, heads = 2, D = 6, stride = heads * D + 1;
        const long rowOffset = 4, seqLen = 5;
        var x = Uniform64(rng, rows * stride);
        var dy = Uniform64(rng, rows * stride);
        // The float after the heads passes through unchanged, so its gradient is dy there.
        var dx = OpsReference.Rope(dy, stride, rows, heads, D, rowOffset, seqLen, 10000, inverse: true);
        CheckGradient(p => Dot(dy, OpsReference.Rope(p, stride, rows, heads, D, rowOffset, seqLen, 10000, inverse: false)), x, dx, "rope dx");
    }

    [Fact]
    public void SwiGlu_backward_is_the_gradient()
    {
        var rng = new Random(14);
        const int rows = 2, F = 5;
        var gu = Uniform64(rng, rows * 2 * F, -4, 4);
        var dm = Uniform64(rng, rows * F);
        var dgu = OpsReference.SwiGluBackward(rows, F, dm, gu);
        CheckGradient(p => Dot(dm, OpsReference.SwiGluForward(rows, F, p)), gu, dgu, "swiglu dgu");
    }

    [Fact]
    public void Gelu_backward_is_the_gradient()
    {
        var rng = new Random(15);
        var x = Uniform64(rng, 12, -5, 5);
        var dy = Uniform64(rng, 12);
        var dx = x.Select((v, i) => dy[i] * OpsReference.GeluGrad(v)).ToArray();
        CheckGradient(p => Dot(dy, [.. p.Select(OpsReference.Gelu)]), x, dx, "gelu dx");
    }

    [Fact]
    public void Bias_backward_is_the_gradient()
    {
        var rng = new Random(16);
        const int rows = 4, N = 3;
        var y0 = Uniform64(rng, rows * N);
        var b = Uniform64(rng, N);
        var dy = Uniform64(rng, rows * N);
        var db = new double[N];
        for (int r = 0; r < rows; r++)
        {
            for (int i = 0; i < N; i++) db[i] += dy[r * N + i];
        }
        CheckGradient(p => Dot(dy, [.. y0.Select((v, k) => v + p[k % N])]), b, db, "bias db");
    }

    [Fact]
    public void Embedding_backward_is_the_gradient()
    {
        var rng = new Random(17);
        const int rows = 6, C = 3, V = 4;
        const long rowOffset = 2, seqLen = 4;
        int[] tokens = [1, 3, 1, 0, 1, 3]; // repeats, and a token (2) never used
        var wte = Uniform64(rng, V * C);
        var wpe = Uniform64(rng, (int)seqLen * C);
        var dx = Uniform64(rng, rows * C);
        var dwte = new double[V * C];
        var dwpe = new double[seqLen * C];
        OpsReference.EmbeddingBackward(rows, C, tokens, dx, dwte, dwpe, rowOffset, seqLen);
        CheckGradient(p => Dot(dx, OpsReference.EmbeddingForward(rows, C, tokens, p, wpe, rowOffset, seqLen)), wte, dwte, "embedding dwte");
        CheckGradient(p => Dot(dx, OpsReference.EmbeddingForward(rows, C, tokens, wte, p, rowOffset, seqLen)), wpe, dwpe, "embedding dwpe");
    }

    [Fact]
    public void CrossEntropy_gradient_is_the_gradient_of_the_summed_loss()
    {
        var rng = new Random(18);
        const int rows = 3, V = 7;
        var logits = Uniform64(rng, rows * V, -3, 3);
        int[] targets = [2, 0, 6];
        var (_, grad) = OpsReference.CrossEntropy(rows, V, logits, targets);
        CheckGradient(p => OpsReference.CrossEntropy(rows, V, p, targets).Loss.Sum(), logits, grad, "cross-entropy dlogits");
    }

    private static double Dot(double[] a, double[] b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++) s += a[i] * b[i];
        return s;
    }

    /// <summary>Central differences with step 1e-5: truncation error ~1e-10, far below the tolerance.</summary>
    private static void CheckGradient(Func<double[], double> loss, double[] p, double[] analytic, string what)
    {
        const double h = 1e-5;
        var numeric = new double[p.Length];
        for (int i = 0; i < p.Length; i++)
        {
            double v = p[i];
            p[i] = v + h;
            double plus = loss(p);
            p[i] = v - h;
            double minus = loss(p);
            p[i] = v;
            numeric[i] = (plus - minus) / (2 * h);
        }
        AssertClose(analytic, numeric, 1e-6, 1e-7, what);
    }
}
