using System.Buffers.Binary;
using System.Text;
using Memo.CostModel;
using Memo.Model.IO;
using Memo.Planner;
using Memo.Training.Data;
using Xunit.Abstractions;

namespace Memo.Tests.IO;

/// <summary>
/// Fuzz tests for every input parser: thousands of mutated inputs each (byte flips, deletions, duplications,
/// insertions of JSON and CSV tokens and of edge numbers, value swaps, truncations), from a fixed seed. Every
/// input must either parse or fail with a <see cref="MemoException"/> whose message is one printable line; any
/// other exception type fails the test, and each parser's batch must finish within its time limit (no hangs).
/// </summary>
public sealed class ParserFuzzTests(ITestOutputHelper output) : IDisposable
{
    private const int Cases = 3000;
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);
    private readonly TempDir _temp = new();

    private string _dir => _temp.Path;

    public void Dispose() => _temp.Dispose();

    private static readonly string[] Tokens =
    [
        "\"", "{", "}", "[", "]", ",", ":", "null", "true", "false", "-1", "0", "1e12", "1e400", "-1e400", "0.5", "\"yes\"", "\"\"",
        "1180591620717411303424", "9223372036854775807", "9223372036854775808", "-9223372036854775808", "2147483648", "NaN",
        "\\u0000", "\u0001\u00ff\u00fe", "\r\n", "\n", "[[[[[[[[[[[[[[[[[[[[", "{\"a\":{\"a\":{\"a\":{}}}}", "\"F64\"", "\"I8\"", "\"BOOL\"",
    ];

    /// <summary>One to three random edits of <paramref name="text"/>.</summary>
    private static string Mutate(string text, Random rng)
    {
        var sb = new StringBuilder(text);
        int edits = rng.Next(1, 4);
        for (int e = 0; e < edits; e++)
        {
            int at = sb.Length == 0 ? 0 : rng.Next(sb.Length);
            switch (rng.Next(7))
            {
                case 0 when sb.Length > 0:
                    sb[at] = (char)rng.Next(0, 256);
                    break;
                case 1 when sb.Length > 0:
                    sb.Remove(at, Math.Min(rng.Next(1, 12), sb.Length - at));
                    break;
                case 2 when sb.Length > 0:
                    int len = Math.Min(rng.Next(1, 24), sb.Length - at);
                    sb.Insert(at, sb.ToString(at, len));
                    break;
                case 3:
                    sb.Insert(at, Tokens[rng.Next(Tokens.Length)]);
                    break;
                case 4:
                    // Replace the value after a ':' (JSON) or a ',' (CSV) with a token.
                    string s = sb.ToString();
                    int sep = s.IndexOfAny([':', ','], at);
                    if (sep < 0) break;
                    int end = s.IndexOfAny([',', '}', '\n'], sep + 1);
                    if (end < 0) end = s.Length;
                    sb.Remove(sep + 1, end - sep - 1).Insert(sep + 1, Tokens[rng.Next(Tokens.Length)]);
                    break;
                case 5:
                    sb.Length = rng.Next(sb.Length + 1);
                    break;
                default:
                    sb.Insert(at, (char)rng.Next(0x20, 0x7f));
                    break;
            }
        }
        return sb.ToString();
    }

    /// <summary>Runs <paramref name="parse"/> on <see cref="Cases"/> inputs and checks the outcome of each.</summary>
    private async Task Fuzz(string name, Func<Random, int, object> make, Action<object> parse)
    {
        // A fixed seed per parser (string hash codes are randomized per process).
        var rng = new Random(name.Sum(c => c) * 31 + 13);
        int ok = 0, refused = 0;
        var work = Task.Run(() =>
        {
            for (int i = 0; i < Cases; i++)
            {
                object input = make(rng, i);
                try
                {
                    parse(input);
                    ok++;
                }
                catch (MemoException e)
                {
                    refused++;
                    Assert.False(e.Message.Contains('\n', StringComparison.Ordinal), $"{name} case {i}: a message of several lines: {e.Message}");
                    Assert.False(e.Message.Any(c => char.IsControl(c)), $"{name} case {i}: control characters in: {e.Message}");
                    Assert.DoesNotContain("System.", e.Message, StringComparison.Ordinal);
                }
                catch (Exception e)
                {
                    Assert.Fail($"{name} case {i}: {e.GetType().Name}: {e.Message}\ninput: {Describe(input)}");
                }
            }
        });
        await work.WaitAsync(Limit);
        output.WriteLine($"{name}: {Cases} inputs, {ok} parsed, {refused} refused with a MemoException");
        Assert.True(refused > Cases / 10, $"{name}: only {refused} of {Cases} mutations were refused; the mutator is not reaching the parser");
    }

    private static string Describe(object input) => input switch
    {
        string s => s.Length > 400 ? s[..400] + "..." : s,
        byte[] b => Convert.ToHexString(b.AsSpan(0, Math.Min(b.Length, 200))),
        _ => input.ToString() ?? "",
    };

    private const string LlamaConfig = """
        {"model_type":"llama","hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,
         "intermediate_size":176,"vocab_size":256,"rope_theta":10000.0,"rms_norm_eps":1e-5,"max_position_embeddings":4096,
         "tie_word_embeddings":false,"hidden_act":"silu"}
        """;

    private const string Gpt2Config = """
        {"model_type":"gpt2","n_embd":64,"n_layer":2,"n_head":4,"n_inner":256,"vocab_size":256,"n_positions":128,"layer_norm_epsilon":1e-5}
        """;

    [Fact]
    public Task Config_json() => Fuzz("config.json",
        (rng, i) => Mutate(i % 2 == 0 ? LlamaConfig : Gpt2Config, rng),
        input => ModelConfig.FromJson((string)input, "config.json"));

    [Fact]
    public Task Device_profile_json() => Fuzz("profile.json",
        (rng, _) => Mutate("""{"base":"a800","host_memory_bytes":"1TiB","device_memory_bytes":85899345920,"peak_bf16_flops":3.12e14,"gpus_per_node":8,"host_link_bandwidth":2.5e10}""", rng),
        input => DeviceProfile.FromJson((string)input, "profile.json", DeviceProfile.Resolve("a800")).Validate("profile.json"));

    [Fact]
    public Task Plan_csv() => Fuzz("trace.csv",
        (rng, _) => Mutate("id,lower,upper,size,alignment\nb0,0,3,64,1\nb1,1,4,128,8\nb2,3,6,32,1\nb3,5,9,256,64\n", rng),
        input =>
        {
            var (problem, _) = PlanCsv.Parse(new StringReader((string)input), "trace.csv");
            Planners.Solve(problem, new PlannerOptions { Solver = SolverKind.BestFit, TimeLimit = TimeSpan.FromSeconds(1) });
        });

    /// <summary>A valid safetensors file: two F32 tensors and a BF16 one, with metadata.</summary>
    private static byte[] SafeTensorsFile(string dir)
    {
        string path = Path.Combine(dir, "valid.safetensors");
        var w = new SafeTensorsWriter();
        w.SetMetadata("format", "pt");
        w.Add<float>("a.weight", [2, 3], [1, 2, 3, 4, 5, 6]);
        w.Add<float>("b.bias", [3], [7, 8, 9]);
        w.Add("c", SafeTensorDType.BF16, [2], TensorBytes([0x80, 0x3f, 0x00, 0x40]));
        w.Save(path);
        return File.ReadAllBytes(path);
    }

    private static TensorBytesSource TensorBytes(byte[] bytes) => (offset, destination) => bytes.AsSpan((int)offset, destination.Length).CopyTo(destination);

    [Fact]
    public Task Safetensors_header()
    {
        byte[] valid = SafeTensorsFile(_dir);
        int headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(valid);
        string header = Encoding.UTF8.GetString(valid, 8, headerLength);
        string path = Path.Combine(_dir, "fuzz.safetensors");
        return Fuzz("safetensors",
            (rng, i) =>
            {
                byte[] bytes;
                if (i % 4 == 3)
                {
                    // Raw byte damage anywhere in the file, including the length prefix and the data.
                    bytes = (byte[])valid.Clone();
                    for (int k = rng.Next(1, 4); k > 0; k--) bytes[rng.Next(bytes.Length)] = (byte)rng.Next(256);
                    if (rng.Next(4) == 0) Array.Resize(ref bytes, rng.Next(bytes.Length));
                    return bytes;
                }
                byte[] h = Encoding.UTF8.GetBytes(Mutate(header, rng));
                byte[] data = valid.AsSpan(8 + headerLength).ToArray();
                bytes = new byte[8 + h.Length + data.Length];
                ulong n = rng.Next(8) switch { 0 => (ulong)headerLength, 1 => (ulong)rng.NextInt64(), 2 => ulong.MaxValue, _ => (ulong)h.Length };
                BinaryPrimitives.WriteUInt64LittleEndian(bytes, n);
                h.CopyTo(bytes, 8);
                data.CopyTo(bytes, 8 + h.Length);
                return bytes;
            },
            input =>
            {
                File.WriteAllBytes(path, (byte[])input);
                using var r = SafeTensorsReader.Open(path);
                foreach (var t in r.Tensors) r.ReadF32(t.Name);
            });
    }

    [Fact]
    public Task Token_shard_header()
    {
        string valid = Path.Combine(_dir, "valid.bin");
        TokenShards.WriteShard(valid, Enumerable.Range(0, 600).Select(i => (ushort)(i % 250)).ToArray());
        byte[] bytes = File.ReadAllBytes(valid);
        string path = Path.Combine(_dir, "fuzz.bin");
        int[] edge = [0, 1, -1, int.MaxValue, int.MinValue, TokenShards.Magic, TokenShards.Version, 600, 601, 599, 1 << 30];
        return Fuzz("token shard",
            (rng, i) =>
            {
                var b = (byte[])bytes.Clone();
                switch (i % 3)
                {
                    case 0:
                        // One of the three header ints (magic, version, token count) set to an edge or random value.
                        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(4 * rng.Next(3)), rng.Next(2) == 0 ? edge[rng.Next(edge.Length)] : rng.Next(int.MinValue, int.MaxValue));
                        break;
                    case 1:
                        for (int k = rng.Next(1, 5); k > 0; k--) b[rng.Next(b.Length)] = (byte)rng.Next(256);
                        break;
                    default:
                        Array.Resize(ref b, rng.Next(b.Length + 64));
                        break;
                }
                return b;
            },
            input =>
            {
                File.WriteAllBytes(path, (byte[])input);
                using var source = new TokenShardSource(path, 256);
                var inputs = new int[2 * 16];
                var targets = new int[2 * 16];
                var mask = new byte[2 * 16];
                source.NextBatch(2, 16, inputs, targets, mask);
            });
    }
}
