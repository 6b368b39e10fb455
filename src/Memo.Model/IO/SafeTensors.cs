using System.Globalization;
using System.Text;

namespace Memo.Model.IO;

// The safetensors format (https://github.com/huggingface/safetensors):
//
//   [ N : u64 little-endian ][ N bytes: UTF-8 JSON header, padded with ' ' to a multiple of 8 ][ data ]
//
//   header = {"__metadata__": {"key": "value", ...},            (optional, string values only)
//             "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
//
// Offsets are relative to the start of the data and half-open; tensors are row-major, little-endian.
// The data section is covered exactly: sorted by offset, each tensor starts where the previous one
// ended, the first at 0, and the last ends at the end of the file (no holes, no overlap, no tail).
// Writers order tensors by descending dtype rank, then by name (the Python/Rust writer's order), which
// keeps every tensor aligned to its element size because the header length is a multiple of 8.

/// <summary>
/// Element types of the safetensors format, declared in the Rust crate's order (increasing
/// alignment); the writer sorts by this rank, descending, as the reference writer does.
/// </summary>
public enum SafeTensorDType
{
    Bool,
    U8,
    I8,
    F8E5M2,
    F8E4M3,
    I16,
    U16,
    F16,
    BF16,
    I32,
    U32,
    F32,
    F64,
    I64,
    U64,
}

/// <summary>Names and sizes of <see cref="SafeTensorDType"/> values as the format spells them.</summary>
public static class SafeTensorDTypes
{
    private static readonly string[] Names =
        ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64", "U64"];

    private static readonly int[] ElementSizes = [1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 8, 8, 8];

    /// <summary>The header spelling, e.g. "F32", "BF16", "F8_E4M3".</summary>
    public static string Name(this SafeTensorDType dtype) => Names[(int)dtype];

    /// <summary>Bytes per element.</summary>
    public static int Size(this SafeTensorDType dtype) => ElementSizes[(int)dtype];

    /// <summary>Parses a header spelling; false for names the format does not define.</summary>
    public static bool TryParse(string name, out SafeTensorDType dtype)
    {
        int i = Array.IndexOf(Names, name);
        dtype = (SafeTensorDType)Math.Max(i, 0);
        return i >= 0;
    }

    /// <summary>Every dtype name the format defines, comma separated (for error messages).</summary>
    public static string AllNames => string.Join(", ", Names);

    /// <summary>The dtype that stores a <typeparamref name="T"/> element.</summary>
    public static SafeTensorDType Of<T>() where T : unmanaged
    {
        if (typeof(T) == typeof(float)) return SafeTensorDType.F32;
        if (typeof(T) == typeof(double)) return SafeTensorDType.F64;
        if (typeof(T) == typeof(int)) return SafeTensorDType.I32;
        if (typeof(T) == typeof(long)) return SafeTensorDType.I64;
        if (typeof(T) == typeof(byte)) return SafeTensorDType.U8;
        if (typeof(T) == typeof(sbyte)) return SafeTensorDType.I8;
        if (typeof(T) == typeof(short)) return SafeTensorDType.I16;
        if (typeof(T) == typeof(ushort)) return SafeTensorDType.U16;
        if (typeof(T) == typeof(uint)) return SafeTensorDType.U32;
        if (typeof(T) == typeof(ulong)) return SafeTensorDType.U64;
        if (typeof(T) == typeof(Half)) return SafeTensorDType.F16;
        if (typeof(T) == typeof(bool)) return SafeTensorDType.Bool;
        throw new ArgumentException($"no safetensors dtype for element type {typeof(T).Name}");
    }
}

/// <summary>One tensor of a safetensors file: name, dtype, shape and where its bytes lie.</summary>
public sealed class SafeTensorInfo
{
    internal SafeTensorInfo(string name, SafeTensorDType dtype, long[] shape, long begin, long end)
    {
        Name = name;
        DType = dtype;
        _shape = shape;
        Begin = begin;
        End = end;
    }

    private readonly long[] _shape;

    public string Name { get; }

    public SafeTensorDType DType { get; }

    /// <summary>Dimensions, outermost first; empty for a scalar.</summary>
    public ReadOnlySpan<long> Shape => _shape;

    /// <summary>Offset of the first byte, relative to the start of the data section.</summary>
    public long Begin { get; }

    /// <summary>Offset one past the last byte, relative to the start of the data section.</summary>
    public long End { get; }

    public long ByteLength => End - Begin;

    public long ElementCount => ByteLength / DType.Size();

    /// <summary>The shape as the format's header writes it, e.g. "[2, 3]".</summary>
    public string ShapeText => SafeTensorsFormat.ShapeText(_shape);

    public override string ToString() => $"{Name} {DType.Name()} {ShapeText}";
}

internal static class SafeTensorsFormat
{
    /// <summary>The reference reader rejects headers above 100 MB.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    public const string MetadataKey = "__metadata__";

    public static string ShapeText(ReadOnlySpan<long> shape)
    {
        var sb = new StringBuilder("[");
        for (int i = 0; i < shape.Length; i++)
        {
            if (i > 0) sb.Append(", ");
            sb.Append(shape[i].ToString(CultureInfo.InvariantCulture));
        }
        return sb.Append(']').ToString();
    }

    /// <summary>Element count of <paramref name="shape"/>, or -1 on overflow of a long.</summary>
    public static long ElementCount(ReadOnlySpan<long> shape)
    {
        long n = 1;
        foreach (long d in shape)
        {
            if (d < 0) return -1;
            if (d != 0 && n > long.MaxValue / d) return -1;
            n *= d;
        }
        return n;
    }

    /// <summary>Appends a JSON string literal escaped as serde_json does (only '"', '\' and control characters).</summary>
    public static void AppendJsonString(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}
