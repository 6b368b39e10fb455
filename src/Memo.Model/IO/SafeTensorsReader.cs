using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;

namespace Memo.Model.IO;

/// <summary>
/// An open safetensors file. <see cref="Open"/> reads and validates only the header (every check
/// the reference reader makes, each failure a one-line <see cref="MemoException"/> naming the file);
/// tensor data is read on demand with positioned reads in chunks, so files of any size (offsets are
/// long) can be read without holding them in memory.
/// </summary>
public sealed unsafe class SafeTensorsReader : IDisposable
{
    private const string Hint = "the file is truncated or not safetensors — re-save the checkpoint";
    private const int ChunkBytes = 4 << 20;

    private readonly SafeFileHandle _handle;
    private readonly Dictionary<string, SafeTensorInfo> _byName;
    private readonly long _dataStart;

    private SafeTensorsReader(string path, SafeFileHandle handle, List<SafeTensorInfo> tensors,
        Dictionary<string, string> metadata, long dataStart)
    {
        Path = path;
        _handle = handle;
        Tensors = tensors;
        Metadata = metadata;
        _dataStart = dataStart;
        _byName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
    }

    /// <summary>The path the file was opened with (used in every message).</summary>
    public string Path { get; }

    /// <summary>Tensors in file order (by data offset).</summary>
    public IReadOnlyList<SafeTensorInfo> Tensors { get; }

    /// <summary>The header's <c>__metadata__</c> entries (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Offset of the data section in the file (8 + header length).</summary>
    public long DataStart => _dataStart;

    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>The tensor called <paramref name="name"/>; a <see cref="MemoException"/> if there is none.</summary>
    public SafeTensorInfo Get(string name)
    {
        if (_byName.TryGetValue(name, out var t)) return t;
        string some = string.Join(", ", Tensors.Take(8).Select(x => $"'{x.Name}'"));
        throw new MemoException($"{Path}: has no tensor '{name}' (it has {Tensors.Count}: {some}{(Tensors.Count > 8 ? ", ..." : "")}); the checkpoint was saved for another model");
    }

    /// <summary>Opens and validates <paramref name="path"/>.</summary>
    public static SafeTensorsReader Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new MemoException($"{path}: no such file; check the path", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new MemoException($"{path}: cannot open ({e.Message}); check the path and permissions", e);
        }
        try
        {
            return Parse(path, handle);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    private static SafeTensorsReader Parse(string path, SafeFileHandle handle)
    {
        long size = RandomAccess.GetLength(handle);
        if (size < 8)
            throw new MemoException($"{path}: file is {size} bytes, shorter than the 8-byte header length; {Hint}");
        Span<byte> nbuf = stackalloc byte[8];
        ReadExactly(path, handle, nbuf, 0);
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(nbuf);
        if (n > (ulong)(size - 8))
            throw new MemoException($"{path}: header length {n} exceeds the file size {size}; {Hint}");
        if (n > SafeTensorsFormat.MaxHeaderBytes)
            throw new MemoException($"{path}: header length {n} is absurd (over {SafeTensorsFormat.MaxHeaderBytes} bytes); {Hint}");
        if (n < 2)
            throw new MemoException($"{path}: header length {n} is too small for a JSON object; {Hint}");
        var header = new byte[(int)n];
        ReadExactly(path, handle, header, 8);
        long dataStart = 8 + (long)n;
        long dataSize = size - dataStart;

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header, new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new MemoException($"{path}: header is not valid JSON ({OneLine(e.Message)}); {Hint}", e);
        }
        using (doc)
        {
            try
            {
                if (doc.RootElement.ValueKind != JsonValueKind.Object)
                    throw new MemoException($"{path}: header is JSON but not an object ({doc.RootElement.ValueKind}); {Hint}");
                var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
                var tensors = new List<SafeTensorInfo>();
                var seen = new HashSet<string>(StringComparer.Ordinal);
                foreach (var prop in doc.RootElement.EnumerateObject())
                {
                    if (!seen.Add(prop.Name))
                        throw new MemoException($"{path}: header names '{Sizes.Printable(prop.Name)}' twice; {Hint}");
                    if (prop.Name == SafeTensorsFormat.MetadataKey)
                    {
                        ParseMetadata(path, prop.Value, metadata);
                        continue;
                    }
                    tensors.Add(ParseTensor(path, prop.Name, prop.Value));
                }
                CheckLayout(path, tensors, dataSize);
                return new SafeTensorsReader(path, handle, tensors, metadata, dataStart);
            }
            catch (InvalidOperationException e)
            {
                // Names and strings that are not valid UTF-8 fail when they are read, not when the JSON is parsed.
                throw new MemoException($"{path}: header holds text that is not valid UTF-8 ({OneLine(e.Message)}); {Hint}", e);
            }
        }
    }

    private static void ParseMetadata(string path, JsonElement v, Dictionary<string, string> metadata)
    {
        if (v.ValueKind == JsonValueKind.Null) return;
        if (v.ValueKind != JsonValueKind.Object)
            throw new MemoException($"{path}: __metadata__ is not an object of strings; {Hint}");
        foreach (var kv in v.EnumerateObject())
        {
            if (kv.Value.ValueKind != JsonValueKind.String)
                throw new MemoException($"{path}: __metadata__ entry '{Sizes.Printable(kv.Name)}' is not a string; {Hint}");
            metadata[kv.Name] = kv.Value.GetString()!;
        }
    }

    private static SafeTensorInfo ParseTensor(string path, string name, JsonElement v)
    {
        string where = $"{path}: tensor '{Sizes.Printable(name)}'";
        if (v.ValueKind != JsonValueKind.Object)
            throw new MemoException($"{where}: entry is not an object with dtype, shape and data_offsets; {Hint}");
        if (!v.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
            throw new MemoException($"{where}: missing or non-string \"dtype\"; {Hint}");
        string dtName = dt.GetString()!;
        if (!SafeTensorDTypes.TryParse(dtName, out var dtype))
            throw new MemoException($"{where}: unknown dtype '{Sizes.Printable(dtName)}' (known: {SafeTensorDTypes.AllNames}); {Hint}");
        if (!v.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array)
            throw new MemoException($"{where}: missing or non-array \"shape\"; {Hint}");
        var shape = new long[sh.GetArrayLength()];
        int i = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind == JsonValueKind.Number && !d.TryGetInt64(out _) && d.GetRawText().All(char.IsAsciiDigit))
                throw new MemoException($"{where}: shape entry {Sizes.Printable(d.GetRawText())} is out of range (at most {long.MaxValue}); {Hint}");
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long dim))
                throw new MemoException($"{where}: shape entry {Sizes.Printable(d.GetRawText())} is not an integer; {Hint}");
            if (dim < 0)
                throw new MemoException($"{where}: shape entry {dim} is negative; {Hint}");
            shape[i++] = dim;
        }
        if (!v.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw new MemoException($"{where}: \"data_offsets\" must be an array [begin, end]; {Hint}");
        long begin = Offset(where, off[0]), end = Offset(where, off[1]);
        if (end < begin)
            throw new MemoException($"{where}: data_offsets [{begin}, {end}] end before they begin; {Hint}");
        long count = SafeTensorsFormat.ElementCount(shape);
        if (count < 0 || count > long.MaxValue / dtype.Size())
            throw new MemoException($"{where}: shape {SafeTensorsFormat.ShapeText(shape)} overflows a 64-bit size; {Hint}");
        long bytes = count * dtype.Size();
        if (end - begin != bytes)
            throw new MemoException($"{where}: data_offsets [{begin}, {end}] hold {end - begin} bytes but {dtype.Name()} {SafeTensorsFormat.ShapeText(shape)} needs {bytes}; {Hint}");
        return new SafeTensorInfo(name, dtype, shape, begin, end);
    }

    private static long Offset(string where, JsonElement e)
    {
        if (e.ValueKind == JsonValueKind.Number && !e.TryGetInt64(out _) && e.GetRawText().All(char.IsAsciiDigit))
            throw new MemoException($"{where}: data offset {Sizes.Printable(e.GetRawText())} is out of range (at most {long.MaxValue}); {Hint}");
        if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt64(out long x) || x < 0)
            throw new MemoException($"{where}: data offset {Sizes.Printable(e.GetRawText())} is not a non-negative integer; {Hint}");
        return x;
    }

    /// <summary>Sorts by offset and checks that the tensors tile the data section exactly.</summary>
    private static void CheckLayout(string path, List<SafeTensorInfo> tensors, long dataSize)
    {
        tensors.Sort(static (a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
        long at = 0;
        SafeTensorInfo? prev = null;
        foreach (var t in tensors)
        {
            if (t.End > dataSize)
                throw new MemoException($"{path}: tensor '{t.Name}' data_offsets [{t.Begin}, {t.End}] run past the end of the data ({dataSize} bytes); {Hint}");
            if (t.Begin < at)
                throw new MemoException($"{path}: tensor '{t.Name}' data_offsets [{t.Begin}, {t.End}] overlap tensor '{prev!.Name}' [{prev.Begin}, {prev.End}]; {Hint}");
            if (t.Begin > at)
                throw new MemoException($"{path}: data bytes [{at}, {t.Begin}) belong to no tensor (a hole before '{t.Name}'); {Hint}");
            at = t.End;
            prev = t;
        }
        if (at != dataSize)
            throw new MemoException($"{path}: {dataSize - at} bytes after the last tensor's data (the header covers {at} of {dataSize}); {Hint}");
    }

    /// <summary>
    /// Reads an F32 tensor (F16 and BF16 tensors are widened) into <paramref name="destination"/>,
    /// after checking that its shape is <paramref name="expectedShape"/>.
    /// </summary>
    public void ReadF32(string name, float* destination, ReadOnlySpan<long> expectedShape)
    {
        var t = Get(name);
        if (!t.Shape.SequenceEqual(expectedShape))
            throw new MemoException($"{Path}: tensor '{name}' has shape {t.ShapeText} but the model expects {SafeTensorsFormat.ShapeText(expectedShape)}; the checkpoint was saved for another model config");
        ReadF32(t, destination);
    }

    /// <summary>Reads an F32/F16/BF16 tensor into a new array (for tensors under 2^31 elements, e.g. in tests).</summary>
    public float[] ReadF32(string name)
    {
        var t = Get(name);
        var result = new float[CheckedArrayLength(t)];
        fixed (float* p = result) ReadF32(t, p);
        return result;
    }

    /// <summary>Reads a tensor whose dtype stores <typeparamref name="T"/> exactly into a new array.</summary>
    public T[] Read<T>(string name) where T : unmanaged
    {
        var t = Get(name);
        var want = SafeTensorDTypes.Of<T>();
        if (t.DType != want)
            throw new MemoException($"{Path}: tensor '{name}' has dtype {t.DType.Name()} but {want.Name()} was expected; the checkpoint was saved by another program or version");
        var result = new T[CheckedArrayLength(t)];
        fixed (T* p = result) ReadRaw(t, p);
        return result;
    }

    /// <summary>Copies a tensor's raw bytes to <paramref name="destination"/>, which must hold exactly <paramref name="byteCount"/> bytes.</summary>
    public void ReadRaw(string name, void* destination, long byteCount)
    {
        var t = Get(name);
        if (t.ByteLength != byteCount)
            throw new MemoException($"{Path}: tensor '{name}' ({t.DType.Name()} {t.ShapeText}) holds {t.ByteLength} bytes but {byteCount} were expected; the checkpoint was saved for another model config");
        ReadRaw(t, destination);
    }

    private void ReadRaw(SafeTensorInfo t, void* destination)
    {
        byte* dst = (byte*)destination;
        for (long done = 0; done < t.ByteLength;)
        {
            int n = (int)Math.Min(1L << 30, t.ByteLength - done);
            ReadExactly(Path, _handle, new Span<byte>(dst + done, n), _dataStart + t.Begin + done);
            done += n;
        }
    }

    private void ReadF32(SafeTensorInfo t, float* destination)
    {
        switch (t.DType)
        {
            case SafeTensorDType.F32:
                ReadRaw(t, destination);
                return;
            case SafeTensorDType.F16:
            case SafeTensorDType.BF16:
                break;
            default:
                throw new MemoException($"{Path}: tensor '{Sizes.Printable(t.Name)}' has dtype {t.DType.Name()}, which Memo does not load as weights (it reads F32, F16 and BF16); convert the checkpoint to float32");
        }
        byte[] buf = ArrayPool<byte>.Shared.Rent(ChunkBytes);
        try
        {
            long count = t.ElementCount;
            for (long done = 0; done < count;)
            {
                int m = (int)Math.Min(ChunkBytes / 2, count - done);
                var chunk = buf.AsSpan(0, 2 * m);
                ReadExactly(Path, _handle, chunk, _dataStart + t.Begin + 2 * done);
                var src = MemoryMarshal.Cast<byte, ushort>(chunk);
                float* dst = destination + done;
                if (t.DType == SafeTensorDType.BF16)
                {
                    for (int i = 0; i < m; i++) dst[i] = BitConverter.Int32BitsToSingle(src[i] << 16);
                }
                else
                {
                    for (int i = 0; i < m; i++) dst[i] = (float)BitConverter.UInt16BitsToHalf(src[i]);
                }
                done += m;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buf);
        }
    }

    private int CheckedArrayLength(SafeTensorInfo t)
    {
        if (t.ElementCount > Array.MaxLength)
            throw new MemoException($"{Path}: tensor '{t.Name}' has {t.ElementCount} elements, too many for a managed array; read it into native memory");
        return (int)t.ElementCount;
    }

    private static void ReadExactly(string path, SafeFileHandle handle, Span<byte> buffer, long offset)
    {
        while (!buffer.IsEmpty)
        {
            int n = RandomAccess.Read(handle, buffer, offset);
            if (n <= 0)
                throw new MemoException($"{path}: file ended at byte {offset} while reading; it was truncated or changed while open — re-save the checkpoint");
            buffer = buffer[n..];
            offset += n;
        }
    }

    private static string OneLine(string s) => Sizes.Printable(s.Replace('\n', ' ').Replace('\r', ' '), 200);

    public void Dispose() => _handle.Dispose();
}
