using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Memo.Model.IO;

namespace Memo.Training.Data;

/// <summary>
/// The llm.c token shard format (GPT-2 tokens, as written by llm.c's data scripts), and Memo's uint32
/// variant for vocabularies past 65,535 ids (Llama 3, o200k_base):
/// <code>
///   version 1 (llm.c):  int32[256] header, little-endian: [0] magic 20240520, [1] version 1, [2] token count N, rest 0
///                       uint16[N] tokens, little-endian; the file is exactly 1024 + 2N bytes
///   version 2 (Memo):   int32[256] header: [0] magic 20240520, [1] version 2, [2] token count N, [3] bytes per token = 4, rest 0
///                       uint32[N] tokens, little-endian; the file is exactly 1024 + 4N bytes
/// </code>
/// Readers accept both (and a data set may mix them); the width field and the file size must agree with the
/// version. A data set is one shard, or several read in name order as one stream.
/// </summary>
public static class TokenShards
{
    public const int Magic = 20240520;
    public const int Version = 1;
    public const int VersionU32 = 2;
    public const int HeaderInts = 256;
    public const int HeaderBytes = HeaderInts * sizeof(int);

    /// <summary>Writes <paramref name="tokens"/> as one shard, atomically (temp file, fsync, rename).</summary>
    public static void WriteShard(string path, ReadOnlySpan<ushort> tokens)
    {
        var header = new byte[HeaderBytes];
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(0), Magic);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(4), Version);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(8), tokens.Length);
        byte[] body;
        if (BitConverter.IsLittleEndian)
        {
            body = MemoryMarshal.AsBytes(tokens).ToArray();
        }
        else
        {
            body = new byte[2L * tokens.Length];
            for (int i = 0; i < tokens.Length; i++) BinaryPrimitives.WriteUInt16LittleEndian(body.AsSpan(2 * i), tokens[i]);
        }
        AtomicFile.Write(path, fs =>
        {
            fs.Write(header);
            fs.Write(body);
        });
    }

    /// <summary>Bytes per token of a shard version (2 for llm.c's version 1, 4 for version 2), or 0 if unknown.</summary>
    public static int TokenBytes(int version) => version switch { Version => 2, VersionU32 => 4, _ => 0 };

    /// <summary>The header of a shard of <paramref name="count"/> tokens of <paramref name="tokenBytes"/> (2 or 4) bytes.</summary>
    public static byte[] Header(long count, int tokenBytes)
    {
        if (tokenBytes is not (2 or 4)) throw new ArgumentOutOfRangeException(nameof(tokenBytes));
        if (count is < 0 or > int.MaxValue)
            throw new MemoException($"a shard holds at most {int.MaxValue} tokens (the header's count is int32); use a smaller shard size");
        var header = new byte[HeaderBytes];
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(0), Magic);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(4), tokenBytes == 2 ? Version : VersionU32);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(8), (int)count);
        if (tokenBytes == 4) BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(12), 4);
        return header;
    }

    /// <summary>Writes <paramref name="tokens"/> as one version-2 (uint32) shard, atomically.</summary>
    public static void WriteShardU32(string path, ReadOnlySpan<uint> tokens)
    {
        var header = Header(tokens.Length, 4);
        byte[] body = new byte[4L * tokens.Length];
        for (int i = 0; i < tokens.Length; i++) BinaryPrimitives.WriteUInt32LittleEndian(body.AsSpan(4 * i), tokens[i]);
        AtomicFile.Write(path, fs =>
        {
            fs.Write(header);
            fs.Write(body);
        });
    }

    /// <summary>
    /// The shard files named by <paramref name="spec"/>: a file, a directory (its <c>*.bin</c> files),
    /// or a glob with <c>*</c>/<c>?</c> in the file name part (e.g. <c>data/fineweb_train_*.bin</c>);
    /// sorted by name (ordinal).
    /// </summary>
    public static IReadOnlyList<string> ResolvePaths(string spec)
    {
        ArgumentException.ThrowIfNullOrEmpty(spec);
        string[] files;
        if (Directory.Exists(spec))
        {
            files = Directory.GetFiles(spec, "*.bin");
            if (files.Length == 0)
                throw new MemoException($"{spec}: directory holds no *.bin token shards; point --data at the shards or a glob like dir/*_train_*.bin");
        }
        else if (spec.AsSpan().IndexOfAny('*', '?') >= 0)
        {
            string dir = Path.GetDirectoryName(spec) is { Length: > 0 } d ? d : ".";
            string pattern = Path.GetFileName(spec);
            if (dir.AsSpan().IndexOfAny('*', '?') >= 0)
                throw new MemoException($"{spec}: wildcards are supported only in the file name, not in directories; list a single directory");
            if (!Directory.Exists(dir))
                throw new MemoException($"{spec}: directory '{dir}' does not exist; check the path");
            files = Directory.GetFiles(dir, pattern);
            if (files.Length == 0)
                throw new MemoException($"{spec}: no file matches; check the pattern");
        }
        else
        {
            files = [spec];
        }
        Array.Sort(files, StringComparer.Ordinal);
        return files;
    }

    /// <summary>True when <paramref name="path"/> is a file that starts with the shard magic.</summary>
    public static bool LooksLikeShard(string path)
    {
        try
        {
            using var h = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            Span<byte> b = stackalloc byte[4];
            return RandomAccess.Read(h, b, 0) == 4 && BinaryPrimitives.ReadInt32LittleEndian(b) == Magic;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
