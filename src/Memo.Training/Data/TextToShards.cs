using System.Diagnostics;
using System.Globalization;
using System.Text;
using Memo.Text;

namespace Memo.Training.Data;

/// <summary>What <see cref="TextToShards.Run"/> does: inputs, tokenizer, output layout.</summary>
public sealed record TokenizeOptions
{
    public required TextTokenizer Tokenizer { get; init; }

    /// <summary>Text files (UTF-8), in order.</summary>
    public required IReadOnlyList<string> Inputs { get; init; }

    /// <summary>Directory the shards go to (created; existing shards of the same prefix are replaced).</summary>
    public required string OutputDir { get; init; }

    /// <summary>Shard names are PREFIX_train_000000.bin and PREFIX_val_000000.bin.</summary>
    public string Prefix { get; init; } = "data";

    /// <summary>Tokens per shard (the last shard of each split holds the rest).</summary>
    public long ShardTokens { get; init; } = 100_000_000;

    /// <summary>Fraction of documents (spread evenly: document i is held out when floor((i+1)f) &gt; floor(if)) in the validation split.</summary>
    public double ValFraction { get; init; }

    /// <summary>A string that separates documents inside a file (removed); null: every file is one document.</summary>
    public string? DocSeparator { get; init; }

    /// <summary>Bytes per token: 2 (llm.c version 1) or 4 (version 2); 0 picks 2 when the tokenizer's ids fit.</summary>
    public int TokenBytes { get; init; }

    /// <summary>Characters encoded per call (documents longer than this are cut at word boundaries).</summary>
    public int PieceChars { get; init; } = 1 << 18;

    /// <summary>Pieces encoded in parallel per batch.</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>Called now and then with (input bytes read, total input bytes, tokens written).</summary>
    public Action<long, long, long>? Progress { get; init; }
}

/// <summary>What a tokenize run produced (every figure counted during the run).</summary>
public sealed record TokenizeResult(long Documents, long InputBytes, long TrainTokens, long ValTokens, IReadOnlyList<string> Shards,
    int TokenBytes, double Seconds)
{
    public double MegabytesPerSecond => InputBytes / 1e6 / Seconds;
}

/// <summary>
/// Streams text files through a tokenizer into llm.c token shards (uint16, or Memo's uint32 variant for
/// vocabularies past 65,535 ids). Memory stays bounded whatever the input size: text is read in blocks,
/// documents longer than a piece are cut only at word boundaries where the tokenizer's pre-tokenization
/// splits anyway (<see cref="TextTokenizer.CutsAtWordBoundaries"/>), a batch of pieces is encoded in
/// parallel and written in order, and each shard is written through a fixed buffer. Every document starts
/// with the tokenizer's end-of-text id, as llm.c's data scripts do. Shards are written into a temporary
/// directory beside the output and moved into place at the end, so a failed run leaves nothing behind.
/// </summary>
public static class TextToShards
{
    private const int ReadChars = 1 << 20;
    private const int BatchPieces = 4096;
    private const int BatchChars = 4 << 20; // a batch is encoded by one parallel call: large enough that its start-up cost is noise

    public static TokenizeResult Run(TokenizeOptions o)
    {
        ArgumentNullException.ThrowIfNull(o);
        var tok = o.Tokenizer;
        if (o.Inputs.Count == 0) throw new MemoException("no input files; give text files or globs");
        if (o.ShardTokens < 1) throw new MemoException($"--shard-tokens must be positive (got {o.ShardTokens})");
        if (o.ShardTokens > int.MaxValue) throw new MemoException($"--shard-tokens must be at most {int.MaxValue} (a shard header counts tokens in int32)");
        if (!(o.ValFraction >= 0 && o.ValFraction < 1)) throw new MemoException($"--val-fraction must be in [0, 1) (got {o.ValFraction})");
        if (tok.EndOfText == null) throw new MemoException($"tokenizer {tok.Name} has no end-of-text token to separate documents");
        int width = o.TokenBytes != 0 ? o.TokenBytes : tok.VocabSize <= 65536 ? 2 : 4;
        if (width is not (2 or 4)) throw new MemoException($"token width must be 2 (uint16) or 4 (uint32) bytes (got {width})");
        if (width == 2 && tok.VocabSize > 65536)
            throw new MemoException($"tokenizer {tok.Name} has {tok.VocabSize} ids, more than uint16 shards hold; use --format u32");
        foreach (var f in o.Inputs)
        {
            if (!File.Exists(f)) throw new MemoException($"{f}: no such input file; check the path or glob");
        }
        long totalBytes = o.Inputs.Sum(f => new FileInfo(f).Length);
        string outFull = Path.GetFullPath(o.OutputDir);
        string tmp = outFull.TrimEnd(Path.DirectorySeparatorChar) + ".tmp-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
        Directory.CreateDirectory(tmp);
        var sw = Stopwatch.StartNew();
        try
        {
            using var train = new ShardWriter(tmp, $"{o.Prefix}_train", width, o.ShardTokens);
            using var val = new ShardWriter(tmp, $"{o.Prefix}_val", width, o.ShardTokens);
            long docs = 0, bytesRead = 0;
            var pieces = new List<(string Text, bool Starts, long Doc)>(BatchPieces);
            var results = new List<int>[BatchPieces];
            for (int i = 0; i < results.Length; i++) results[i] = [];
            long batchChars = 0;
            int eot = tok.EndOfText.Value;

            void Flush()
            {
                int n = pieces.Count;
                Parallel.For(0, n, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, o.Threads) }, i =>
                {
                    results[i].Clear();
                    tok.Encode(pieces[i].Text, results[i]);
                    if (results[i].Capacity > 4 * results[i].Count + 4096) results[i].Capacity = results[i].Count; // keep memory bounded
                });
                for (int i = 0; i < n; i++)
                {
                    var w = IsVal(pieces[i].Doc, o.ValFraction) ? val : train;
                    if (pieces[i].Starts) w.Add(eot);
                    w.AddRange(results[i], tok.VocabSize);
                }
                pieces.Clear();
                batchChars = 0;
                o.Progress?.Invoke(bytesRead, totalBytes, train.Tokens + val.Tokens);
            }

            void Emit(string text, bool starts)
            {
                long doc = docs - 1;
                if (text.Length == 0 && !starts) return;
                pieces.Add((text, starts, doc));
                batchChars += text.Length;
                if (pieces.Count == BatchPieces || batchChars >= BatchChars) Flush();
            }

            long before = 0;
            foreach (var file in o.Inputs)
            {
                using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
                using var reader = new StreamReader(stream, new UTF8Encoding(false, false), detectEncodingFromByteOrderMarks: true);
                var pending = new StringBuilder();
                var buf = new char[ReadChars];
                bool docOpen = false, docStarted = false;
                void StartDoc()
                {
                    docs++;
                    docOpen = true;
                    docStarted = false;
                }
                void Piece(string text)
                {
                    if (!docOpen) StartDoc();
                    Emit(text, !docStarted);
                    docStarted = true;
                }
                if (o.DocSeparator == null) StartDoc();
                int read;
                while ((read = reader.Read(buf, 0, buf.Length)) > 0)
                {
                    pending.Append(buf, 0, read);
                    bytesRead = before + stream.Position;
                    Drain(pending, o, final: false, Piece, () => { if (docOpen && !docStarted) Piece(""); docOpen = false; });
                }
                Drain(pending, o, final: true, Piece, () => { if (docOpen && !docStarted) Piece(""); docOpen = false; });
                if (docOpen && !docStarted) Piece("");
                before += stream.Length;
            }
            bytesRead = totalBytes;
            Flush();
            train.Finish();
            val.Finish();
            var shards = train.Files.Concat(val.Files).ToList();
            Directory.CreateDirectory(outFull);
            var placed = new List<string>();
            foreach (var f in shards)
            {
                string dst = Path.Combine(outFull, Path.GetFileName(f));
                File.Move(f, dst, overwrite: true);
                placed.Add(dst);
            }
            Directory.Delete(tmp, recursive: true);
            return new TokenizeResult(docs, totalBytes, train.Tokens, val.Tokens, placed, width, sw.Elapsed.TotalSeconds);
        }
        catch
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
            throw;
        }
    }

    private static bool IsVal(long doc, double f) => f > 0 && Math.Floor((doc + 1) * f) > Math.Floor(doc * f);

    /// <summary>Emits the complete documents and the safely cut pieces of <paramref name="pending"/>, keeping the rest.</summary>
    private static void Drain(StringBuilder pending, TokenizeOptions o, bool final, Action<string> piece, Action endDoc)
    {
        string text = pending.ToString();
        string sep = o.DocSeparator ?? "";
        int pos = 0;
        while (true)
        {
            if (sep.Length > 0)
            {
                int at = text.IndexOf(sep, pos, StringComparison.Ordinal);
                if (at >= 0)
                {
                    piece(text[pos..at]);
                    pos = at + sep.Length;
                    endDoc();
                    continue;
                }
            }
            if (final)
            {
                if (pos < text.Length) piece(text[pos..]);
                pos = text.Length;
                break;
            }
            // No separator in view: cut a long document at a word boundary, keeping a tail that might start a separator.
            int keep = Math.Max(0, sep.Length - 1);
            int avail = text.Length - keep - pos;
            if (avail <= o.PieceChars || !o.Tokenizer.CutsAtWordBoundaries) break;
            int cut = SafeCut(text, pos, pos + o.PieceChars);
            if (cut <= pos) break;
            piece(text[pos..cut]);
            pos = cut;
        }
        pending.Remove(0, pos);
    }

    /// <summary>The last position in (start, limit] where cutting does not change the ids (start if none).</summary>
    internal static int SafeCut(string s, int start, int limit)
    {
        for (int p = Math.Min(limit, s.Length - 2); p > start; p--)
        {
            char prev = s[p - 1], c = s[p];
            if (c == ' ' && char.IsLetter(s[p + 1]) && !char.IsWhiteSpace(prev)) return p;
            if (prev == '\n' && !char.IsWhiteSpace(c) && !char.IsLowSurrogate(c)) return p;
        }
        return start;
    }

    /// <summary>Writes one split as shards of a set size through a fixed buffer; each shard under a temp name until complete.</summary>
    private sealed class ShardWriter : IDisposable
    {
        private const int BufferTokens = 1 << 20;
        private readonly string _dir;
        private readonly string _name;
        private readonly int _width;
        private readonly long _shardTokens;
        private readonly byte[] _buffer;
        private int _buffered;
        private FileStream? _file;
        private string? _filePath;
        private long _inShard;

        public ShardWriter(string dir, string name, int width, long shardTokens)
        {
            _dir = dir;
            _name = name;
            _width = width;
            _shardTokens = shardTokens;
            _buffer = new byte[BufferTokens * width];
        }

        public long Tokens { get; private set; }

        public List<string> Files { get; } = [];

        public void AddRange(List<int> ids, int vocab)
        {
            foreach (int id in ids)
            {
                if ((uint)id >= (uint)vocab)
                    throw new MemoException($"the tokenizer produced id {id}, outside its {vocab} ids; the tokenizer file is inconsistent");
                Add(id);
            }
        }

        public void Add(int id)
        {
            if (_file == null) Open();
            if (_width == 2) System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(_buffer.AsSpan(2 * _buffered), (ushort)id);
            else System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(_buffer.AsSpan(4 * _buffered), (uint)id);
            _buffered++;
            _inShard++;
            Tokens++;
            if (_buffered == BufferTokens) FlushBuffer();
            if (_inShard == _shardTokens) Close();
        }

        private void Open()
        {
            _filePath = Path.Combine(_dir, $"{_name}_{Files.Count:D6}.bin");
            _file = new FileStream(_filePath + ".partial", FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
            _file.Write(new byte[TokenShards.HeaderBytes]);
            _inShard = 0;
        }

        private void FlushBuffer()
        {
            _file!.Write(_buffer, 0, _buffered * _width);
            _buffered = 0;
        }

        private void Close()
        {
            FlushBuffer();
            _file!.Position = 0;
            _file.Write(TokenShards.Header(_inShard, _width));
            _file.Flush(flushToDisk: true);
            _file.Dispose();
            _file = null;
            File.Move(_filePath + ".partial", _filePath!, overwrite: true);
            Files.Add(_filePath!);
        }

        public void Finish()
        {
            if (_file != null) Close();
        }

        public void Dispose() => _file?.Dispose();
    }
}
