using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Memo.Training.Data;

/// <summary>Positioned reads that widen bytes or little-endian uint16 tokens to int in place, without a staging buffer.</summary>
internal static class FileReads
{
    public static SafeFileHandle Open(string path, string what)
    {
        try
        {
            return File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new MemoException($"{path}: no such {what}; check the path", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new MemoException($"{path}: cannot open ({e.Message}); check the path and permissions", e);
        }
    }

    public static void ReadExactly(string path, SafeFileHandle handle, Span<byte> buffer, long offset)
    {
        while (!buffer.IsEmpty)
        {
            int n = RandomAccess.Read(handle, buffer, offset);
            if (n <= 0)
                throw new MemoException($"{path}: file ended at byte {offset} while reading; it was truncated or changed while training — restore the data file");
            buffer = buffer[n..];
            offset += n;
        }
    }

    /// <summary>Reads <c>dest.Length</c> bytes at <paramref name="offset"/> and stores them as ints in <paramref name="dest"/>.</summary>
    public static void ReadBytesAsInts(string path, SafeFileHandle handle, long offset, Span<int> dest)
    {
        // The bytes land in the last quarter of dest's memory; widening from the front never
        // overwrites a byte not yet read (int i covers bytes [4i, 4i+4), byte i sits at 3n+i >= 4i+3).
        int n = dest.Length;
        var raw = MemoryMarshal.AsBytes(dest);
        ReadExactly(path, handle, raw[(3 * n)..], offset);
        for (int i = 0; i < n; i++) dest[i] = raw[3 * n + i];
    }

    /// <summary>Reads <c>dest.Length</c> little-endian uint16 values at <paramref name="offset"/> and stores them as ints.</summary>
    public static void ReadU16AsInts(string path, SafeFileHandle handle, long offset, Span<int> dest)
    {
        // Same in-place scheme: value i sits at bytes [2n+2i, 2n+2i+2), at or after the int being written.
        int n = dest.Length;
        var raw = MemoryMarshal.AsBytes(dest);
        ReadExactly(path, handle, raw[(2 * n)..], offset);
        var u16 = MemoryMarshal.Cast<byte, ushort>(raw[(2 * n)..]);
        if (BitConverter.IsLittleEndian)
        {
            for (int i = 0; i < n; i++) dest[i] = u16[i];
        }
        else
        {
            for (int i = 0; i < n; i++) dest[i] = System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(u16[i]);
        }
    }

    /// <summary>
    /// Reads <c>dest.Length</c> little-endian uint32 values at <paramref name="offset"/> into ints; the caller has
    /// checked that every value is below the model's vocab (an int), so the cast is exact.
    /// </summary>
    public static void ReadU32AsInts(string path, SafeFileHandle handle, long offset, Span<int> dest)
    {
        var raw = MemoryMarshal.AsBytes(dest);
        ReadExactly(path, handle, raw, offset);
        if (!BitConverter.IsLittleEndian)
        {
            for (int i = 0; i < dest.Length; i++) dest[i] = System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(dest[i]);
        }
    }
}
