namespace Memo;

/// <summary>Greatest common divisor and least common multiple of 64-bit counts (alignments, sequence steps).</summary>
public static class Arithmetic
{
    public static long Gcd(long a, long b)
    {
        while (b != 0) (a, b) = (b, a % b);
        return Math.Abs(a);
    }

    /// <summary>Least common multiple; overflow throws. With a zero, the other value.</summary>
    public static long Lcm(long a, long b) => a == 0 || b == 0 ? Math.Max(a, b) : checked(a / Gcd(a, b) * b);
}
