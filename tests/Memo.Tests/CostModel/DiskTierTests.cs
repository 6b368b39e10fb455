using Memo.CostModel;

namespace Memo.Tests.CostModel;

/// <summary>
/// The disk tier behind host memory: the one alpha rule over two tiers (<see cref="MemoryPolicy.AlphaForTiers"/>) on
/// hand-computed numbers, and memo's plan on a one-GPU node whose host RAM, disk and rates are chosen so that alpha,
/// the bytes per tier and the longest sequence follow by hand from the layer's skeleton and token-local bytes.
/// </summary>
public sealed class DiskTierTests
{
    // ---- the rule ------------------------------------------------------------------------------------
    // 4 swapped layers, skeleton S = 100 B and token-local R = 300 B per layer: swapping everything takes
    // 4 x 400 = 1600 B. RAM holds exactly half of it (800 B), the disk the other half (800 B).
    private const int N = 4;
    private const double S = 100, R = 300, Ram = 800, Disk = 800, Fast = 1e9;

    [Fact]
    public void Ram_alone_bounds_alpha_by_its_budget()
    {
        // (800 - 4 x 100) / (4 x 300) = 400 / 1200 = 1/3; the link moves anything (1e9 B per layer forward).
        var t = MemoryPolicy.AlphaForTiers(N, S, R, Ram, diskBudget: 0, Fast, Fast);
        Assert.NotNull(t);
        Assert.Equal(1.0 / 3, t.Value.Alpha, 12);
        Assert.False(t.Value.SpillsToDisk);
    }

    [Fact]
    public void A_fast_disk_holding_the_other_half_lets_whole_layers_swap()
    {
        // RAM + disk = 1600 B = 4 x (100 + 1 x 300): alpha 1, and the 800 B past RAM spill to disk.
        var t = MemoryPolicy.AlphaForTiers(N, S, R, Ram, Disk, Fast, Fast);
        Assert.Equal((1.0, true), t);
    }

    [Fact]
    public void A_slow_disk_bounds_alpha_by_its_rate_when_that_still_beats_ram()
    {
        // The disk moves 250 B per layer forward: (250 - 100) / 300 = 0.5 > 1/3, so the plan spills at 0.5
        // (4 x (100 + 0.5 x 300) = 1000 B > 800 B of RAM).
        var t = MemoryPolicy.AlphaForTiers(N, S, R, Ram, Disk, Fast, diskHiddenBytes: 250);
        Assert.NotNull(t);
        Assert.Equal(0.5, t.Value.Alpha, 12);
        Assert.True(t.Value.SpillsToDisk);
    }

    [Fact]
    public void A_disk_slower_than_the_ram_bound_is_not_used()
    {
        // The disk moves 160 B per layer forward: (160 - 100) / 300 = 0.2 < 1/3 from RAM alone.
        var t = MemoryPolicy.AlphaForTiers(N, S, R, Ram, Disk, Fast, diskHiddenBytes: 160);
        Assert.NotNull(t);
        Assert.Equal(1.0 / 3, t.Value.Alpha, 12);
        Assert.False(t.Value.SpillsToDisk);
    }

    [Fact]
    public void Skeletons_past_ram_go_to_disk_or_nowhere()
    {
        // RAM 300 B < 4 x 100 B of skeletons. With 1300 B of disk: (1600 - 400) / 1200 = 1.
        Assert.Equal((1.0, true), MemoryPolicy.AlphaForTiers(N, S, R, 300, 1300, Fast, Fast));
        // With 100 B of disk the skeletons fill RAM + disk exactly: alpha 0.
        Assert.Equal((0.0, true), MemoryPolicy.AlphaForTiers(N, S, R, 300, 100, Fast, Fast));
        // With 50 B they fit nowhere.
        Assert.Null(MemoryPolicy.AlphaForTiers(N, S, R, 300, 50, Fast, Fast));
        Assert.Null(MemoryPolicy.AlphaForTiers(N, S, R, 300, 0, Fast, Fast));
    }

    // ---- the planner ---------------------------------------------------------------------------------
    // llama-small with 6 layers (the last two are not swapped: 4 swapped layers) on one GPU per node, a link and
    // memory so fast and large that only host RAM and the disk bound alpha and the length.

    private static readonly ModelConfig Model = Presets.Resolve("llama-small") with { NumLayers = 6 };
    private const int Swapped = 4;
    private const long T = 4096;

    private static DeviceProfile Node(long hostBytes, long? diskBytes = null, double? diskRate = null) => DeviceProfile.H100 with
    {
        Name = "test",
        GpusPerNode = 1,
        GpusPerHostLink = 1,
        HostLinkBandwidth = 1e18,
        DeviceMemoryBytes = 1L << 40,
        ReservedBytes = 0,
        HostMemoryBytes = hostBytes,
        HostReservedBytes = 0,
        DiskCapacityBytes = diskBytes,
        DiskReadBandwidth = diskRate,
        DiskWriteBandwidth = diskRate,
    };

    private static PlanRequest Request(DeviceProfile dev, long seq = T) => new() { Model = Model, Seq = seq, Gpus = 1, Device = dev };

    private static StrategyPlan Memo(DeviceProfile dev, long seq = T)
    {
        var p = StrategySearch.Plan(Request(dev, seq), Strategy.Memo);
        Assert.True(p.Fits, p.Reason);
        return p;
    }

    /// <summary>One layer's skeleton and token-local bytes at <see cref="T"/> tokens, from the activation inventory.</summary>
    private static (long S, long R) LayerBytes()
    {
        var shape = new LayerShape(Model, Precision.Bf16Mixed);
        Assert.True(shape.TokenLocalBytesPerToken > shape.SkeletonBytesPerToken);
        return (shape.SkeletonBytesPerToken * T, shape.TokenLocalBytesPerToken * T);
    }

    [Fact]
    public void Ram_holding_half_of_the_swapped_bytes_and_a_fast_disk_the_rest_swap_whole_layers()
    {
        var (s, r) = LayerBytes();
        long whole = Swapped * (s + r);        // every swapped layer whole
        long ram = whole / 2;                  // RAM holds exactly layers 0 and 1
        var without = Memo(Node(ram));
        var with = Memo(Node(ram, diskBytes: whole - ram, diskRate: 1e18));

        // Without disk: alpha = (ram - 4 S) / (4 R) = (2 (S + R) - 4 S) / (4 R) = (R - S) / (2 R).
        Assert.Equal((r - s) / (2.0 * r), without.Alpha!.Value, 5);
        Assert.Equal(0, without.DiskBytesPerNode);
        // With it: alpha 1, layers 0 and 1 fill RAM exactly, layers 2 and 3 go to disk.
        Assert.Equal(1.0, with.Alpha!.Value, 6);
        Assert.Equal(ram, with.HostBytesPerNode);
        Assert.Equal(whole - ram, with.DiskBytesPerNode);
        Assert.Equal(2, with.Memory!.DiskLayers);
        Assert.Contains("2 of 4 swapped layers on disk", with.Reason, StringComparison.Ordinal);
        // Whole layers: nothing recomputed.
        Assert.Equal(0, with.Time!.Recompute);
        Assert.True(without.Time!.Recompute > 0);

        var effect = DiskTier.Compare(Request(Node(ram, whole - ram, 1e18)), with)!;
        Assert.True(effect.ChangesAlpha);
        Assert.Same(with, effect.With);
        Assert.Equal(without.Alpha, effect.Without.Alpha);
        Assert.StartsWith($"disk tier: alpha {without.Alpha!.Value.ToString("0.000", System.Globalization.CultureInfo.InvariantCulture)} -> 1.000", effect.Describe(), StringComparison.Ordinal);
    }

    [Theory]
    // RAM holds every skeleton and half of every token-local part: alpha 0.5 without disk. The disk's rate is set
    // so that one layer's forward writes S + q R: with q = 0.75 the disk raises alpha to 0.75 and holds
    // 4 (S + 0.75 R) - 4 (S + 0.5 R) = R bytes; with q = 0.25 it would lower alpha, so the plan keeps RAM alone.
    [InlineData(0.75, 0.75)]
    [InlineData(0.25, 0.5)]
    public void A_slow_disk_raises_alpha_only_up_to_what_its_rate_hides(double q, double expectedAlpha)
    {
        var (s, r) = LayerBytes();
        long ram = Swapped * (s + r / 2);
        var without = Memo(Node(ram));
        Assert.Equal(0.5, without.Alpha!.Value, 6);
        double layerForward = without.Time!.Forward / Model.NumLayers;
        double rate = (s + q * r) / layerForward;
        var with = Memo(Node(ram, diskBytes: 1L << 40, diskRate: rate));

        Assert.Equal(expectedAlpha, with.Alpha!.Value, 5);
        if (expectedAlpha > 0.5)
        {
            Assert.Equal(r, with.DiskBytesPerNode, 1e-5 * r); // alpha is floored to 1e-6
            Assert.True(with.Time!.Recompute < without.Time.Recompute);
        }
        else
        {
            // The plan without the disk, unchanged.
            Assert.Equal(0, with.DiskBytesPerNode);
            Assert.Equal(without.StepSeconds, with.StepSeconds);
            Assert.Equal(without.HostBytesPerNode, with.HostBytesPerNode);
            Assert.False(DiskTier.Compare(Request(Node(ram, 1L << 40, rate)), with)!.ChangesAlpha);
        }
    }

    [Fact]
    public void The_longest_sequence_doubles_when_the_disk_holds_as_much_as_ram()
    {
        // RAM holds the 4 swapped layers' skeletons of exactly 64K tokens (alpha 0 there); a disk of the same size
        // holds as much again: the longest sequence goes from 64K to 128K tokens.
        var shape = new LayerShape(Model, Precision.Bf16Mixed);
        long ram = Swapped * shape.SkeletonBytesPerToken * 65536;
        var without = StrategySearch.MaxSeq(Request(Node(ram)), Strategy.Memo);
        var dev = Node(ram, diskBytes: ram, diskRate: 1e18);
        var with = StrategySearch.MaxSeq(Request(dev), Strategy.Memo);
        Assert.Equal(65536, without.MaxSeq);
        Assert.Equal(131072, with.MaxSeq);
        Assert.Equal(0, with.Plan.Alpha!.Value, 6);
        Assert.Equal(ram, with.Plan.DiskBytesPerNode);

        var effect = DiskTier.CompareMaxSeq(Request(dev), with.MaxSeq, with.Plan)!;
        Assert.True(effect.ChangesMaxSeq);
        Assert.StartsWith("disk tier: longest sequence 64K -> 128K", effect.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public void Skeletons_that_fit_neither_ram_nor_ram_and_disk_are_out_of_host_memory()
    {
        // The skeletons of 4 layers at T need 4 S; RAM holds 2 S and the disk 1 S: neither alone nor together.
        var (s, _) = LayerBytes();
        var p = StrategySearch.Plan(Request(Node(2 * s, diskBytes: s, diskRate: 1e18)), Strategy.Memo);
        Assert.False(p.Fits);
        Assert.Contains("out of host memory", p.Reason, StringComparison.Ordinal);
        Assert.Contains($"available in host memory and {Sizes.FormatBytes(s)} on disk", p.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Without_a_disk_tier_the_profile_and_its_json_are_as_before()
    {
        Assert.False(DeviceProfile.A800.HasDiskTier);
        Assert.False(DeviceProfile.A800.ToJson().ContainsKey("disk_capacity_bytes"));
        var withDisk = DeviceProfile.A800.WithDiskTier("30TB@25GB/s,12GB/s");
        Assert.Equal(30e12, withDisk.DiskCapacityBytes!.Value);
        Assert.Equal(25e9, withDisk.DiskReadBandwidth);
        Assert.Equal(12e9, withDisk.DiskWriteBandwidth);
        // Written and read back, the disk fields survive; "none" drops them.
        var back = DeviceProfile.FromJson(withDisk.ToJson().ToJsonString(), "p.json", DeviceProfile.H100);
        Assert.Equal(withDisk.DiskCapacityBytes, back.DiskCapacityBytes);
        Assert.Equal(withDisk.DiskWriteBandwidth, back.DiskWriteBandwidth);
        Assert.Equal(DeviceProfile.A800, withDisk.WithDiskTier("none"));
    }

    [Theory]
    [InlineData("30TB", "write CAPACITY@BANDWIDTH")]
    [InlineData("30TB@", "write CAPACITY@BANDWIDTH")]
    [InlineData("lots@25GB/s", "'lots' is not a size")]
    [InlineData("30TB@fast", "'fast' is not a rate")]
    [InlineData("0@25GB/s", "the capacity must be larger than 0")]
    [InlineData("30TB@0GB/s", "a disk bandwidth must be larger than 0")]
    [InlineData("30TB@1GB/s,2GB/s,3GB/s", "write CAPACITY@BANDWIDTH")]
    public void Bad_disk_tier_flags_are_one_line(string spec, string expected)
    {
        var e = Assert.Throws<MemoException>(() => DeviceProfile.A800.WithDiskTier(spec));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory]
    [InlineData("""{"disk_capacity_bytes": "30TB"}""", "missing disk_read_bandwidth, disk_write_bandwidth")]
    [InlineData("""{"disk_capacity_bytes": "30TB", "disk_read_bandwidth": 25e9}""", "missing disk_write_bandwidth")]
    [InlineData("""{"disk_read_bandwidth": -1}""", "'disk_read_bandwidth' must be positive")]
    [InlineData("""{"disk_capacity_bytes": 0, "disk_read_bandwidth": 1e9, "disk_write_bandwidth": 1e9}""", "'disk_capacity_bytes' must be positive")]
    [InlineData("""{"base": "cpu", "disk_capacity_bytes": "1TB", "disk_read_bandwidth": 1e9, "disk_write_bandwidth": 1e9}""", "a disk tier in the plan is for GPU profiles")]
    public void Bad_disk_fields_in_a_profile_file_are_one_line(string json, string expected)
    {
        var e = Assert.Throws<MemoException>(() => DeviceProfile.FromJson(json, "p.json", DeviceProfile.A800));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }
}
