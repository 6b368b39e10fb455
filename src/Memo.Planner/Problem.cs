// The data model of the offset-assignment problem (dynamic storage allocation), in the vocabulary
// of google/minimalloc: buffers with a half-open lifespan, a size and an alignment; a solution
// gives every buffer an offset; the peak is max(offset + size). Two buffers whose lifespans
// intersect must occupy disjoint address ranges [offset, offset + size).
//
//   time ->   0    3         9            21
//   b1        [====)                           size 4
//   b2             [=========)                 size 4   (b1 and b2 may share memory: [0,3) and [3,9) do not intersect)
//   b3        [==============)                 size 4
//
// All quantities are long; arithmetic that can overflow is checked.
namespace Memo.Planner;

/// <summary>Half-open interval of time steps [Lower, Upper) during which a buffer is live.</summary>
public readonly record struct Lifespan(long Lower, long Upper)
{
    /// <summary>Upper - Lower (checked).</summary>
    public long Length => checked(Upper - Lower);

    /// <summary>True when the two half-open intervals share at least one time step.</summary>
    public bool Intersects(Lifespan other) => Lower < other.Upper && other.Lower < Upper;

    public override string ToString() => $"[{Lower}, {Upper})";
}

/// <summary>
/// One buffer request. <see cref="Kind"/>, <see cref="Group"/> and <see cref="Layer"/> are optional
/// tags: plots color by them, and <see cref="BiLevelPlanner"/> uses (<see cref="Layer"/>,
/// <see cref="Group"/>) to find the repeated per-layer sub-problems (Group names the phase, e.g.
/// "fwd" or "bwd"; Layer is -1 for buffers that belong to no layer).
/// </summary>
public sealed record Buffer(string Id, Lifespan Lifespan, long Size, long Alignment = 1)
{
    /// <summary>What the buffer holds (activation, gradient, workspace, ...); for plots.</summary>
    public string? Kind { get; init; }

    /// <summary>Which repeated group (phase) the buffer belongs to; for plots and composition.</summary>
    public string? Group { get; init; }

    /// <summary>Layer index, or -1 when the buffer belongs to no layer.</summary>
    public int Layer { get; init; } = -1;

    /// <summary>Size x lifespan length (checked).</summary>
    public long Area => checked(Size * Lifespan.Length);
}

/// <summary>A set of buffers and an optional capacity (the largest admissible peak).</summary>
public sealed class Problem
{
    public Problem(IReadOnlyList<Buffer> buffers, long? capacity = null)
    {
        ArgumentNullException.ThrowIfNull(buffers);
        Buffers = buffers;
        Capacity = capacity;
    }

    public IReadOnlyList<Buffer> Buffers { get; }

    public long? Capacity { get; }

    public int Count => Buffers.Count;

    /// <summary>Max over time of the total live size: no plan can have a lower peak.</summary>
    public long LowerBound() => Sweep.MaxLoad(this);

    /// <summary>
    /// Throws <see cref="MemoException"/> unless every buffer is well formed: non-empty lifespan,
    /// size >= 0, alignment >= 1, distinct ids, and a total size that fits in a long.
    /// </summary>
    public void CheckWellFormed()
    {
        var ids = new HashSet<string>(StringComparer.Ordinal);
        long total = 0;
        for (int i = 0; i < Buffers.Count; i++)
        {
            Buffer b = Buffers[i];
            if (b.Lifespan.Upper <= b.Lifespan.Lower)
                throw new MemoException($"buffer '{Sizes.Printable(b.Id)}': upper {b.Lifespan.Upper} <= lower {b.Lifespan.Lower}; lifespans are half-open [lower, upper) and must not be empty");
            if (b.Size < 0)
                throw new MemoException($"buffer '{Sizes.Printable(b.Id)}': negative size {b.Size}; sizes are bytes >= 0");
            if (b.Alignment < 1)
                throw new MemoException($"buffer '{Sizes.Printable(b.Id)}': alignment {b.Alignment} < 1; use 1 for no alignment");
            if (!ids.Add(b.Id))
                throw new MemoException($"buffer '{Sizes.Printable(b.Id)}' appears twice; ids must be unique");
            // Stacking every buffer, each padded to its alignment, must fit in a long: then no placement overflows.
            if (!Checked.TryAdd(total, b.Size, out total) || !Checked.TryAdd(total, b.Alignment - 1, out total))
                throw new MemoException($"buffer '{Sizes.Printable(b.Id)}': the total size of all buffers (with alignment padding) exceeds {long.MaxValue} bytes; use a coarser unit");
        }
    }
}

/// <summary>Offsets, parallel to <see cref="Problem.Buffers"/>, and the resulting peak.</summary>
public sealed record Solution(long[] Offsets, long Peak)
{
    /// <summary>Builds a solution and computes its peak = max(offset + size) (checked).</summary>
    public static Solution FromOffsets(Problem problem, long[] offsets)
    {
        ArgumentNullException.ThrowIfNull(problem);
        ArgumentNullException.ThrowIfNull(offsets);
        return new Solution(offsets, PeakOf(problem, offsets));
    }

    /// <summary>max(offset + size) over all buffers (checked); 0 for an empty problem.</summary>
    public static long PeakOf(Problem problem, ReadOnlySpan<long> offsets)
    {
        ArgumentNullException.ThrowIfNull(problem);
        if (offsets.Length != problem.Count)
            throw new ArgumentException($"{offsets.Length} offsets for {problem.Count} buffers", nameof(offsets));
        long peak = 0;
        for (int i = 0; i < offsets.Length; i++)
            peak = Math.Max(peak, checked(offsets[i] + problem.Buffers[i].Size));
        return peak;
    }
}

/// <summary>Small checked-arithmetic helpers shared by the planner.</summary>
internal static class Checked
{
    public static bool TryAdd(long a, long b, out long sum)
    {
        sum = unchecked(a + b);
        // Overflow iff both operands have the same sign and the sum's sign differs.
        return ((a ^ sum) & (b ^ sum)) >= 0;
    }

    /// <summary>Smallest multiple of <paramref name="alignment"/> that is >= <paramref name="value"/> (value >= 0).</summary>
    public static long AlignUp(long value, long alignment)
    {
        if (alignment <= 1) return value;
        long rem = value % alignment;
        return rem == 0 ? value : checked(value + (alignment - rem));
    }
}
