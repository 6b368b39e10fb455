// Bi-level planning for training iterations whose buffer requests repeat per layer.
//
// Level 1: the buffers of one (layer, group) instance - e.g. layer 3's forward buffers - form a
// sub-problem. Instances that are identical up to a shift in time (same relative lifespans,
// sizes and alignments) share one solve: a transformer's layers give one forward and one
// backward sub-problem however many layers there are.
// Level 2: each instance becomes one block (size = its level-1 peak, lifespan = the instance's
// time span, alignment = the least common multiple of its buffers' alignments); the blocks and
// the buffers that belong to no layer (Layer = -1: embeddings, saved activations that live
// across layers, optimizer state, ...) are planned together.
// Composition: offset = block offset + inner offset. Valid because a block covers all of its
// buffers in time and in address, and the inner plan is valid inside the block.
//
//   address ^  [ cross-layer buffers ......................................... ]
//           |  [fwd L0][fwd L1][fwd L2] ...           ... [bwd L2][bwd L1][bwd L0]
//           +------------------------------------------------------------------> time
using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Memo.Planner;

/// <summary>One level-1 sub-problem and the instances that share its plan.</summary>
public sealed record InnerPlan(string Group, int Instances, int BuffersPerInstance, PlanResult Result);

/// <summary>The composed plan plus the plans of both levels.</summary>
public sealed record BiLevelResult(PlanResult Plan, PlanResult Outer, IReadOnlyList<InnerPlan> Inner);

/// <summary>Bi-level composition (see the file header).</summary>
public static class BiLevelPlanner
{
    /// <summary>Share of the time limit given to the level-1 solves (split among them by size).</summary>
    public const double InnerShare = 0.4;

    /// <summary>
    /// Plans <paramref name="problem"/> in two levels: buffers are grouped into instances by
    /// (<see cref="Buffer.Layer"/>, <see cref="Buffer.Group"/>); buffers with Layer = -1 are
    /// planned at level 2 directly. Each level is solved by <paramref name="planner"/> under <paramref name="options"/>
    /// (the engines by name, CP-SAT included, are in Memo.Planner.CpSat's <c>Planners.Create</c>).
    /// </summary>
    public static BiLevelResult Solve(Problem problem, PlannerOptions options, IPlanner planner)
    {
        ArgumentNullException.ThrowIfNull(problem);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(planner);
        options.Check();
        problem.CheckWellFormed();
        var clock = Stopwatch.StartNew();

        // Instances: (layer, group) -> buffer indices, in first-appearance order.
        var instances = new Dictionary<(int Layer, string Group), List<int>>();
        var crossLayer = new List<int>();
        for (int i = 0; i < problem.Count; i++)
        {
            Buffer b = problem.Buffers[i];
            if (b.Layer < 0)
            {
                crossLayer.Add(i);
                continue;
            }
            var key = (b.Layer, b.Group ?? "");
            if (!instances.TryGetValue(key, out var list)) instances[key] = list = [];
            list.Add(i);
        }

        // Canonical order inside an instance (relative lifespan, size, alignment, then input
        // order) and a signature that identical instances share.
        var shapes = new Dictionary<string, Shape>(StringComparer.Ordinal);
        var instanceShape = new List<(int Layer, string Group, int[] Members, long Start, long End, Shape Shape)>();
        foreach (var ((layer, group), members) in instances)
        {
            long t0 = long.MaxValue, t1 = long.MinValue;
            foreach (int i in members)
            {
                t0 = Math.Min(t0, problem.Buffers[i].Lifespan.Lower);
                t1 = Math.Max(t1, problem.Buffers[i].Lifespan.Upper);
            }
            int[] sorted = members.OrderBy(i => checked(problem.Buffers[i].Lifespan.Lower - t0))
                .ThenBy(i => checked(problem.Buffers[i].Lifespan.Upper - t0))
                .ThenBy(i => problem.Buffers[i].Size).ThenBy(i => problem.Buffers[i].Alignment).ThenBy(i => i).ToArray();
            var sig = new StringBuilder(group.Length + 32 * sorted.Length);
            sig.Append(group).Append('|');
            foreach (int i in sorted)
            {
                Buffer b = problem.Buffers[i];
                sig.Append(CultureInfo.InvariantCulture, $"{b.Lifespan.Lower - t0},{b.Lifespan.Upper - t0},{b.Size},{b.Alignment};");
            }
            string key = sig.ToString();
            if (!shapes.TryGetValue(key, out var shape))
            {
                var inner = sorted.Select(i =>
                {
                    Buffer b = problem.Buffers[i];
                    return b with { Lifespan = new Lifespan(b.Lifespan.Lower - t0, b.Lifespan.Upper - t0), Layer = -1 };
                }).ToArray();
                shapes[key] = shape = new Shape(group, new Problem(inner));
            }
            shape.Instances++;
            instanceShape.Add((layer, group, sorted, t0, t1, shape));
        }

        // Level 1: one solve per distinct shape, time split by buffer count.
        double innerBudget = options.TimeLimit.TotalSeconds * InnerShare;
        long innerBuffers = Math.Max(1, shapes.Values.Sum(s => (long)s.Problem.Count));
        var innerPlans = new List<InnerPlan>();
        foreach (Shape shape in shapes.Values)
        {
            var innerOptions = options with { TimeLimit = TimeSpan.FromSeconds(innerBudget * shape.Problem.Count / innerBuffers) };
            shape.Result = planner.Solve(shape.Problem, innerOptions);
            shape.BlockAlignment = 1;
            foreach (Buffer b in shape.Problem.Buffers)
                shape.BlockAlignment = Arithmetic.Lcm(shape.BlockAlignment, Arithmetic.Lcm(b.Alignment, options.Alignment));
            innerPlans.Add(new InnerPlan(shape.Group, shape.Instances, shape.Problem.Count, shape.Result));
        }

        // Level 2: blocks + cross-layer buffers.
        var outerBuffers = new List<Buffer>(instanceShape.Count + crossLayer.Count);
        foreach (var (layer, group, _, start, end, shape) in instanceShape)
        {
            outerBuffers.Add(new Buffer(string.Create(CultureInfo.InvariantCulture, $"{(group.Length > 0 ? group : "block")}@{layer}"),
                new Lifespan(start, end), shape.Result!.Peak, shape.BlockAlignment) { Kind = "block", Group = group, Layer = layer });
        }
        foreach (int i in crossLayer) outerBuffers.Add(problem.Buffers[i]);
        var outerProblem = new Problem(outerBuffers, problem.Capacity);
        double outerSeconds = Math.Max(0, options.TimeLimit.TotalSeconds - clock.Elapsed.TotalSeconds);
        PlanResult outer = planner.Solve(outerProblem, options with { TimeLimit = TimeSpan.FromSeconds(outerSeconds) });

        // Composition.
        var offsets = new long[problem.Count];
        for (int k = 0; k < instanceShape.Count; k++)
        {
            var (_, _, members, _, _, shape) = instanceShape[k];
            long blockOffset = outer.Offsets[k];
            for (int j = 0; j < members.Length; j++)
                offsets[members[j]] = checked(blockOffset + shape.Result!.Offsets[j]);
        }
        for (int c = 0; c < crossLayer.Count; c++) offsets[crossLayer[c]] = outer.Offsets[instanceShape.Count + c];

        long peak = Solution.PeakOf(problem, offsets);
        long lowerBound = Math.Min(peak, Sweep.MaxLoad(problem));
        PlanStatus status =
            problem.Capacity is long cap && lowerBound > cap ? PlanStatus.Infeasible
            : problem.Capacity is long cap2 && peak > cap2 ? PlanStatus.OverCapacity
            : peak == lowerBound ? PlanStatus.Optimal : PlanStatus.Feasible;
        var log = new List<string>();
        foreach (InnerPlan p in innerPlans)
            log.Add($"level 1 '{p.Group}': {p.BuffersPerInstance} buffers x {p.Instances} instances, peak {p.Result.Peak} (lower bound {p.Result.LowerBound}) by {p.Result.Solver}");
        log.Add($"level 2: {instanceShape.Count} blocks + {crossLayer.Count} cross-layer buffers, peak {outer.Peak} (lower bound {outer.LowerBound}) by {outer.Solver}");
        var plan = new PlanResult
        {
            Status = status,
            Offsets = offsets,
            Peak = peak,
            LowerBound = lowerBound,
            Seconds = clock.Elapsed.TotalSeconds,
            Solver = "bilevel/" + planner.Name,
            Parts = instanceShape.Count + crossLayer.Count,
            Nodes = outer.Nodes + innerPlans.Sum(p => p.Result.Nodes),
            Log = log,
        };
        return new BiLevelResult(plan, outer, innerPlans);
    }

    private sealed class Shape(string group, Problem problem)
    {
        public string Group { get; } = group;

        public Problem Problem { get; } = problem;

        public int Instances { get; set; }

        public PlanResult? Result { get; set; }

        public long BlockAlignment { get; set; } = 1;
    }
}
