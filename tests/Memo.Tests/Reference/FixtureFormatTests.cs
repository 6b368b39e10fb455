using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace Memo.Tests.Reference;

/// <summary>
/// Checks the reference fixtures written by tools/reference/generate.py: every file is present,
/// the JSON files parse and agree with each other, and the safetensors files are well-formed
/// (parsed from raw bytes here, independently of the engine's reader).
/// </summary>
public class FixtureFormatTests
{
    public static TheoryData<string> Names => new() { "llama-tiny", "llama-tied", "gpt2-tiny" };

    static readonly string[] Files = ["config.json", "model.safetensors", "batch.json", "grads.safetensors", "expected.json"];

    static string Dir(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    static JsonElement Json(string name, string file) =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir(name), file))).RootElement.Clone();

    static ModelConfig Config(string name)
    {
        string path = Path.Combine(Dir(name), "config.json");
        return ModelConfig.FromJson(File.ReadAllText(path), path).Validate();
    }

    sealed record Entry(string Name, long[] Shape, long Begin, long End);

    /// <summary>Parses a safetensors file, asserting its structure; returns entries in data order and the data bytes.</summary>
    static (List<Entry> Entries, byte[] Data) ReadSafetensors(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        Assert.True(bytes.Length >= 8, $"{path}: shorter than the 8-byte header length");
        ulong headerLen = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.True(headerLen > 0 && (long)headerLen <= bytes.Length - 8, $"{path}: header length {headerLen} out of range");
        Assert.Equal(0UL, headerLen % 8);
        string headerText = Encoding.UTF8.GetString(bytes, 8, (int)headerLen);
        using var header = JsonDocument.Parse(headerText);
        Assert.Equal(JsonValueKind.Object, header.RootElement.ValueKind);

        var entries = new List<Entry>();
        bool sawMetadata = false;
        foreach (var prop in header.RootElement.EnumerateObject())
        {
            if (prop.Name == "__metadata__")
            {
                sawMetadata = true;
                Assert.Equal("pt", prop.Value.GetProperty("format").GetString());
                continue;
            }
            Assert.Equal("F32", prop.Value.GetProperty("dtype").GetString());
            long[] shape = prop.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            long[] offs = prop.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            Assert.Equal(2, offs.Length);
            Assert.All(shape, d => Assert.True(d > 0));
            Assert.Equal(4 * shape.Aggregate(1L, (a, b) => a * b), offs[1] - offs[0]);
            entries.Add(new Entry(prop.Name, shape, offs[0], offs[1]));
        }
        Assert.True(sawMetadata, $"{path}: no __metadata__ entry");

        // Data regions tile the payload exactly: contiguous from 0, no gaps, no overlaps, no trailing bytes.
        entries.Sort((a, b) => a.Begin.CompareTo(b.Begin));
        long at = 0;
        foreach (var e in entries)
        {
            Assert.Equal(at, e.Begin);
            at = e.End;
        }
        long dataStart = 8 + (long)headerLen;
        Assert.Equal(bytes.Length - dataStart, at);
        return (entries, bytes[(int)dataStart..]);
    }

    static IEnumerable<string> ExpectedNames(ModelConfig c)
    {
        if (c.Family == ModelFamily.Llama)
        {
            yield return "model.embed_tokens.weight";
            for (int i = 0; i < c.NumLayers; i++)
            {
                foreach (var s in new[] { "input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
                             "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
                             "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight" })
                    yield return $"model.layers.{i}.{s}";
            }
            yield return "model.norm.weight";
            if (!c.TieWordEmbeddings) yield return "lm_head.weight";
        }
        else
        {
            yield return "transformer.wte.weight";
            yield return "transformer.wpe.weight";
            for (int i = 0; i < c.NumLayers; i++)
            {
                foreach (var s in new[] { "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
                             "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
                             "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias" })
                    yield return $"transformer.h.{i}.{s}";
            }
            yield return "transformer.ln_f.weight";
            yield return "transformer.ln_f.bias";
        }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void All_files_are_present(string name)
    {
        foreach (var f in Files)
            Assert.True(File.Exists(Path.Combine(Dir(name), f)), $"missing fixture file {name}/{f}");
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Config_parses_and_matches_the_fixture_name(string name)
    {
        var c = Config(name);
        Assert.Equal(name.StartsWith("gpt2", StringComparison.Ordinal) ? ModelFamily.Gpt2 : ModelFamily.Llama, c.Family);
        Assert.Equal(64, c.HiddenSize);
        Assert.Equal(256, c.VocabSize);
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Weights_and_grads_are_well_formed_and_match_the_config(string name)
    {
        var c = Config(name);
        var (model, modelData) = ReadSafetensors(Path.Combine(Dir(name), "model.safetensors"));
        var (grads, gradData) = ReadSafetensors(Path.Combine(Dir(name), "grads.safetensors"));

        Assert.Equal(ExpectedNames(c).Order(StringComparer.Ordinal), model.Select(e => e.Name).Order(StringComparer.Ordinal));
        Assert.Equal(model.Select(e => (e.Name, string.Join(',', e.Shape))).OrderBy(x => x.Name, StringComparer.Ordinal),
            grads.Select(e => (e.Name, string.Join(',', e.Shape))).OrderBy(x => x.Name, StringComparer.Ordinal));
        Assert.Equal(c.ParameterCount, model.Sum(e => (e.End - e.Begin) / 4));

        // Spot-check HF layouts: the embedding is [V, C]; GPT-2 Conv1D weights are [in, out].
        string emb = c.Family == ModelFamily.Llama ? "model.embed_tokens.weight" : "transformer.wte.weight";
        Assert.Equal([c.VocabSize, c.HiddenSize], model.Single(e => e.Name == emb).Shape);
        if (c.Family == ModelFamily.Gpt2)
            Assert.Equal([c.HiddenSize, 3L * c.HiddenSize], model.Single(e => e.Name == "transformer.h.0.attn.c_attn.weight").Shape);
        else
            Assert.Equal([(long)c.NumKvHeads * c.HeadDim, c.HiddenSize], model.Single(e => e.Name == "model.layers.0.self_attn.k_proj.weight").Shape);

        // Every value is finite; every weight and every gradient tensor is nonzero somewhere.
        foreach (var (entries, data) in new[] { (model, modelData), (grads, gradData) })
        {
            foreach (var e in entries)
            {
                var values = new ReadOnlySpan<byte>(data, (int)e.Begin, (int)(e.End - e.Begin));
                double maxAbs = 0;
                for (int i = 0; i < values.Length; i += 4)
                {
                    float v = BinaryPrimitives.ReadSingleLittleEndian(values[i..]);
                    Assert.True(float.IsFinite(v), $"{name}: {e.Name} holds a non-finite value");
                    maxAbs = Math.Max(maxAbs, Math.Abs(v));
                }
                Assert.True(maxAbs > 0, $"{name}: {e.Name} is all zeros");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Batch_holds_ten_steps_of_tokens_within_the_vocabulary(string name)
    {
        var c = Config(name);
        var batch = Json(name, "batch.json");
        int b = batch.GetProperty("batch").GetInt32(), t = batch.GetProperty("seq").GetInt32();
        int[] tokens = batch.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.Equal(10 * b * t + 1, tokens.Length);
        Assert.All(tokens, tok => Assert.InRange(tok, 0, c.VocabSize - 1));
        Assert.True(t <= c.MaxPositions);
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Expected_holds_a_consistent_training_trace(string name)
    {
        var c = Config(name);
        var exp = Json(name, "expected.json");
        double loss = exp.GetProperty("loss").GetDouble();
        // Near-uniform predictions at init: the loss is close to ln(V).
        Assert.InRange(loss, Math.Log(c.VocabSize) - 0.5, Math.Log(c.VocabSize) + 0.5);
        Assert.Equal(8, exp.GetProperty("logits_sample").GetArrayLength());

        var tr = exp.GetProperty("train");
        int total = tr.GetProperty("total_steps").GetInt32(), warmup = tr.GetProperty("warmup_steps").GetInt32();
        double lr = tr.GetProperty("lr").GetDouble(), minLr = lr * tr.GetProperty("min_lr_ratio").GetDouble();
        double[] losses = tr.GetProperty("losses").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        double[] norms = tr.GetProperty("grad_norms").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        double[] lrs = tr.GetProperty("lrs").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        Assert.Equal(total, losses.Length);
        Assert.Equal(total, norms.Length);
        Assert.Equal(total, lrs.Length);
        Assert.Equal(loss, losses[0]);
        Assert.All(norms, n => Assert.True(n > 0 && double.IsFinite(n)));

        // Warmup then cosine decay to min_lr, as documented in tools/reference/README.md.
        for (int s = 0; s < total; s++)
        {
            double want = s < warmup
                ? lr * (s + 1) / warmup
                : minLr + 0.5 * (lr - minLr) * (1 + Math.Cos(Math.PI * (s - warmup) / Math.Max(1, total - warmup)));
            Assert.Equal(want, lrs[s], 1e-15);
        }
    }
}
