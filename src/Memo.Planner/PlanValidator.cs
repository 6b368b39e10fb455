// An independent check of a solution: it shares no code with the solvers (not even the sweep), so
// a bug in a solver cannot hide behind the same bug here.
//
// Overlap check: buffers sorted by lower; each buffer is compared with the buffers still live at
// its lower (those whose upper is greater), O(n log n + n * max live). Zero-size buffers occupy
// no memory and never overlap anything.
namespace Memo.Planner;

/// <summary>Outcome of <see cref="PlanValidator.Validate"/> (minimalloc's PlanValidation, extended).</summary>
public enum ValidationStatus
{
    /// <summary>The solution is valid.</summary>
    Ok,

    /// <summary>The solution does not have one offset per buffer.</summary>
    BadSolution,

    /// <summary>An offset is negative, not a multiple of the buffer's alignment, or offset + size overflows.</summary>
    BadOffset,

    /// <summary>Two buffers whose lifespans intersect occupy intersecting address ranges.</summary>
    BadOverlap,

    /// <summary>The solution's stated peak differs from max(offset + size).</summary>
    BadPeak,

    /// <summary>The peak exceeds the problem's capacity.</summary>
    OverCapacity,
}

/// <summary>The validation status plus the buffers involved and a one-line explanation.</summary>
public sealed record PlanValidation(ValidationStatus Status, string Message, string? FirstId = null, string? SecondId = null)
{
    public bool IsOk => Status == ValidationStatus.Ok;

    public static PlanValidation Ok { get; } = new(ValidationStatus.Ok, "ok");
}

/// <summary>Checks solutions independently of any solver.</summary>
public static class PlanValidator
{
    /// <summary>Validates <paramref name="solution"/> against <paramref name="problem"/>.</summary>
    /// <param name="extraAlignment">An alignment every offset must also satisfy (1 for none).</param>
    public static PlanValidation Validate(Problem problem, Solution solution, long extraAlignment = 1)
    {
        ArgumentNullException.ThrowIfNull(problem);
        ArgumentNullException.ThrowIfNull(solution);
        var buffers = problem.Buffers;
        var offsets = solution.Offsets;
        int n = buffers.Count;
        if (offsets is null || offsets.Length != n)
            return new(ValidationStatus.BadSolution, $"{offsets?.Length ?? 0} offsets for {n} buffers");

        long peak = 0;
        for (int i = 0; i < n; i++)
        {
            Buffer b = buffers[i];
            long o = offsets[i];
            if (o < 0)
                return new(ValidationStatus.BadOffset, $"buffer '{b.Id}' has negative offset {o}", b.Id);
            if (b.Alignment > 1 && o % b.Alignment != 0)
                return new(ValidationStatus.BadOffset, $"buffer '{b.Id}' offset {o} is not a multiple of its alignment {b.Alignment}", b.Id);
            if (extraAlignment > 1 && o % extraAlignment != 0)
                return new(ValidationStatus.BadOffset, $"buffer '{b.Id}' offset {o} is not a multiple of the required alignment {extraAlignment}", b.Id);
            if (o > long.MaxValue - b.Size)
                return new(ValidationStatus.BadOffset, $"buffer '{b.Id}' offset {o} + size {b.Size} overflows", b.Id);
            peak = Math.Max(peak, o + b.Size);
        }

        var order = new int[n];
        for (int i = 0; i < n; i++) order[i] = i;
        Array.Sort(order, (x, y) =>
        {
            int c = buffers[x].Lifespan.Lower.CompareTo(buffers[y].Lifespan.Lower);
            return c != 0 ? c : x.CompareTo(y);
        });
        var live = new List<int>();
        foreach (int i in order)
        {
            Buffer b = buffers[i];
            if (b.Size == 0) continue;
            live.RemoveAll(j => buffers[j].Lifespan.Upper <= b.Lifespan.Lower);
            long lo = offsets[i], hi = offsets[i] + b.Size;
            foreach (int j in live)
            {
                long jlo = offsets[j], jhi = offsets[j] + buffers[j].Size;
                if (lo < jhi && jlo < hi)
                {
                    Buffer other = buffers[j];
                    return new(ValidationStatus.BadOverlap,
                        $"buffers '{other.Id}' {other.Lifespan} at [{jlo}, {jhi}) and '{b.Id}' {b.Lifespan} at [{lo}, {hi}) overlap in time and address",
                        other.Id, b.Id);
                }
            }
            live.Add(i);
        }

        if (solution.Peak != peak)
            return new(ValidationStatus.BadPeak, $"stated peak {solution.Peak} but max(offset + size) is {peak}");
        if (problem.Capacity is long cap && peak > cap)
            return new(ValidationStatus.OverCapacity, $"peak {peak} exceeds capacity {cap}");
        return PlanValidation.Ok;
    }
}
