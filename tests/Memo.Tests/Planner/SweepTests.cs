using Memo.Planner;
using Buffer = Memo.Planner.Buffer;

namespace Memo.Tests.Planner;

public class SweepTests
{
    private static Problem Header() => new(
    [
        new Buffer("b1", new Lifespan(0, 3), 4),
        new Buffer("b2", new Lifespan(3, 9), 4),
        new Buffer("b3", new Lifespan(0, 9), 4),
        new Buffer("b4", new Lifespan(9, 21), 4),
    ]);

    [Fact]
    public void Max_load_counts_half_open_lifespans()
    {
        // t in [0,3): b1 + b3 = 8; [3,9): b2 + b3 = 8; [9,21): b4 = 4. b1 and b2 never coexist.
        Assert.Equal(8, Sweep.MaxLoad(Header()));
        Assert.Equal(0, Sweep.MaxLoad(new Problem([])));
    }

    [Fact]
    public void Sections_cuts_and_partitions()
    {
        var r = Sweep.Run(Header());
        Assert.Equal(new long[] { 0, 3, 9 }, r.SectionStart);
        Assert.Equal(new long[] { 3, 9, 21 }, r.SectionEnd);
        Assert.Equal(new long[] { 8, 8, 4 }, r.SectionLoad);
        Assert.Equal(new[] { 1, 0 }, r.Cuts);  // b3 spans s0|s1; nothing spans s1|s2
        Assert.Equal(2, r.Partitions.Count);
        Assert.Equal(new[] { 0, 1, 2 }, r.Partitions[0].Buffers);
        Assert.Equal(new[] { 3 }, r.Partitions[1].Buffers);
    }

    [Fact]
    public void Empty_stretches_of_time_split_partitions()
    {
        var p = new Problem([new Buffer("a", new Lifespan(0, 2), 1), new Buffer("b", new Lifespan(5, 8), 1)]);
        var r = Sweep.Run(p);
        Assert.Equal(2, r.SectionCount);  // [2,5) is empty and dropped
        Assert.Equal(2, r.Partitions.Count);
    }

    [Fact]
    public void Load_curve_steps()
    {
        var curve = Sweep.LoadCurve(Header());
        Assert.Equal(new (long, long)[] { (0, 8), (3, 8), (9, 4), (21, 0) }, curve);
    }

    [Fact]
    public void Overlaps_match_pairwise_intersection()
    {
        var p = PlannerTestData.Random(3, 40, horizon: 50);
        var (start, index) = Sweep.Overlaps(p);
        for (int i = 0; i < p.Count; i++)
        {
            var expected = Enumerable.Range(0, p.Count).Where(j => j != i && p.Buffers[i].Lifespan.Intersects(p.Buffers[j].Lifespan)).ToArray();
            var actual = index[start[i]..start[i + 1]].Order().ToArray();
            Assert.Equal(expected, actual);
        }
    }
}
