using Memo.Planner;
using Buffer = Memo.Planner.Buffer;

namespace Memo.Tests.Planner;

public class CachingAllocatorSimTests
{
    private const long KiB = 1024, MiB = 1024 * 1024;

    private static Problem Trace(params (string Id, long Lower, long Upper, long Size)[] requests) =>
        new(requests.Select(r => new Buffer(r.Id, new Lifespan(r.Lower, r.Upper), r.Size)).ToArray());

    [Theory]
    [InlineData(1, 512)]
    [InlineData(512, 512)]
    [InlineData(513, 1024)]
    [InlineData(1000, 1024)]
    [InlineData(1048576, 1048576)]
    public void Sizes_round_up_to_512(long size, long rounded) => Assert.Equal(rounded, CachingAllocatorSim.RoundSize(size));

    [Theory]
    [InlineData(512, 2 * MiB)]              // small pool
    [InlineData(1 * MiB, 2 * MiB)]          // <= 1 MiB is still small
    [InlineData(1 * MiB + 512, 20 * MiB)]   // large, < 10 MiB
    [InlineData(10 * MiB - 512, 20 * MiB)]
    [InlineData(10 * MiB, 10 * MiB)]        // >= 10 MiB: rounded up to 2 MiB
    [InlineData(11 * MiB, 12 * MiB)]
    public void Segment_sizes(long rounded, long segment) => Assert.Equal(segment, CachingAllocatorSim.SegmentSize(rounded));

    [Fact]
    public void Small_requests_share_one_2MiB_segment()
    {
        // a = 1000 B -> 1024 B, b = 100 B -> 512 B, both small.
        // a: no free block -> segment 2 MiB, split: a [0,1024), free [1024, 2 MiB).
        // b: best fit is that free block -> split: b [1024,1536), free [1536, 2 MiB).
        // reserved = 2 MiB; allocated peak = 1024 + 512 = 1536; requested peak = 1100.
        var r = CachingAllocatorSim.Run(Trace(("a", 0, 10, 1000), ("b", 1, 5, 100)));
        Assert.Equal(2 * MiB, r.ReservedPeak);
        Assert.Equal(1536, r.AllocatedPeak);
        Assert.Equal(1100, r.RequestedPeak);
        Assert.Equal(1, r.Segments);
        Assert.Equal(new long[] { 0, 1024 }, r.Addresses);
    }

    [Fact]
    public void Large_requests_below_10MiB_get_20MiB_segments_and_split_only_above_1MiB()
    {
        // a = 8 MiB (large): new segment 20 MiB, rest 12 MiB > 1 MiB -> split: a [0,8), free [8,20).
        // b = 11.5 MiB at t=1: best fit is the 12 MiB block; rest 0.5 MiB is not > 1 MiB -> no
        //   split, b gets the whole 12 MiB block [8,20) and the allocated count grows by 12 MiB.
        // c = 2 MiB at t=2: no free block -> new segment 20 MiB at [20,40): c [20,22), free [22,40).
        // reserved = 40 MiB; allocated peak = 8 + 12 + 2 = 22 MiB.
        var r = CachingAllocatorSim.Run(Trace(("a", 0, 10, 8 * MiB), ("b", 1, 10, 11 * MiB + 512 * KiB), ("c", 2, 10, 2 * MiB)));
        Assert.Equal(40 * MiB, r.ReservedPeak);
        Assert.Equal(22 * MiB, r.AllocatedPeak);
        Assert.Equal(2, r.Segments);
        Assert.Equal(new long[] { 0, 8 * MiB, 20 * MiB }, r.Addresses);
        Assert.Equal(0, r.SmallPoolReserved);
    }

    [Fact]
    public void Freed_blocks_merge_with_free_neighbours_and_are_reused()
    {
        // t=0: a 5 MiB -> segment S1 20 MiB: a [0,5), free [5,20).
        // t=0: b 5 MiB -> best fit free [5,20): b [5,10), free [10,20).
        // t=1: a and b freed (frees before the allocation at t=1): a -> free [0,5);
        //      b merges with [0,5) and [10,20) -> one free block [0,20).
        // t=1: c 18 MiB -> fits [0,20); rest 2 MiB > 1 MiB -> split: c [0,18).
        // reserved = 20 MiB (one segment), allocated peak = max(10, 18) = 18 MiB.
        var r = CachingAllocatorSim.Run(Trace(("a", 0, 1, 5 * MiB), ("b", 0, 1, 5 * MiB), ("c", 1, 2, 18 * MiB)));
        Assert.Equal(20 * MiB, r.ReservedPeak);
        Assert.Equal(18 * MiB, r.AllocatedPeak);
        Assert.Equal(1, r.Segments);
    }

    [Fact]
    public void Blocks_never_merge_across_segments()
    {
        // t=0: a 12 MiB -> segment S1 of 12 MiB (>= 10 MiB: rounded to 2 MiB), no rest.
        // t=0: b 12 MiB -> segment S2 of 12 MiB.
        // t=1: both freed: two free 12 MiB blocks in different segments, not merged.
        // t=1: c 20 MiB -> neither fits -> segment S3 of 20 MiB.
        // reserved = 12 + 12 + 20 = 44 MiB although 24 MiB are free: fragmentation.
        var r = CachingAllocatorSim.Run(Trace(("a", 0, 1, 12 * MiB), ("b", 0, 1, 12 * MiB), ("c", 1, 2, 20 * MiB)));
        Assert.Equal(44 * MiB, r.ReservedPeak);
        Assert.Equal(24 * MiB, r.AllocatedPeak);
        Assert.Equal(3, r.Segments);
    }

    [Fact]
    public void Best_fit_takes_the_smallest_free_block()
    {
        // t=0: a 12 MiB -> S1 [0,12); b 14 MiB -> S2 [12,26) (14 MiB exactly); pin 1 MiB + 512
        //      (large) -> S3 20 MiB at [26,46), split: pin [26, 27 MiB + 512), free rest.
        // t=1: a, b freed -> free blocks of 12 MiB (S1), 14 MiB (S2) and the ~19 MiB rest of S3.
        // t=1: c 11 MiB -> smallest that fits is S1's 12 MiB block at address 0; rest 1 MiB is not
        //      > 1 MiB -> c takes the whole block.
        var r = CachingAllocatorSim.Run(Trace(("a", 0, 1, 12 * MiB), ("b", 0, 1, 14 * MiB), ("pin", 0, 5, MiB + 512), ("c", 1, 2, 11 * MiB)));
        Assert.Equal(0, r.Addresses[3]);
        Assert.Equal(46 * MiB, r.ReservedPeak);
        Assert.Equal(3, r.Segments);
    }

    [Fact]
    public void Frees_come_before_allocations_at_the_same_time()
    {
        // a [0,1) and b [1,2), 1.5 MiB each: a's block is free again when b arrives at t=1.
        var r = CachingAllocatorSim.Run(Trace(("a", 0, 1, 3 * MiB / 2), ("b", 1, 2, 3 * MiB / 2)));
        Assert.Equal(20 * MiB, r.ReservedPeak);
        Assert.Equal(r.Addresses[0], r.Addresses[1]);
    }

    [Fact]
    public void Simulated_addresses_form_a_valid_plan()
    {
        // Segments laid end to end make the simulation a plan: it must pass the validator, with
        // peak <= reserved.
        for (int seed = 0; seed < 5; seed++)
        {
            var rng = new Random(seed);
            var p = new Problem(Enumerable.Range(0, 200).Select(i =>
            {
                long lower = rng.Next(100);
                return new Buffer($"r{i}", new Lifespan(lower, lower + 1 + rng.Next(20)), rng.Next(3) == 0 ? rng.NextInt64(1, 30 * MiB) : rng.NextInt64(1, MiB));
            }).ToArray());
            var r = CachingAllocatorSim.Run(p);
            var s = Solution.FromOffsets(p, r.Addresses);
            Assert.True(PlanValidator.Validate(p, s).IsOk);
            Assert.True(s.Peak <= r.ReservedPeak);
            Assert.True(r.ReservedPeak >= r.AllocatedPeak && r.AllocatedPeak >= r.RequestedPeak);
            Assert.Equal(p.LowerBound(), r.RequestedPeak);
        }
    }
}
