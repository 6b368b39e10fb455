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
    public void Preset_figures_are_the_documented_ones()
    {
        var a = DeviceProfile.A800;
        Assert.Equal(312e12, a.PeakFlops);
        Assert.Equal(80L << 30, a.DeviceMemoryBytes);
        Assert.Equal(2L << 40, a.HostMemoryBytes);
        Assert.Equal(8, a.GpusPerNode);
        Assert.Equal(12.5e9, a.ConcurrentHostLinkBandwidth);
        Assert.Equal(50e9, DeviceProfile.H100.HostLinkBandwidth);
        Assert.Equal(141_000_000_000, DeviceProfile.H200.DeviceMemoryBytes);
        Assert.Equal(DeviceProfile.H100.PeakBf16Flops, DeviceProfile.H200.PeakBf16Flops);
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
