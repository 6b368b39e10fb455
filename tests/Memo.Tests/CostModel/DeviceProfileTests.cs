using System.Text.Json.Nodes;
using Memo.CostModel;

namespace Memo.Tests.CostModel;

public class DeviceProfileTests
{
    [Theory]
    [InlineData("a800", "a800")]
    [InlineData("A800-80G", "a800")]
    [InlineData("H100-80G", "h100")]
    [InlineData("h200", "h200")]
    [InlineData("cpu", "cpu")]
    public void Presets_resolve(string name, string expected) => Assert.Equal(expected, DeviceProfile.Resolve(name).Name);

    [Fact]
    public void Unknown_gpu_is_one_clear_line()
    {
        var e = Assert.Throws<MemoException>(() => DeviceProfile.Resolve("v100"));
        Assert.Contains("unknown GPU 'v100'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Peak_flops_follow_from_sms_tensor_cores_and_clock()
    {
        // Dense bf16 tensor-core peak = SMs x FLOP per clock per SM x boost clock, from the architecture whitepapers:
        //   A100/A800 (GA100): 108 SMs x 4 tensor cores x 256 FMA = 1,024 FMA = 2,048 FLOP per clock per SM, 1.41 GHz.
        //   H100 SXM5 (GH100): 132 SMs x 4 tensor cores x 512 FMA = 2,048 FMA = 4,096 FLOP per clock per SM, 1.83 GHz.
        Assert.Equal(108 * 2048 * 1.41e9, DeviceProfile.A800.PeakBf16Flops, 0.001 * DeviceProfile.A800.PeakBf16Flops);
        Assert.Equal(132 * 4096 * 1.83e9, DeviceProfile.H100.PeakBf16Flops, 0.001 * DeviceProfile.H100.PeakBf16Flops);
        Assert.Equal(DeviceProfile.H100.PeakBf16Flops, DeviceProfile.H200.PeakBf16Flops); // same GH100 die and clocks
    }

    [Fact]
    public void Memory_bandwidth_follows_from_bus_width_and_data_rate()
    {
        // HBM bandwidth = bus width (bits) x data rate per pin / 8:
        //   A800 80GB: 5 HBM2e stacks x 1,024 bit, 3.186 Gb/s per pin; H100 SXM5: 5 x 1,024 bit HBM3 at 5.23 Gb/s;
        //   H200: 6 x 1,024 bit HBM3e at 6.25 Gb/s.
        Assert.Equal(5120 * 3.186e9 / 8, DeviceProfile.A800.MemoryBandwidth, 0.005 * DeviceProfile.A800.MemoryBandwidth);
        Assert.Equal(5120 * 5.23e9 / 8, DeviceProfile.H100.MemoryBandwidth, 0.005 * DeviceProfile.H100.MemoryBandwidth);
        Assert.Equal(6144 * 6.25e9 / 8, DeviceProfile.H200.MemoryBandwidth, 0.005 * DeviceProfile.H200.MemoryBandwidth);
    }

    [Fact]
    public void Links_are_below_their_signalling_rates()
    {
        // PCIe x16, one direction: 16 lanes x 16 GT/s (Gen4) or 32 GT/s (Gen5) x 128/130 encoding / 8 bits.
        double gen4 = 16 * 16e9 * 128 / 130 / 8, gen5 = 2 * gen4;
        Assert.InRange(DeviceProfile.A800.HostLinkBandwidth / gen4, 0.7, 0.9);   // effective copy rate: an assumption below the raw rate
        Assert.InRange(DeviceProfile.H100.HostLinkBandwidth / gen5, 0.7, 0.9);
        // NVLink, both directions: A800 has 8 NVLink3 links (A100: 12) of 25 GB/s per direction; H100 18 NVLink4 links of 25 GB/s.
        Assert.Equal(8 * 25e9 * 2, DeviceProfile.A800.IntraNodeBandwidth);
        Assert.Equal(18 * 25e9 * 2, DeviceProfile.H100.IntraNodeBandwidth);
        // 4 x 200 Gb/s HDR InfiniBand per A800 node; 8 x 400 Gb/s NDR per H100 node.
        Assert.Equal(4 * 200e9 / 8, DeviceProfile.A800.InterNodeBandwidth);
        Assert.Equal(8 * 400e9 / 8, DeviceProfile.H100.InterNodeBandwidth);
    }

    [Fact]
    public void The_constant_fitted_to_a_paper_figure_is_named_as_such()
    {
        var r = new PlanRequest { Model = Presets.Resolve("paper-7b"), Seq = 1 << 20, Gpus = 8, Device = DeviceProfile.A800 };
        var all = Assumptions.For(r);
        var fitted = all.Where(a => a.Kind == "fitted").ToArray();
        Assert.Equal("gpus_per_host_link", Assert.Single(fitted).Key);
        Assert.Contains("192K", fitted[0].Source, StringComparison.Ordinal);
        Assert.All(all, a => Assert.False(string.IsNullOrWhiteSpace(a.Source), a.Key));
        Assert.Contains(all, a => a.Key == "fragmentation_factor" && a.Source.Contains("73.5 GB", StringComparison.Ordinal));
        // A flag that changes a figure turns it into an override.
        var moved = Assumptions.For(r with { Device = DeviceProfile.A800 with { GemmEfficiency = 0.7 } });
        Assert.Equal("override", moved.Single(a => a.Key == "gemm_efficiency").Kind);
    }

    [Fact]
    public void Json_round_trips_and_overrides()
    {
        var a = DeviceProfile.A800;
        var back = DeviceProfile.FromJson(a.ToJson().ToJsonString(), "p.json", DeviceProfile.H100);
        Assert.Equal(a.ToJson().ToJsonString(), back.ToJson().ToJsonString());

        var o = DeviceProfile.FromJson("""{"base":"a800","host_memory_bytes":"1TiB","gemm_efficiency":0.75}""", "p.json", DeviceProfile.H100);
        Assert.Equal("a800", o.Name);
        Assert.Equal(1L << 40, o.HostMemoryBytes);
        Assert.Equal(0.75, o.GemmEfficiency);
        Assert.Equal(a.PeakBf16Flops, o.PeakBf16Flops);
    }

    [Theory]
    [InlineData("""{"peak_bf16_flop":1}""", "unknown profile field 'peak_bf16_flop'")]
    [InlineData("""{"gemm_efficiency":1.5}""", "must be in (0, 1]")]
    [InlineData("""{"gpus_per_node":0}""", "positive integer")]
    [InlineData("""{"host_memory_bytes":"lots"}""", "is not a size")]
    [InlineData("""[1,2]""", "expected a JSON object")]
    [InlineData("""{"base":"tpu"}""", "unknown GPU 'tpu'")]
    [InlineData("""{"reserved_bytes":"90GiB"}""", "leaves no device memory")]
    public void Bad_profile_files_give_one_clear_line(string json, string expected)
    {
        var e = Assert.Throws<MemoException>(() => DeviceProfile.FromJson(json, "p.json", DeviceProfile.A800));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Profile_json_lists_every_field()
    {
        var o = DeviceProfile.A800.ToJson();
        foreach (var key in new[] { "peak_bf16_flops", "peak_fp32_flops", "memory_bandwidth", "device_memory_bytes", "host_link_bandwidth",
                     "gpus_per_node", "host_memory_bytes", "intra_node_bandwidth", "inter_node_bandwidth", "gemm_efficiency",
                     "attention_forward_efficiency", "attention_backward_efficiency" })
        {
            Assert.True(o.ContainsKey(key), key);
            Assert.IsAssignableFrom<JsonValue>(o[key]);
        }
    }
}
