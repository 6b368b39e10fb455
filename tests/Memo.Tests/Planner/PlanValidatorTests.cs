using Memo.Planner;
using Buffer = Memo.Planner.Buffer;

namespace Memo.Tests.Planner;

public class PlanValidatorTests
{
    // minimalloc's README example: b1 [0,3) and b2 [3,9) may share memory; b3 [0,9) overlaps both.
    private static Problem Example(long? capacity = null) => new(
    [
        new Buffer("b1", new Lifespan(0, 3), 4),
        new Buffer("b2", new Lifespan(3, 9), 4),
        new Buffer("b3", new Lifespan(0, 9), 4),
        new Buffer("b4", new Lifespan(9, 21), 4),
        new Buffer("b5", new Lifespan(0, 21), 4),
    ], capacity);

    [Fact]
    public void Minimallocs_solution_is_valid()
    {
        // The solution minimalloc prints for this example (its README): peak 12.
        var s = new Solution([8, 8, 4, 4, 0], 12);
        Assert.Equal(ValidationStatus.Ok, PlanValidator.Validate(Example(12), s).Status);
    }

    [Fact]
    public void Touching_lifespans_may_share_addresses()
    {
        var p = new Problem([new Buffer("a", new Lifespan(0, 3), 4), new Buffer("b", new Lifespan(3, 9), 4)]);
        Assert.True(PlanValidator.Validate(p, new Solution([0, 0], 4)).IsOk);
    }

    [Fact]
    public void Overlap_names_both_buffers()
    {
        // b1 and b3 both live at t in [0,3) and both sit at [4,8).
        var r = PlanValidator.Validate(Example(), new Solution([4, 8, 4, 4, 0], 12));
        Assert.Equal(ValidationStatus.BadOverlap, r.Status);
        Assert.Equal(new[] { "b1", "b3" }, new[] { r.FirstId, r.SecondId }.Order());
    }

    [Fact]
    public void Touching_addresses_do_not_overlap()
    {
        var p = new Problem([new Buffer("a", new Lifespan(0, 5), 4), new Buffer("b", new Lifespan(2, 9), 4)]);
        Assert.True(PlanValidator.Validate(p, new Solution([0, 4], 8)).IsOk);
        Assert.Equal(ValidationStatus.BadOverlap, PlanValidator.Validate(p, new Solution([0, 3], 7)).Status);
    }

    [Fact]
    public void Negative_and_misaligned_offsets_are_bad()
    {
        var p = new Problem([new Buffer("a", new Lifespan(0, 5), 4, Alignment: 8)]);
        var neg = PlanValidator.Validate(p, new Solution([-8], -4));
        Assert.Equal(ValidationStatus.BadOffset, neg.Status);
        Assert.Equal("a", neg.FirstId);
        Assert.Equal(ValidationStatus.BadOffset, PlanValidator.Validate(p, new Solution([4], 8)).Status);
        Assert.True(PlanValidator.Validate(p, new Solution([16], 20)).IsOk);
        // The extra alignment applies on top of the buffer's own.
        Assert.Equal(ValidationStatus.BadOffset, PlanValidator.Validate(p, new Solution([8], 12), extraAlignment: 16).Status);
    }

    [Fact]
    public void Wrong_peak_count_and_capacity_are_reported()
    {
        Assert.Equal(ValidationStatus.BadPeak, PlanValidator.Validate(Example(), new Solution([8, 8, 4, 4, 0], 13)).Status);
        Assert.Equal(ValidationStatus.BadSolution, PlanValidator.Validate(Example(), new Solution([8, 8], 12)).Status);
        Assert.Equal(ValidationStatus.OverCapacity, PlanValidator.Validate(Example(11), new Solution([8, 8, 4, 4, 0], 12)).Status);
    }

    [Fact]
    public void Zero_size_buffers_overlap_nothing()
    {
        var p = new Problem([new Buffer("a", new Lifespan(0, 5), 4), new Buffer("z", new Lifespan(0, 5), 0)]);
        Assert.True(PlanValidator.Validate(p, new Solution([0, 2], 4)).IsOk);
    }

    [Fact]
    public void Agrees_with_a_brute_force_check_on_random_plans()
    {
        // Random offsets: the validator must flag an overlap exactly when a pairwise check finds one.
        var rng = new Random(7);
        int flagged = 0;
        for (int trial = 0; trial < 300; trial++)
        {
            var p = PlannerTestData.Random(trial, 12, horizon: 30, maxSize: 8);
            var offsets = Enumerable.Range(0, p.Count).Select(_ => (long)rng.Next(40)).ToArray();
            bool overlap = false;
            for (int i = 0; i < p.Count; i++)
                for (int j = i + 1; j < p.Count; j++)
                {
                    Buffer a = p.Buffers[i], b = p.Buffers[j];
                    if (a.Lifespan.Intersects(b.Lifespan) && offsets[i] < offsets[j] + b.Size && offsets[j] < offsets[i] + a.Size) overlap = true;
                }
            var r = PlanValidator.Validate(p, Solution.FromOffsets(p, offsets));
            Assert.Equal(overlap, r.Status == ValidationStatus.BadOverlap);
            if (overlap) flagged++;
        }
        Assert.InRange(flagged, 30, 299);
    }
}
