using System.Diagnostics;
using Memo.Cpu;
using Memo.Model;
using Memo.Model.Memory;
using Memo.Planner;
using Xunit.Abstractions;

namespace Memo.Tests.Memory;

/// <summary>
/// The planned device memory of an iteration: every buffer has a lifespan in the iteration timeline, the
/// offsets come from the planner (validated), the arena is the planned peak, close to the lower bound, and a
/// real step measures exactly the planned peak.
/// </summary>
public sealed class MemoryPlanTests(ITestOutputHelper output)
{
    public static TheoryData<string> Models => new() { "llama-small", "llama-7b", "gpt2", "paper-7b" };

    private static readonly int[] Seqs = [1024, 4096, 16384, 65536];

    [Theory]
    [MemberData(nameof(Models))]
    public void Plans_are_valid_and_within_one_percent_of_the_lower_bound(string model)
    {
        var cfg = Presets.Resolve(model);
        foreach (var policy in Enum.GetValues<Policy>())
        {
            foreach (int seq in Seqs)
            {
                var clock = Stopwatch.StartNew();
                var layout = MemoryLayout.Build(cfg, 1, seq, policy, 4);
                double ms = clock.Elapsed.TotalMilliseconds;
                var problem = layout.Problem;
                long[] offsets = Enumerable.Range(0, layout.Buffers.Count).Select(layout.OffsetOf).ToArray();
                var check = PlanValidator.Validate(problem, Solution.FromOffsets(problem, offsets), MemoryLayout.Align);
                Assert.True(check.IsOk, check.Message);
                Assert.Equal(problem.LowerBound(), layout.LowerBound);
                Assert.Equal(Solution.PeakOf(problem, offsets), layout.TotalBytes);
                double ratio = (double)layout.TotalBytes / layout.LowerBound;
                long sum = layout.Buffers.Sum(b => b.Bytes);
                output.WriteLine($"{model} {policy,-9} T={seq,6}: {layout.Buffers.Count,4} buffers, peak {layout.TotalBytes,14:N0} lower bound {layout.LowerBound,14:N0} ratio {ratio:0.00000} (no reuse {sum,15:N0}) {layout.Solver} {ms:0.0} ms");
                Assert.True(layout.TotalBytes <= 1.01 * layout.LowerBound, $"{model} {policy} T={seq}: peak {layout.TotalBytes} > 1.01 x lower bound {layout.LowerBound}");
            }
        }
    }
}
