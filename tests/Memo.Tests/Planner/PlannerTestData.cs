using Memo.Planner;
using Buffer = Memo.Planner.Buffer;

namespace Memo.Tests.Planner;

/// <summary>Generated planner instances and the location of the shared minimalloc suite.</summary>
internal static class PlannerTestData
{
    /// <summary>n buffers with random lifespans in [0, horizon) and sizes in [1, maxSize].</summary>
    public static Problem Random(int seed, int n, int horizon = 100, int maxSize = 64, long alignment = 1)
    {
        var rng = new Random(seed);
        var buffers = new Buffer[n];
        for (int i = 0; i < n; i++)
        {
            int lower = rng.Next(horizon - 1);
            int upper = lower + 1 + rng.Next(Math.Max(1, Math.Min(horizon - lower - 1, horizon / 4)));
            long align = alignment > 1 && rng.Next(2) == 0 ? alignment : 1;
            buffers[i] = new Buffer($"b{i}", new Lifespan(lower, upper), 1 + rng.Next(maxSize), align);
        }
        return new Problem(buffers);
    }

    /// <summary>
    /// A perfect packing: the box [0, width) x [0, height) cut by random guillotine cuts (in time
    /// or in address) into <paramref name="pieces"/> buffers. Every time step has exactly
    /// <paramref name="height"/> live bytes, so the lower bound and the optimum are both height.
    /// </summary>
    public static Problem Tight(int seed, int pieces, long width = 64, long height = 256)
    {
        var rng = new Random(seed);
        var rects = new List<(long T0, long T1, long A0, long A1)> { (0, width, 0, height) };
        int guard = 0;
        while (rects.Count < pieces && guard++ < 100_000)
        {
            int k = rng.Next(rects.Count);
            var (t0, t1, a0, a1) = rects[k];
            bool inTime = rng.Next(2) == 0;
            if (inTime && t1 - t0 >= 2)
            {
                long cut = t0 + 1 + rng.NextInt64(t1 - t0 - 1);
                rects[k] = (t0, cut, a0, a1);
                rects.Add((cut, t1, a0, a1));
            }
            else if (!inTime && a1 - a0 >= 2)
            {
                long cut = a0 + 1 + rng.NextInt64(a1 - a0 - 1);
                rects[k] = (t0, t1, a0, cut);
                rects.Add((t0, t1, cut, a1));
            }
        }
        var buffers = rects.Select((r, i) => new Buffer($"p{i}", new Lifespan(r.T0, r.T1), r.A1 - r.A0)).ToArray();
        return new Problem(buffers);
    }

    /// <summary>
    /// A training-iteration trace: <paramref name="layers"/> layers, each with a forward and a
    /// backward group of <paramref name="perLayer"/> buffers, plus cross-layer buffers (saved
    /// activations live from a layer's forward to its backward; a persistent one for the whole
    /// iteration). Every layer's groups are identical up to a shift in time.
    /// </summary>
    public static Problem Layered(int layers = 8, int perLayer = 10, int seed = 1)
    {
        var rng = new Random(seed);
        var shape = new (long Lower, long Upper, long Size)[perLayer];
        const long step = 20;
        for (int j = 0; j < perLayer; j++)
        {
            long lower = rng.Next((int)step - 1);
            long upper = Math.Min(step, lower + 1 + rng.Next(8));
            shape[j] = (lower, upper, 512L * (1 + rng.Next(16)));
        }
        var buffers = new List<Buffer>();
        long end = 2 * layers * step;
        buffers.Add(new Buffer("weights", new Lifespan(0, end), 4096) { Kind = "persistent" });
        for (int l = 0; l < layers; l++)
        {
            long fwd = l * step, bwd = (2 * layers - 1 - l) * step;
            for (int j = 0; j < perLayer; j++)
            {
                var (lo, up, size) = shape[j];
                buffers.Add(new Buffer($"f{l}.{j}", new Lifespan(fwd + lo, fwd + up), size) { Kind = "forward", Group = "fwd", Layer = l });
                buffers.Add(new Buffer($"g{l}.{j}", new Lifespan(bwd + lo, bwd + up), size) { Kind = "backward", Group = "bwd", Layer = l });
            }
            // The layer's saved activation: produced late in forward, consumed early in backward.
            buffers.Add(new Buffer($"saved{l}", new Lifespan(fwd + step - 2, bwd + 2), 2048) { Kind = "saved" });
        }
        return new Problem(buffers);
    }

    /// <summary>shared/benchmarks/minimalloc, found by walking up from the test's base directory; null if absent.</summary>
    public static string? MinimallocSuite()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string candidate = Path.Combine(d.FullName, "shared", "benchmarks", "minimalloc");
            if (Directory.Exists(candidate)) return candidate;
        }
        return null;
    }

    public static void AssertValid(Problem problem, PlanResult result, long extraAlignment = 1)
    {
        var check = PlanValidator.Validate(new Problem(problem.Buffers), result.ToSolution(), extraAlignment);
        Assert.True(check.IsOk, check.Message);
        Assert.Equal(problem.Count, result.Offsets.Length);
        Assert.True(result.Peak >= result.LowerBound, $"peak {result.Peak} < lower bound {result.LowerBound}");
        Assert.True(result.LowerBound >= Sweep.MaxLoad(problem), $"lower bound {result.LowerBound} below the max load {Sweep.MaxLoad(problem)}");
    }
}

/// <summary>A fact that is skipped, with the reason, when shared/benchmarks/minimalloc is not above the test directory.</summary>
public sealed class MinimallocSuiteFactAttribute : FactAttribute
{
    public MinimallocSuiteFactAttribute()
    {
        if (PlannerTestData.MinimallocSuite() is null)
            Skip = "shared/benchmarks/minimalloc not found in any parent of the test directory; check out the shared data beside the repository to run this test";
    }
}
