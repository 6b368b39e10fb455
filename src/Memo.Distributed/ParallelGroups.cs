namespace Memo.Distributed;

/// <summary>
/// How the N ranks of a job split into D data-parallel groups of C context-parallel ranks. World rank
/// w = d*C + c: rank c of context group d. The context-parallel ring holds the C ranks of one group
/// (they share a batch and split its sequences zig-zag); ranks with the same c in different groups take
/// different batches. Gradients are summed over all N ranks.
/// </summary>
public sealed class ParallelGroups : IDisposable
{
    private ParallelGroups(ICommunicator world, int cp, ICommunicator ring)
    {
        World = world;
        ContextSize = cp;
        Ring = ring;
    }

    public ICommunicator World { get; }

    /// <summary>C: ranks that split one sequence.</summary>
    public int ContextSize { get; }

    /// <summary>D = N / C: groups that take different batches.</summary>
    public int DataSize => World.Size / ContextSize;

    /// <summary>c: this rank's place in its ring.</summary>
    public int ContextRank => World.Rank % ContextSize;

    /// <summary>d: this rank's data-parallel group.</summary>
    public int DataRank => World.Rank / ContextSize;

    /// <summary>The C ranks of this rank's context-parallel group, ordered by c.</summary>
    public ICommunicator Ring { get; }

    /// <summary>Checks N = C x D and builds the ring (a collective: every rank calls it with the same <paramref name="cp"/>).</summary>
    public static ParallelGroups Create(ICommunicator world, int cp)
    {
        ArgumentNullException.ThrowIfNull(world);
        Check(world.Size, cp);
        var ring = cp == world.Size ? world : world.Split(world.Rank / cp, world.Rank % cp);
        return new ParallelGroups(world, cp, ring);
    }

    /// <summary>One-line error unless <paramref name="ranks"/> is a positive multiple of <paramref name="cp"/>.</summary>
    public static void Check(int ranks, int cp)
    {
        if (cp < 1) throw new MemoException($"--cp must be at least 1 (got {cp})");
        if (ranks % cp != 0)
            throw new MemoException($"{ranks} ranks do not split into context-parallel groups of {cp}; launch a multiple of {cp} ranks (mpiexec -n {cp}, {2 * cp}, ...)");
    }

    public void Dispose()
    {
        if (!ReferenceEquals(Ring, World)) Ring.Dispose();
    }
}
