using System.Buffers;
using System.Buffers.Binary;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Memo.Training.Data;

/// <summary>
/// llm.c token shards (<see cref="TokenShards"/>) read as one token stream, in name order. Opening
/// validates every header and file size and scans all tokens once, streaming in 1 MiB chunks, for
/// ids &gt;= vocab_size (the first one is reported); batches are then read on demand with positioned
/// reads. Batching, shift and wrap-around as in <see cref="TokenStreamSource"/>; a batch may span shards.
/// </summary>
public sealed class TokenShardSource : TokenStreamSource
{
    private const int ScanChunkTokens = 1 << 19;

    private readonly string _spec;
    private readonly string[] _paths;
    private readonly SafeFileHandle[] _handles;
    private readonly long[] _starts; // stream offset of each shard's first token; _starts[^1] = total
    private readonly int _minVocab;
    private readonly int[] _widths; // bytes per token of each shard (2 or 4)

    /// <param name="spec">A shard file, a directory of <c>*.bin</c> shards, or a glob (see <see cref="TokenShards.ResolvePaths"/>).</param>
    /// <param name="vocabSize">The model's vocab_size; every token id must be below it.</param>
    public TokenShardSource(string spec, int vocabSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(vocabSize, 1);
        _spec = spec;
        _paths = [.. TokenShards.ResolvePaths(spec)];
        _handles = new SafeFileHandle[_paths.Length];
        _starts = new long[_paths.Length + 1];
        _widths = new int[_paths.Length];
        int maxId = -1;
        try
        {
            for (int i = 0; i < _paths.Length; i++)
            {
                _handles[i] = FileReads.Open(_paths[i], "token shard");
                var (count, width) = ReadHeader(_paths[i], _handles[i]);
                _widths[i] = width;
                maxId = Math.Max(maxId, width == 2 ? Scan(_paths[i], _handles[i], count, vocabSize) : ScanU32(_paths[i], _handles[i], count, vocabSize));
                _starts[i + 1] = _starts[i] + count;
            }
        }
        catch
        {
            foreach (var h in _handles) h?.Dispose();
            throw;
        }
        _minVocab = maxId + 1;
    }

    /// <summary>The shard files, in stream order.</summary>
    public IReadOnlyList<string> Paths => _paths;

    public override long TokenCount => _starts[^1];

    public override int MinVocab => _minVocab;

    public override string Description => _paths.Length == 1
        ? $"llm.c shard {_paths[0]} ({TokenCount} tokens)"
        : $"{_paths.Length} llm.c shards {_spec} ({TokenCount} tokens; {Path.GetFileName(_paths[0])} .. {Path.GetFileName(_paths[^1])})";

    protected override string Where => _spec;

    /// <summary>Validates the header and the file size; returns the token count and bytes per token.</summary>
    private static (long Count, int Width) ReadHeader(string path, SafeFileHandle handle)
    {
        long size = RandomAccess.GetLength(handle);
        if (size < TokenShards.HeaderBytes)
            throw new MemoException($"{path}: file is {size} bytes, shorter than the {TokenShards.HeaderBytes}-byte llm.c shard header; the file is truncated or not a token shard");
        var header = new byte[TokenShards.HeaderBytes];
        FileReads.ReadExactly(path, handle, header, 0);
        int magic = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(0));
        int version = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(4));
        int count = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(8));
        if (magic != TokenShards.Magic)
            throw new MemoException($"{path}: not an llm.c token shard (magic {magic}, expected {TokenShards.Magic}); give .bin shards written by llm.c's data scripts or by Memo");
        int width = TokenShards.TokenBytes(version);
        if (width == 0)
            throw new MemoException($"{path}: llm.c shard version {version} is not supported (expected 1: llm.c's uint16 tokens, or {TokenShards.VersionU32}: Memo's uint32 tokens); re-create it with 'memo tokenize'");
        int declared = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(12));
        if (version == TokenShards.VersionU32 && declared != 4)
            throw new MemoException($"{path}: shard version {version} holds 4-byte tokens but its header says {declared} bytes per token; the file is corrupt — re-create it");
        if (count < 0)
            throw new MemoException($"{path}: header says {count} tokens; the file is corrupt — re-create it");
        long held = (size - TokenShards.HeaderBytes) / width;
        long expected = TokenShards.HeaderBytes + (long)width * count;
        int other = width == 2 ? 4 : 2;
        if (size != expected && size == TokenShards.HeaderBytes + (long)other * count)
            throw new MemoException($"{path}: the file holds {count} tokens of {other} bytes, but its header (version {version}) says {width}-byte tokens; the token width disagrees with the header — re-create the shard");
        if (size < expected)
            throw new MemoException($"{path}: truncated: header says {count} tokens but the file holds {held}; re-create or re-download the shard");
        if (size > expected)
            throw new MemoException($"{path}: {size - expected} extra bytes after the {count} tokens the header declares; the file is corrupt — re-create it");
        return (count, width);
    }

    /// <summary>Like <see cref="Scan"/> for uint32 tokens.</summary>
    private static int ScanU32(string path, SafeFileHandle handle, long count, int vocabSize)
    {
        int[] buf = ArrayPool<int>.Shared.Rent(ScanChunkTokens);
        try
        {
            int max = -1;
            for (long done = 0; done < count;)
            {
                int m = (int)Math.Min(ScanChunkTokens, count - done);
                var tokens = buf.AsSpan(0, m);
                FileReads.ReadU32AsInts(path, handle, TokenShards.HeaderBytes + 4 * done, tokens);
                for (int i = 0; i < m; i++)
                {
                    if ((uint)tokens[i] >= (uint)vocabSize)
                        throw new MemoException($"{path}: token id {(uint)tokens[i]} at position {done + i} is >= vocab_size {vocabSize}; the data was made for another tokenizer");
                }
                max = Math.Max(max, TensorPrimitives.Max<int>(tokens));
                done += m;
            }
            return max;
        }
        finally
        {
            ArrayPool<int>.Shared.Return(buf);
        }
    }

    /// <summary>Streams the tokens once; throws on the first id &gt;= vocab; returns the largest id (-1 if none).</summary>
    private static int Scan(string path, SafeFileHandle handle, long count, int vocabSize)
    {
        byte[] buf = ArrayPool<byte>.Shared.Rent(2 * ScanChunkTokens);
        try
        {
            int max = -1;
            for (long done = 0; done < count;)
            {
                int m = (int)Math.Min(ScanChunkTokens, count - done);
                var bytes = buf.AsSpan(0, 2 * m);
                FileReads.ReadExactly(path, handle, bytes, TokenShards.HeaderBytes + 2 * done);
                var tokens = MemoryMarshal.Cast<byte, ushort>(bytes);
                if (!BitConverter.IsLittleEndian)
                {
                    for (int i = 0; i < m; i++) tokens[i] = BinaryPrimitives.ReverseEndianness(tokens[i]);
                }
                if (vocabSize <= ushort.MaxValue)
                {
                    int bad = tokens.IndexOfAnyInRange((ushort)vocabSize, ushort.MaxValue);
                    if (bad >= 0)
                        throw new MemoException($"{path}: token id {tokens[bad]} at position {done + bad} is >= vocab_size {vocabSize}; the data was made for another tokenizer");
                }
                max = Math.Max(max, TensorPrimitives.Max<ushort>(tokens));
                done += m;
            }
            return max;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buf);
        }
    }

    protected override void ReadTokens(long start, Span<int> destination)
    {
        int shard = Array.BinarySearch(_starts, start);
        if (shard < 0) shard = ~shard - 1;
        while (!destination.IsEmpty)
        {
            while (_starts[shard + 1] <= start) shard++; // skips empty shards
            long local = start - _starts[shard];
            int n = (int)Math.Min(destination.Length, _starts[shard + 1] - start);
            if (_widths[shard] == 2) FileReads.ReadU16AsInts(_paths[shard], _handles[shard], TokenShards.HeaderBytes + 2 * local, destination[..n]);
            else FileReads.ReadU32AsInts(_paths[shard], _handles[shard], TokenShards.HeaderBytes + 4 * local, destination[..n]);
            destination = destination[n..];
            start += n;
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            foreach (var h in _handles) h.Dispose();
        }
    }
}
