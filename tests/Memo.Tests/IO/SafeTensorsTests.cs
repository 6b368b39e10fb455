using System.Buffers.Binary;
using System.Text;
using Memo.Model.IO;

namespace Memo.Tests.IO;

public sealed unsafe class SafeTensorsTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>A file as the format spec lays it out: u64 LE header length, header padded with spaces to 8, data.</summary>
    private static byte[] Build(string json, ReadOnlySpan<byte> data, bool pad = true)
    {
        var header = Encoding.UTF8.GetBytes(json);
        int padded = pad ? (header.Length + 7) / 8 * 8 : header.Length;
        var file = new byte[8 + padded + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)padded);
        header.CopyTo(file, 8);
        file.AsSpan(8 + header.Length, padded - header.Length).Fill((byte)' ');
        data.CopyTo(file.AsSpan(8 + padded));
        return file;
    }

    private static byte[] Floats(params float[] xs)
    {
        var b = new byte[4 * xs.Length];
        for (int i = 0; i < xs.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(4 * i), xs[i]);
        return b;
    }

    [Fact]
    public void Round_trip_keeps_every_dtype_shape_value_and_metadata()
    {
        string path = _dir.File("rt.safetensors");
        float[] w = [1.5f, -2, 3, 4, 5, 6];
        int[] ids = [7, -8, 9, int.MaxValue];
        long[] steps = [long.MinValue, 42];
        byte[] flags = [0, 1, 255, 3, 4];
        double[] d = [Math.PI];
        new SafeTensorsWriter()
            .SetMetadata("format", "pt")
            .SetMetadata("step", "12")
            .Add("w", [2, 3], new ReadOnlyMemory<float>(w))
            .Add("ids", [4], new ReadOnlyMemory<int>(ids))
            .Add("steps", [2], new ReadOnlyMemory<long>(steps))
            .Add("flags", [5], new ReadOnlyMemory<byte>(flags))
            .Add("d", [1, 1], new ReadOnlyMemory<double>(d))
            .Add("scalar", [], new ReadOnlyMemory<float>([0.25f]))
            .Add("empty", [0, 3], ReadOnlyMemory<float>.Empty)
            .Save(path);

        using var r = SafeTensorsReader.Open(path);
        Assert.Equal(["format", "step"], r.Metadata.Keys.Order());
        Assert.Equal("12", r.Metadata["step"]);
        Assert.Equal(w, r.ReadF32("w"));
        Assert.Equal(ids, r.Read<int>("ids"));
        Assert.Equal(steps, r.Read<long>("steps"));
        Assert.Equal(flags, r.Read<byte>("flags"));
        Assert.Equal(d, r.Read<double>("d"));
        Assert.Equal([0.25f], r.ReadF32("scalar"));
        Assert.Empty(r.ReadF32("empty"));
        Assert.Equal([2L, 3], r.Get("w").Shape.ToArray());
        Assert.Equal([0L, 3], r.Get("empty").Shape.ToArray());
        Assert.Equal(0, r.Get("scalar").Shape.Length);
        Assert.True(r.Contains("flags"));
        Assert.False(r.Contains("nope"));

        // Reference writer order: dtype rank descending (I64, F64, F32, I32, U8), then name; every tensor aligned.
        Assert.Equal(["steps", "d", "empty", "scalar", "w", "ids", "flags"], r.Tensors.Select(t => t.Name));
        Assert.Equal(0, r.DataStart % 8);
        Assert.All(r.Tensors, t => Assert.Equal(0, t.Begin % t.DType.Size()));
    }

    [Fact]
    public void Bytes_match_the_reference_writer()
    {
        // The reference Rust/Python writer's output for these inputs, built by hand from the spec:
        // compact JSON, keys dtype/shape/data_offsets, header padded with spaces to a multiple of 8.
        string a = _dir.File("a.safetensors");
        new SafeTensorsWriter().Add("attn.0", [1, 2, 3], new ReadOnlyMemory<float>([0, 1, 2, 3, 4, 5])).Save(a);
        const string ja = """{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}""";
        Assert.Equal(64, ja.Length); // no padding needed
        Assert.Equal(Build(ja, Floats(0, 1, 2, 3, 4, 5)), File.ReadAllBytes(a));

        string b = _dir.File("b.safetensors");
        new SafeTensorsWriter().Add("attn0", [1, 1, 2, 3], new ReadOnlyMemory<float>([0, 1, 2, 3, 4, 5])).Save(b);
        const string jb = """{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       """;
        Assert.Equal(72, jb.Length); // 65 bytes of JSON + 7 spaces
        Assert.Equal(Build(jb, Floats(0, 1, 2, 3, 4, 5), pad: false), File.ReadAllBytes(b));

        string c = _dir.File("c.safetensors");
        new SafeTensorsWriter().SetMetadata("framework", "pt").Save(c);
        byte[] expectedC = [40, 0, 0, 0, 0, 0, 0, 0, .. Encoding.ASCII.GetBytes("""{"__metadata__":{"framework":"pt"}}     """)];
        Assert.Equal(expectedC, File.ReadAllBytes(c));

        string e = _dir.File("e.safetensors");
        new SafeTensorsWriter().Save(e);
        Assert.Equal([8, 0, 0, 0, 0, 0, 0, 0, (byte)'{', (byte)'}', 32, 32, 32, 32, 32, 32], File.ReadAllBytes(e));

        // Mixed dtypes: 8-byte types first, then by name; offsets accumulate in that order.
        string m = _dir.File("m.safetensors");
        new SafeTensorsWriter()
            .Add("b", [1], new ReadOnlyMemory<float>([2f]))
            .Add("c", [2], new ReadOnlyMemory<byte>([9, 8]))
            .Add("a2", [1], new ReadOnlyMemory<float>([1f]))
            .Add("a", [1], new ReadOnlyMemory<long>([-1]))
            .Save(m);
        const string jm = """{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},"a2":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},"b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]},"c":{"dtype":"U8","shape":[2],"data_offsets":[16,18]}}""";
        byte[] dm = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, .. Floats(1f, 2f), 9, 8];
        Assert.Equal(Build(jm, dm), File.ReadAllBytes(m));
    }

    [Fact]
    public void Reads_a_hand_built_file_with_unsorted_header_and_escaped_names()
    {
        // Entries need not be in offset order; names may contain escapes; metadata may come last.
        string json = """{"z\"q":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},"a":{"dtype":"I32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"k":"v"}}""";
        byte[] data = [1, 0, 0, 0, 2, 0, 0, 0, .. Floats(0.5f, -1f)];
        string path = _dir.File("h.safetensors");
        File.WriteAllBytes(path, Build(json, data));
        using var r = SafeTensorsReader.Open(path);
        Assert.Equal(["a", "z\"q"], r.Tensors.Select(t => t.Name));
        Assert.Equal([1, 2], r.Read<int>("a"));
        Assert.Equal([0.5f, -1f], r.ReadF32("z\"q"));
        Assert.Equal("v", r.Metadata["k"]);
    }

    [Fact]
    public void Pointer_and_callback_sources_round_trip_into_native_memory()
    {
        const int n = 1000;
        using var src = new NativeBuffer(n * 4);
        for (int i = 0; i < n; i++) src.Floats[i] = i * 0.5f - 7;
        string path = _dir.File("p.safetensors");
        new SafeTensorsWriter()
            .Add("ptr", SafeTensorDType.F32, [10, 100], src.Pointer)
            .Add("cb", SafeTensorDType.I32, [n], (offset, dest) =>
            {
                for (int i = 0; i < dest.Length; i += 4)
                    BinaryPrimitives.WriteInt32LittleEndian(dest[i..], (int)((offset + i) / 4) * 3);
            })
            .Save(path);
        using var r = SafeTensorsReader.Open(path);
        using var dst = new NativeBuffer(n * 4);
        r.ReadF32("ptr", dst.Floats, [10, 100]);
        for (int i = 0; i < n; i++) Assert.Equal(src.Floats[i], dst.Floats[i]);
        int[] cb = r.Read<int>("cb");
        for (int i = 0; i < n; i++) Assert.Equal(3 * i, cb[i]);
        r.ReadRaw("cb", dst.Pointer, 4 * n);
        Assert.Equal(3 * 999, ((int*)dst.Pointer)[999]);
    }

    [Fact]
    public void Half_precision_tensors_widen_to_f32_across_read_chunks()
    {
        // 2.1M two-byte elements span more than one 4 MiB read chunk.
        const int n = 2_100_000;
        var half = new Half[n];
        var bf16 = new ushort[n];
        for (int i = 0; i < n; i++)
        {
            float x = (i % 255 - 127) * 0.5f; // at most 8 significant bits: exact in F16 and BF16
            half[i] = (Half)x;
            bf16[i] = (ushort)(BitConverter.SingleToInt32Bits(x) >> 16);
        }
        string path = _dir.File("h16.safetensors");
        new SafeTensorsWriter()
            .Add("h", [n], new ReadOnlyMemory<Half>(half))
            .Add("b", SafeTensorDType.BF16, [n], (offset, dest) =>
            {
                for (int i = 0; i < dest.Length; i += 2) BinaryPrimitives.WriteUInt16LittleEndian(dest[i..], bf16[(offset + i) / 2]);
            })
            .Save(path);
        using var r = SafeTensorsReader.Open(path);
        float[] h = r.ReadF32("h"), b = r.ReadF32("b");
        for (int i = 0; i < n; i += 997)
        {
            float x = (i % 255 - 127) * 0.5f;
            Assert.Equal(x, h[i]);
            Assert.Equal(x, b[i]);
        }
        Assert.Equal((float)half[n - 1], h[n - 1]);
        Assert.Equal(BitConverter.Int32BitsToSingle(bf16[n - 1] << 16), b[n - 1]);
    }

    [Fact]
    public void Shape_mismatch_and_missing_tensor_say_what_the_model_expects()
    {
        string path = _dir.File("s.safetensors");
        new SafeTensorsWriter().Add("w", [2, 3], new ReadOnlyMemory<float>(new float[6])).Save(path);
        using var r = SafeTensorsReader.Open(path);
        using var dst = new NativeBuffer(6 * 4);
        var e = Assert.Throws<MemoException>(() => r.ReadF32("w", dst.Floats, [3, 2]));
        Assert.Equal($"{path}: tensor 'w' has shape [2, 3] but the model expects [3, 2]; the checkpoint was saved for another model config", e.Message);
        e = Assert.Throws<MemoException>(() => r.ReadF32("v", dst.Floats, [2, 3]));
        Assert.StartsWith($"{path}: has no tensor 'v' (it has 1: 'w')", e.Message, StringComparison.Ordinal);
        var e2 = Assert.Throws<MemoException>(() => r.Read<int>("w"));
        Assert.Contains("has dtype F32 but I32 was expected", e2.Message, StringComparison.Ordinal);
    }

    private const string Good = """{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"I32","shape":[2],"data_offsets":[24,32]}}""";

    public static TheoryData<string, string> CorruptHeaders => new()
    {
        { """{"a": [1,2,""", "header is not valid JSON" },
        { """[1, 2, 3]""", "header is JSON but not an object (Array)" },
        { Good.Replace("\"I32\"", "\"I31\""), "tensor 'b': unknown dtype 'I31' (known: BOOL, U8" },
        { Good.Replace("[2,3]", "[2,-3]"), "tensor 'a': shape entry -3 is negative" },
        { Good.Replace("[2,3]", "[2,1.5]"), "tensor 'a': shape entry 1.5 is not an integer" },
        { Good.Replace("[2,3]", "[2,2]"), "tensor 'a': data_offsets [0, 24] hold 24 bytes but F32 [2, 2] needs 16" },
        { Good.Replace("[24,32]", "[24,40]").Replace("[2]", "[4]"), "tensor 'b' data_offsets [24, 40] run past the end of the data (32 bytes)" },
        { Good.Replace("[0,24]", "[4,28]").Replace("[24,32]", "[0,8]"), "tensor 'a' data_offsets [4, 28] overlap tensor 'b' [0, 8]" },
        { Good.Replace("[2,3]", "[2,2]").Replace("[0,24]", "[0,16]"), "data bytes [16, 24) belong to no tensor (a hole before 'b')" },
        { Good.Replace("[24,32]", "[32,24]"), "tensor 'b': data_offsets [32, 24] end before they begin" },
        { Good.Replace("[24,32]", "[24,-32]"), "tensor 'b': data offset -32 is not a non-negative integer" },
        { Good.Replace("\"shape\":[2],", ""), "tensor 'b': missing or non-array \"shape\"" },
        { Good.Replace("}}", "},\"__metadata__\":{\"n\":1}}"), "__metadata__ entry 'n' is not a string" },
        { Good.Replace("}}", "},\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[32,32]}}"), "header names 'a' twice" },
        { Good.Replace("[2,3]", "[4294967296,4294967296]"), "shape [4294967296, 4294967296] overflows a 64-bit size" },
    };

    [Theory]
    [MemberData(nameof(CorruptHeaders))]
    public void Corrupt_headers_give_one_clear_line_naming_the_file(string json, string expected)
    {
        string path = _dir.File("bad.safetensors");
        File.WriteAllBytes(path, Build(json, new byte[32]));
        var e = Assert.Throws<MemoException>(() => SafeTensorsReader.Open(path));
        Assert.StartsWith(path + ": ", e.Message, StringComparison.Ordinal);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.EndsWith("the file is truncated or not safetensors — re-save the checkpoint", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
        File.WriteAllBytes(path, Build(Good, new byte[32])); // the unpatched file is valid
        using var ok = SafeTensorsReader.Open(path);
        Assert.Equal(2, ok.Tensors.Count);
    }

    private string WriteValid()
    {
        string path = _dir.File("v.safetensors");
        new SafeTensorsWriter()
            .Add("a", [2, 3], new ReadOnlyMemory<float>([1, 2, 3, 4, 5, 6]))
            .Add("b", [2], new ReadOnlyMemory<int>([7, 8]))
            .Save(path);
        return path;
    }

    private static string Open(string path) => Assert.Throws<MemoException>(() => SafeTensorsReader.Open(path)).Message;

    [Fact]
    public void Truncated_files_are_reported()
    {
        string path = WriteValid();
        byte[] good = File.ReadAllBytes(path);
        long headerLen = BinaryPrimitives.ReadInt64LittleEndian(good);

        File.WriteAllBytes(path, good[..5]);
        Assert.Equal($"{path}: file is 5 bytes, shorter than the 8-byte header length; the file is truncated or not safetensors — re-save the checkpoint", Open(path));

        File.WriteAllBytes(path, good[..20]);
        Assert.Equal($"{path}: header length {headerLen} exceeds the file size 20; the file is truncated or not safetensors — re-save the checkpoint", Open(path));

        File.WriteAllBytes(path, good[..^4]);
        Assert.Contains("tensor 'b' data_offsets [24, 32] run past the end of the data (28 bytes)", Open(path), StringComparison.Ordinal);

        File.WriteAllBytes(path, [.. good, 0, 0, 0]);
        Assert.Contains("3 bytes after the last tensor's data (the header covers 32 of 35)", Open(path), StringComparison.Ordinal);

        var patched = (byte[])good.Clone();
        BinaryPrimitives.WriteUInt64LittleEndian(patched, 9999999);
        File.WriteAllBytes(path, patched);
        Assert.Equal($"{path}: header length 9999999 exceeds the file size {good.Length}; the file is truncated or not safetensors — re-save the checkpoint", Open(path));

        BinaryPrimitives.WriteUInt64LittleEndian(patched, ulong.MaxValue);
        File.WriteAllBytes(path, patched);
        Assert.Contains($"header length {ulong.MaxValue} exceeds the file size", Open(path), StringComparison.Ordinal);

        patched = (byte[])good.Clone();
        patched[8] = 0xFF; // invalid UTF-8 where '{' was
        File.WriteAllBytes(path, patched);
        Assert.Contains("header is not valid JSON", Open(path), StringComparison.Ordinal);
    }

    [Fact]
    public void Absurd_header_length_is_rejected_without_reading_it()
    {
        // A sparse 150 MB file whose first 8 bytes claim a 120 MB header.
        string path = _dir.File("huge.safetensors");
        using (var fs = new FileStream(path, FileMode.Create))
        {
            Span<byte> n = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(n, 120_000_000);
            fs.Write(n);
            fs.SetLength(150_000_000);
        }
        Assert.Contains("header length 120000000 is absurd (over 100000000 bytes)", Open(path), StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_file_is_reported()
    {
        string path = _dir.File("none.safetensors");
        Assert.Equal($"{path}: no such file; check the path", Open(path));
    }

    [Fact]
    public void Save_is_atomic_when_writing_fails()
    {
        string path = WriteValid();
        byte[] before = File.ReadAllBytes(path);
        var w = new SafeTensorsWriter()
            .Add("x", [1000], new ReadOnlyMemory<float>(new float[1000]))
            .Add("y", SafeTensorDType.F32, [1 << 21], (offset, dest) =>
            {
                if (offset > 0) throw new InvalidOperationException("device copy failed");
                dest.Fill(1);
            });
        var e = Assert.Throws<InvalidOperationException>(() => w.Save(path));
        Assert.Equal("device copy failed", e.Message);
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal([path], Directory.GetFiles(_dir.Path)); // no temporary file left behind

        var bad = Assert.Throws<MemoException>(() => new SafeTensorsWriter().Save(_dir.File("no/such/dir/x.safetensors")));
        Assert.Contains("does not exist; create it first", bad.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Writer_rejects_programming_errors()
    {
        var w = new SafeTensorsWriter().Add("a", [2], new ReadOnlyMemory<float>([1, 2]));
        Assert.Throws<ArgumentException>(() => w.Add("a", [2], new ReadOnlyMemory<float>([1, 2])));
        Assert.Throws<ArgumentException>(() => w.Add("__metadata__", [1], new ReadOnlyMemory<float>([1])));
        Assert.Throws<ArgumentException>(() => w.Add("c", [3], new ReadOnlyMemory<float>([1, 2])));
        Assert.Throws<ArgumentException>(() => w.Add("d", [-1], new ReadOnlyMemory<float>([])));
    }
}
