using Xunit.Sdk;

namespace Memo.Tests.Kernels;

/// <summary>Random inputs and comparisons for the kernel tests.</summary>
internal static class OpsTestData
{
    /// <summary>Widths that cover every SIMD tail length and a few larger rows.</summary>
    public static readonly int[] Widths = [.. Enumerable.Range(1, 70), 128, 257];

    /// <summary>Row counts from 0 to 20 (a spread of them, to keep the tests fast).</summary>
    public static readonly int[] RowCounts = [0, 1, 2, 3, 4, 5, 7, 9, 12, 16, 20];

    public static float[] Uniform(Random rng, int n, float lo = -1, float hi = 1)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)(lo + (hi - lo) * rng.NextDouble());
        return a;
    }

    public static double[] Uniform64(Random rng, int n, double lo = -1, double hi = 1)
    {
        var a = new double[n];
        for (int i = 0; i < n; i++) a[i] = lo + (hi - lo) * rng.NextDouble();
        return a;
    }

    public static double[] ToDouble(float[] a) => [.. a.Select(v => (double)v)];

    public static double MaxAbs(ReadOnlySpan<double> a)
    {
        double m = 0;
        foreach (var v in a) m = Math.Max(m, Math.Abs(v));
        return m;
    }

    /// <summary>
    /// Asserts |actual - expected| &lt;= rtol*|expected| + atol*scale elementwise, where scale is the
    /// largest |expected| (1 when all are 0): a relative bound plus an absolute one that follows the
    /// tensor's magnitude. Sums whose terms cancel pass <paramref name="minScale"/>, the size of the
    /// terms (for example the row count for sums over rows of values of size 1), as the scale's floor.
    /// </summary>
    public static void AssertClose(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected, double rtol, double atol, string what, double minScale = 0)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = Math.Max(MaxAbs(expected), minScale);
        if (scale == 0) scale = 1;
        for (int i = 0; i < expected.Length; i++)
        {
            double err = Math.Abs(actual[i] - expected[i]);
            if (!(err <= rtol * Math.Abs(expected[i]) + atol * scale))
            {
                throw new XunitException($"{what}: element {i} is {actual[i]:R}, expected {expected[i]:R} (error {err:E3}, scale {scale:E3})");
            }
        }
    }

    /// <summary>Like <see cref="AssertClose(ReadOnlySpan{float}, ReadOnlySpan{double}, double, double, string)"/> for double results.</summary>
    public static void AssertClose(ReadOnlySpan<double> actual, ReadOnlySpan<double> expected, double rtol, double atol, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = MaxAbs(expected);
        if (scale == 0) scale = 1;
        for (int i = 0; i < expected.Length; i++)
        {
            double err = Math.Abs(actual[i] - expected[i]);
            if (!(err <= rtol * Math.Abs(expected[i]) + atol * scale))
            {
                throw new XunitException($"{what}: element {i} is {actual[i]:R}, expected {expected[i]:R} (error {err:E3}, scale {scale:E3})");
            }
        }
    }

    public static void AssertBitEqual(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
            {
                throw new XunitException($"{what}: element {i} differs: {actual[i]:R} vs {expected[i]:R}");
            }
        }
    }
}
