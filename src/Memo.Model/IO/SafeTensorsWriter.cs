using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace Memo.Model.IO;

/// <summary>
/// Fills <paramref name="destination"/> with the tensor's bytes starting at <paramref name="byteOffset"/>
/// (relative to the tensor's first byte). Used for data that is not in host memory (device tensors)
/// or that is produced on the fly; called with consecutive chunks of at most 4 MiB.
/// </summary>
public delegate void TensorBytesSource(long byteOffset, Span<byte> destination);

/// <summary>
/// Collects tensors and string metadata, then writes one safetensors file atomically
/// (<see cref="AtomicFile"/>). Tensors are laid out as the reference Python/Rust writer lays them
/// out: by dtype rank descending (8-byte types first), then by name in ordinal order, so every
/// tensor's data is aligned to its element size; the JSON header is compact with
/// <c>__metadata__</c> first (keys in insertion order) and is padded with spaces to a multiple
/// of 8 bytes. A file written here is byte-identical to the reference writer's for the same
/// tensors and at most one metadata entry (the reference writer keeps metadata in a hash map).
/// Data is read from the sources only during <see cref="Save"/>; pointers must stay valid until then.
/// </summary>
public sealed unsafe class SafeTensorsWriter
{
    private const int ChunkBytes = 4 << 20;

    private readonly List<Entry> _tensors = [];
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private readonly List<KeyValuePair<string, string>> _metadata = [];

    private sealed class Entry(string name, SafeTensorDType dtype, long[] shape, long bytes)
    {
        public string Name { get; } = name;
        public SafeTensorDType DType { get; } = dtype;
        public long[] Shape { get; } = shape;
        public long Bytes { get; } = bytes;
        public nint Pointer { get; init; }
        public Action<Stream>? Managed { get; init; }
        public TensorBytesSource? Source { get; init; }
    }

    public int Count => _tensors.Count;

    /// <summary>Sets a <c>__metadata__</c> entry (replacing an earlier value for the same key).</summary>
    public SafeTensorsWriter SetMetadata(string key, string value)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        int i = _metadata.FindIndex(kv => kv.Key == key);
        if (i >= 0) _metadata[i] = new(key, value);
        else _metadata.Add(new(key, value));
        return this;
    }

    /// <summary>Adds a tensor whose bytes lie in host memory at <paramref name="data"/> (valid until <see cref="Save"/>).</summary>
    public SafeTensorsWriter Add(string name, SafeTensorDType dtype, ReadOnlySpan<long> shape, void* data)
    {
        long bytes = CheckNew(name, dtype, shape);
        if (data == null && bytes > 0) throw new ArgumentNullException(nameof(data));
        _tensors.Add(new Entry(name, dtype, shape.ToArray(), bytes) { Pointer = (nint)data });
        return this;
    }

    /// <summary>Adds a tensor held in a managed array; the dtype follows <typeparamref name="T"/>.</summary>
    public SafeTensorsWriter Add<T>(string name, ReadOnlySpan<long> shape, ReadOnlyMemory<T> data) where T : unmanaged
    {
        var dtype = SafeTensorDTypes.Of<T>();
        long bytes = CheckNew(name, dtype, shape);
        if ((long)data.Length * sizeof(T) != bytes)
            throw new ArgumentException($"tensor '{name}': {data.Length} elements given for shape {SafeTensorsFormat.ShapeText(shape)}", nameof(data));
        _tensors.Add(new Entry(name, dtype, shape.ToArray(), bytes) { Managed = s => s.Write(MemoryMarshal.AsBytes(data.Span)) });
        return this;
    }

    /// <summary>Adds a tensor held in a managed array; the dtype follows <typeparamref name="T"/>.</summary>
    public SafeTensorsWriter Add<T>(string name, ReadOnlySpan<long> shape, T[] data) where T : unmanaged =>
        Add(name, shape, new ReadOnlyMemory<T>(data));

    /// <summary>Adds a tensor whose bytes are produced by <paramref name="source"/> while saving.</summary>
    public SafeTensorsWriter Add(string name, SafeTensorDType dtype, ReadOnlySpan<long> shape, TensorBytesSource source)
    {
        ArgumentNullException.ThrowIfNull(source);
        long bytes = CheckNew(name, dtype, shape);
        _tensors.Add(new Entry(name, dtype, shape.ToArray(), bytes) { Source = source });
        return this;
    }

    /// <summary>Writes the file atomically: the target is replaced only once everything is on disk.</summary>
    public void Save(string path)
    {
        var order = Ordered();
        byte[] header = Header(order);
        AtomicFile.Write(path, fs =>
        {
            Span<byte> n = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(n, (ulong)header.Length);
            fs.Write(n);
            fs.Write(header);
            foreach (var e in order) WriteData(fs, e);
        });
    }

    /// <summary>The header bytes (JSON plus padding, without the 8-byte length) that <see cref="Save"/> writes.</summary>
    public byte[] HeaderBytes() => Header(Ordered());

    private List<Entry> Ordered()
    {
        var order = new List<Entry>(_tensors);
        order.Sort(static (a, b) =>
        {
            int c = b.DType.CompareTo(a.DType);
            return c != 0 ? c : string.CompareOrdinal(a.Name, b.Name);
        });
        return order;
    }

    private byte[] Header(List<Entry> order)
    {
        var sb = new StringBuilder("{");
        bool first = true;
        if (_metadata.Count > 0)
        {
            sb.Append('"').Append(SafeTensorsFormat.MetadataKey).Append("\":{");
            for (int i = 0; i < _metadata.Count; i++)
            {
                if (i > 0) sb.Append(',');
                SafeTensorsFormat.AppendJsonString(sb, _metadata[i].Key);
                sb.Append(':');
                SafeTensorsFormat.AppendJsonString(sb, _metadata[i].Value);
            }
            sb.Append('}');
            first = false;
        }
        long offset = 0;
        foreach (var e in order)
        {
            if (!first) sb.Append(',');
            first = false;
            SafeTensorsFormat.AppendJsonString(sb, e.Name);
            sb.Append(":{\"dtype\":\"").Append(e.DType.Name()).Append("\",\"shape\":[");
            for (int i = 0; i < e.Shape.Length; i++)
            {
                if (i > 0) sb.Append(',');
                sb.Append(e.Shape[i].ToString(CultureInfo.InvariantCulture));
            }
            sb.Append("],\"data_offsets\":[").Append(offset.ToString(CultureInfo.InvariantCulture)).Append(',');
            offset += e.Bytes;
            sb.Append(offset.ToString(CultureInfo.InvariantCulture)).Append("]}");
        }
        sb.Append('}');
        int len = Encoding.UTF8.GetByteCount(sb.ToString());
        sb.Append(' ', (8 - len % 8) % 8);
        return Encoding.UTF8.GetBytes(sb.ToString());
    }

    private static void WriteData(FileStream fs, Entry e)
    {
        if (e.Bytes == 0) return;
        if (e.Managed != null)
        {
            e.Managed(fs);
        }
        else if (e.Source != null)
        {
            byte[] buf = ArrayPool<byte>.Shared.Rent((int)Math.Min(ChunkBytes, e.Bytes));
            try
            {
                for (long done = 0; done < e.Bytes;)
                {
                    int n = (int)Math.Min(buf.Length, e.Bytes - done);
                    e.Source(done, buf.AsSpan(0, n));
                    fs.Write(buf, 0, n);
                    done += n;
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buf);
            }
        }
        else
        {
            byte* p = (byte*)e.Pointer;
            for (long done = 0; done < e.Bytes;)
            {
                int n = (int)Math.Min(1L << 30, e.Bytes - done);
                fs.Write(new ReadOnlySpan<byte>(p + done, n));
                done += n;
            }
        }
    }

    private long CheckNew(string name, SafeTensorDType dtype, ReadOnlySpan<long> shape)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (name == SafeTensorsFormat.MetadataKey) throw new ArgumentException($"'{name}' is reserved for metadata", nameof(name));
        if (!Enum.IsDefined(dtype)) throw new ArgumentOutOfRangeException(nameof(dtype));
        if (_names.Contains(name)) throw new ArgumentException($"tensor '{name}' was already added", nameof(name));
        long count = SafeTensorsFormat.ElementCount(shape);
        if (count < 0 || count > long.MaxValue / dtype.Size())
            throw new ArgumentException($"tensor '{name}': bad shape {SafeTensorsFormat.ShapeText(shape)}", nameof(shape));
        _names.Add(name);
        return count * dtype.Size();
    }
}
