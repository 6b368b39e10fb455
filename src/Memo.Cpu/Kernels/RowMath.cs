using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Memo.Cpu.Kernels;

/// <summary>
/// Fixed-order float reductions over one row, shared by the norm kernels. Each walks the row with
/// four Vector256 accumulators (32 floats a step), then single vectors, then a scalar tail, and
/// combines them in one fixed order, so the result depends only on the row's values and length.
/// Loads are unaligned, so it does not depend on where the row lies in memory either.
/// </summary>
internal static unsafe class RowMath
{
    private const int W = 8; // Vector256<float>.Count

    /// <summary>sum over i of (x[i] - m)^2.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float SumSquaredDeviation(float* x, int n, float m)
    {
        var vm = Vector256.Create(m);
        var a0 = Vector256<float>.Zero;
        var a1 = Vector256<float>.Zero;
        var a2 = Vector256<float>.Zero;
        var a3 = Vector256<float>.Zero;
        int i = 0;
        for (; i <= n - 4 * W; i += 4 * W)
        {
            var d0 = Vector256.Load(x + i) - vm;
            var d1 = Vector256.Load(x + i + W) - vm;
            var d2 = Vector256.Load(x + i + 2 * W) - vm;
            var d3 = Vector256.Load(x + i + 3 * W) - vm;
            a0 += d0 * d0;
            a1 += d1 * d1;
            a2 += d2 * d2;
            a3 += d3 * d3;
        }
        for (; i <= n - W; i += W)
        {
            var d = Vector256.Load(x + i) - vm;
            a0 += d * d;
        }
        float sum = Vector256.Sum((a0 + a1) + (a2 + a3));
        for (; i < n; i++)
        {
            float d = x[i] - m;
            sum += d * d;
        }
        return sum;
    }

    /// <summary>sum over i of (a[i] * b[i]) * c[i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Dot3(float* a, float* b, float* c, int n)
    {
        var a0 = Vector256<float>.Zero;
        var a1 = Vector256<float>.Zero;
        var a2 = Vector256<float>.Zero;
        var a3 = Vector256<float>.Zero;
        int i = 0;
        for (; i <= n - 4 * W; i += 4 * W)
        {
            a0 += Vector256.Load(a + i) * Vector256.Load(b + i) * Vector256.Load(c + i);
            a1 += Vector256.Load(a + i + W) * Vector256.Load(b + i + W) * Vector256.Load(c + i + W);
            a2 += Vector256.Load(a + i + 2 * W) * Vector256.Load(b + i + 2 * W) * Vector256.Load(c + i + 2 * W);
            a3 += Vector256.Load(a + i + 3 * W) * Vector256.Load(b + i + 3 * W) * Vector256.Load(c + i + 3 * W);
        }
        for (; i <= n - W; i += W)
        {
            a0 += Vector256.Load(a + i) * Vector256.Load(b + i) * Vector256.Load(c + i);
        }
        float sum = Vector256.Sum((a0 + a1) + (a2 + a3));
        for (; i < n; i++) sum += a[i] * b[i] * c[i];
        return sum;
    }

    /// <summary>
    /// For g = dy * w and xhat = (x - mean) * rstd: sumG = sum(g), sumGX = sum(g * xhat).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void LayerNormSums(float* dy, float* w, float* x, float mean, float rstd, int n, out float sumG, out float sumGX)
    {
        var vm = Vector256.Create(mean);
        var vs = Vector256.Create(rstd);
        var g0 = Vector256<float>.Zero;
        var g1 = Vector256<float>.Zero;
        var h0 = Vector256<float>.Zero;
        var h1 = Vector256<float>.Zero;
        int i = 0;
        for (; i <= n - 2 * W; i += 2 * W)
        {
            var ga = Vector256.Load(dy + i) * Vector256.Load(w + i);
            var gb = Vector256.Load(dy + i + W) * Vector256.Load(w + i + W);
            g0 += ga;
            g1 += gb;
            h0 += ga * ((Vector256.Load(x + i) - vm) * vs);
            h1 += gb * ((Vector256.Load(x + i + W) - vm) * vs);
        }
        for (; i <= n - W; i += W)
        {
            var g = Vector256.Load(dy + i) * Vector256.Load(w + i);
            g0 += g;
            h0 += g * ((Vector256.Load(x + i) - vm) * vs);
        }
        float sg = Vector256.Sum(g0 + g1);
        float sh = Vector256.Sum(h0 + h1);
        for (; i < n; i++)
        {
            float g = dy[i] * w[i];
            sg += g;
            sh += g * ((x[i] - mean) * rstd);
        }
        sumG = sg;
        sumGX = sh;
    }

    /// <summary>Loads count (&lt; 8) floats from p into a vector, the other lanes set to fill.</summary>
    public static Vector256<float> LoadTail(float* p, int count, float fill)
    {
        float* buf = stackalloc float[W];
        for (int i = 0; i < W; i++) buf[i] = i < count ? p[i] : fill;
        return Vector256.Load(buf);
    }

    /// <summary>Stores the first count (&lt; 8) lanes of v to p.</summary>
    public static void StoreTail(Vector256<float> v, float* p, int count)
    {
        float* buf = stackalloc float[W];
        v.Store(buf);
        for (int i = 0; i < count; i++) p[i] = buf[i];
    }
}
