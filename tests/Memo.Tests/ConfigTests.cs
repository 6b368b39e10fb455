namespace Memo.Tests;

public class ConfigTests
{
    [Fact]
    public void Presets_are_consistent()
    {
        foreach (var (name, _, cfg) in Presets.List())
        {
            cfg.Validate();
            Assert.Equal(name, cfg.Name);
        }
    }

    [Fact]
    public void Gpt2_124M_has_the_known_parameter_count()
    {
        Assert.True(Presets.TryGet("gpt2", out var cfg));
        Assert.Equal(124_439_808, cfg.ParameterCount);
    }

    [Fact]
    public void Config_json_round_trips()
    {
        foreach (var (_, _, cfg) in Presets.List())
        {
            var back = ModelConfig.FromJson(cfg.ToJson(), "x");
            Assert.Equal(cfg with { Name = "x" }, back);
        }
    }

    [Theory]
    [InlineData("""{"model_type":"llama","hidden_size":65,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":8,"vocab_size":10}""", "not divisible")]
    [InlineData("""{"model_type":"llama","hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":3,"intermediate_size":8,"vocab_size":10}""", "does not divide")]
    [InlineData("""{"model_type":"bert"}""", "not supported")]
    [InlineData("""{"model_type":"llama",""", "not valid JSON")]
    [InlineData("""{"model_type":"llama","hidden_size":64}""", "missing field")]
    public void Bad_configs_give_one_clear_line(string json, string expected)
    {
        var e = Assert.Throws<MemoException>(() => ModelConfig.FromJson(json, "config.json"));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory]
    [InlineData("4096", 4096)]
    [InlineData("32K", 32768)]
    [InlineData("1M", 1048576)]
    [InlineData("128k", 131072)]
    public void Counts_parse(string text, long expected)
    {
        Assert.True(Sizes.TryParseCount(text, out var v));
        Assert.Equal(expected, v);
    }

    [Theory]
    [InlineData("1.5M5")]
    [InlineData("-3")]
    [InlineData("12G")]
    [InlineData("")]
    public void Bad_counts_are_rejected(string text) => Assert.False(Sizes.TryParseCount(text, out _));

    [Theory]
    [InlineData("512MiB", 512L * 1024 * 1024)]
    [InlineData("6GB", 6_000_000_000L)]
    [InlineData("2GiB", 2L * 1024 * 1024 * 1024)]
    [InlineData("1000", 1000)]
    public void Byte_sizes_parse(string text, long expected)
    {
        Assert.True(Sizes.TryParseBytes(text, out var v));
        Assert.Equal(expected, v);
    }
}
