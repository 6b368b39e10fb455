using Memo.Backends;
using Memo.Cpu;

namespace Memo.Distributed;

/// <summary>
/// A backend for one rank of a context-parallel group: the CPU backend's kernels, except that the
/// model's rows are the rank's zig-zag rows (<see cref="ZigZag"/>) of sequences C times longer.
/// Causal attention becomes <see cref="RingAttention"/> over the ring; RoPE and learned positions use
/// the rows' global positions; everything else is token-local and runs unchanged on the rank's rows.
/// The model needs no change: it plans and runs T/C rows per sequence, and the attention workspace it
/// plans (<see cref="AttentionWorkspaceBytes"/>) holds the ring's key/value and dK/dV blocks, so the
/// ring's receive buffers are planned arena buffers with the attention workspace's lifespan.
/// </summary>
/// <remarks>
/// The model's seqLen arguments are local (T/C); the global length is seqLen * C. The RoPE table the
/// model plans (an arena buffer of T/C rows) holds, at local row t, the angles of the global position
/// of t, so the inner kernel runs unchanged on the rank's rows and no table lives outside the arena.
/// Those positions depend on the step's length (a curriculum changes it), so the table is filled again
/// when a step's length differs from the last one's: from a table of the T global positions computed
/// for the moment (the inner backend's RopeTable) and dropped. Its frequencies are those of the
/// largest global length: dynamic RoPE scaling (<see cref="RopeFrequencies"/>) depends on the sequence
/// length, and a rank's T/C rows would give another theta than the single process's T.
/// </remarks>
public sealed unsafe class ContextParallelBackend : IBackend
{
    private readonly CpuBackend _inner;
    private readonly ICommunicator _ring;
    private readonly ModelConfig _config;
    private readonly int _maxBatch, _heads, _kvHeads, _headDim;
    private readonly long _maxLocal;
    private double[]? _ropeFreq;
    private double _ropeScale;
    private long _ropeSeq; // the local length whose global positions the model's RoPE table holds (0: none yet)
    private RingAttention? _attention;

    /// <param name="inner">The rank's CPU backend.</param>
    /// <param name="ring">The C ranks that split each sequence, ordered by zig-zag rank.</param>
    /// <param name="config">The model (heads, head dimension, RoPE and its scaling).</param>
    /// <param name="maxBatch">Batch rows the model is built for.</param>
    /// <param name="maxLocalSeq">Rows per sequence the model is built for, T/C.</param>
    public ContextParallelBackend(CpuBackend inner, ICommunicator ring, ModelConfig config, int maxBatch, long maxLocalSeq)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentNullException.ThrowIfNull(ring);
        ArgumentNullException.ThrowIfNull(config);
        if (maxLocalSeq % 2 != 0)
            throw new MemoException($"a rank's {maxLocalSeq} rows per sequence do not split into two zig-zag chunks; use a sequence length that is a multiple of {2 * ring.Size}");
        _inner = inner;
        _ring = ring;
        _config = config;
        _maxBatch = maxBatch;
        _maxLocal = maxLocalSeq;
        _heads = config.NumHeads;
        _kvHeads = config.NumKvHeads;
        _headDim = config.HeadDim;
    }

    public string Name => _inner.Name;

    public int Threads => _inner.Threads;

    /// <summary>C, the ranks that split a sequence.</summary>
    public int Ranks => _ring.Size;

    /// <summary>Communication time and bytes of the ring since the last <see cref="ResetStats"/>.</summary>
    public RingStats Stats => _attention?.Stats ?? default;

    public void ResetStats() => _attention?.ResetStats();

    /// <summary>Ring scratch for the largest shape: two key/value blocks, two dK/dV blocks, the kernels' workspace.</summary>
    public long AttentionWorkspaceBytes(int headDim) => WorkspaceBytes(_maxBatch, _maxLocal, _heads, _kvHeads, _headDim, Threads);

    /// <summary>
    /// Bytes of the ring scratch a rank of <paramref name="threads"/> kernel threads plans for <paramref name="batch"/> x
    /// <paramref name="localSeq"/> rows (T/C per sequence): what <see cref="AttentionWorkspaceBytes"/> asks of the arena,
    /// without building the backend (the planner lays out a rank's arena with it).
    /// </summary>
    public static long WorkspaceBytes(int batch, long localSeq, int heads, int kvHeads, int headDim, int threads) =>
        checked(RingAttention.WorkspaceFloats(Shape(batch, localSeq, heads, kvHeads, headDim), threads) * sizeof(float));

    /// <summary>The ring's shape for <paramref name="batch"/> x <paramref name="local"/> rows: two zig-zag chunks of local/2 per sequence.</summary>
    public static RingShape Shape(int batch, long local, int heads, int kvHeads, int headDim) =>
        new(batch, local / 2, heads, kvHeads, headDim, 1 / MathF.Sqrt(headDim));

    private RingAttention Ring(in AttentionShape s)
    {
        if (s.SeqLen % 2 != 0)
            throw new MemoException($"a rank's {s.SeqLen} rows per sequence do not split into two zig-zag chunks; use a sequence length that is a multiple of {2 * _ring.Size}");
        var shape = new RingShape(s.Batch, s.SeqLen / 2, s.Heads, s.KvHeads, s.HeadDim, s.Scale);
        if (_attention is null || _attention.Shape != shape)
        {
            var stats = _attention?.Stats ?? default;
            _attention = new RingAttention(_ring, shape, _inner.Pool, stats);
        }
        return _attention;
    }

    public void AttentionForward(in AttentionShape shape, float* q, float* k, float* v, float* o, float* lse, float* workspace)
    {
        if (shape.Batch == 0 || shape.SeqLen == 0) return;
        Ring(shape).Forward(q, shape.QStride, k, v, shape.KvStride, o, shape.OStride, lse, workspace);
    }

    public void AttentionBackward(in AttentionShape shape, float* q, float* k, float* v, float* o, float* lse, float* dO,
        float* dq, float* dk, float* dv, float* workspace)
    {
        if (shape.Batch == 0 || shape.SeqLen == 0) return;
        Ring(shape).Backward(q, shape.QStride, k, v, shape.KvStride, o, shape.OStride, lse, dO, dq, dk, dv, workspace);
    }

    /// <summary>
    /// Fills the model's table (<paramref name="maxPos"/> = T/C rows) with the angles of this rank's global positions,
    /// using the frequencies of the global length T (they differ from the model's under dynamic scaling).
    /// </summary>
    public void RopeTable(long maxPos, ReadOnlySpan<double> invFreq, double scale, float* cos, float* sin)
    {
        (_ropeFreq, _ropeScale) = RopeFrequencies.Compute(_config, checked(maxPos * _ring.Size));
        if (_ropeFreq.Length != invFreq.Length)
            throw new InvalidOperationException($"RoPE with {invFreq.Length} frequencies, but the model's config gives {_ropeFreq.Length}");
        FillRope(maxPos, cos, sin);
    }

    /// <summary>Writes into the model's table, at local row t &lt; <paramref name="localSeq"/>, the angles of t's global position.</summary>
    private void FillRope(long localSeq, float* cos, float* sin)
    {
        if (_ropeFreq is null) throw new InvalidOperationException("RoPE before its table: the model calls RopeTable first");
        if (localSeq > _maxLocal) throw new InvalidOperationException($"RoPE for {localSeq} rows per sequence, but the model's table holds {_maxLocal}");
        var zz = ZigZag.Create(checked(localSeq * _ring.Size), _ring.Size);
        long half = _ropeFreq.Length, rows = zz.SeqLen;
        using var global = new NativeBuffer(checked(2 * rows * half * sizeof(float)));
        float* gc = (float*)global.Pointer, gs = gc + rows * half;
        _inner.RopeTable(rows, _ropeFreq, _ropeScale, gc, gs);
        long bytes = half * sizeof(float);
        for (long t = 0; t < localSeq; t++)
        {
            long g = zz.GlobalPosition(_ring.Rank, t);
            Buffer.MemoryCopy(gc + g * half, cos + t * half, bytes, bytes);
            Buffer.MemoryCopy(gs + g * half, sin + t * half, bytes, bytes);
        }
        _ropeSeq = localSeq;
    }

    public void RopeForward(float* x, long rowStride, long rows, int heads, int headDim, long rowOffset, long seqLen, float* cos, float* sin)
    {
        if (seqLen != _ropeSeq) FillRope(seqLen, cos, sin);
        _inner.RopeForward(x, rowStride, rows, heads, headDim, rowOffset, seqLen, cos, sin);
    }

    public void RopeBackward(float* dx, long rowStride, long rows, int heads, int headDim, long rowOffset, long seqLen, float* cos, float* sin)
    {
        if (seqLen != _ropeSeq) FillRope(seqLen, cos, sin);
        _inner.RopeBackward(dx, rowStride, rows, heads, headDim, rowOffset, seqLen, cos, sin);
    }

    public void EmbeddingForward(long rows, int c, int* tokens, float* wte, float* wpe, long rowOffset, long seqLen, float* x)
    {
        if (wpe == null)
        {
            _inner.EmbeddingForward(rows, c, tokens, wte, wpe, rowOffset, seqLen, x);
            return;
        }
        var zz = new ZigZag(seqLen * _ring.Size, _ring.Size);
        for (long r = rowOffset, end = rowOffset + rows; r < end;)
        {
            var (run, pos) = Run(zz, r, end);
            long i = r - rowOffset;
            _inner.EmbeddingForward(run, c, tokens + i, wte, wpe, pos, zz.SeqLen, x + i * c);
            r += run;
        }
    }

    public void EmbeddingBackward(long rows, int c, int* tokens, float* dx, float* dwte, float* dwpe, long rowOffset, long seqLen)
    {
        if (dwpe == null)
        {
            _inner.EmbeddingBackward(rows, c, tokens, dx, dwte, dwpe, rowOffset, seqLen);
            return;
        }
        var zz = new ZigZag(seqLen * _ring.Size, _ring.Size);
        for (long r = rowOffset, end = rowOffset + rows; r < end;)
        {
            var (run, pos) = Run(zz, r, end);
            long i = r - rowOffset;
            _inner.EmbeddingBackward(run, c, tokens + i, dx + i * c, dwte, dwpe, pos, zz.SeqLen);
            r += run;
        }
    }

    /// <summary>The run of consecutive global positions that starts at local row <paramref name="r"/> (see <see cref="ZigZag.Segments"/>), without allocating.</summary>
    private (long Rows, long Position) Run(in ZigZag zz, long r, long end)
    {
        long local = zz.LocalLen, t = r % local;
        long runEnd = Math.Min(end, r - t + (t < zz.Chunk ? zz.Chunk : local));
        return (runEnd - r, zz.GlobalPosition(_ring.Rank, t));
    }

    public void Gemm(bool transA, bool transB, long m, long n, long k, float* a, long lda, float* b, long ldb, float* c, long ldc, bool accumulate) => _inner.Gemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
    public void Fill(long n, float* dst, float value) => _inner.Fill(n, dst, value);
    public void Add(long n, float* a, float* b, float* dst) => _inner.Add(n, a, b, dst);
    public void Copy(long n, float* src, float* dst) => _inner.Copy(n, src, dst);
    public void BiasForward(long rows, int cols, float* y, float* b) => _inner.BiasForward(rows, cols, y, b);
    public void BiasBackward(long rows, int cols, float* dy, float* db) => _inner.BiasBackward(rows, cols, dy, db);
    public void RmsNormForward(long rows, int c, float* x, float* w, float* y, float* rstd, float eps) => _inner.RmsNormForward(rows, c, x, w, y, rstd, eps);
    public void RmsNormBackward(long rows, int c, float* dy, float* x, float* w, float* rstd, float* dx, float* dw) => _inner.RmsNormBackward(rows, c, dy, x, w, rstd, dx, dw);
    public void LayerNormForward(long rows, int c, float* x, float* w, float* b, float* y, float* mean, float* rstd, float eps) => _inner.LayerNormForward(rows, c, x, w, b, y, mean, rstd, eps);
    public void LayerNormBackward(long rows, int c, float* dy, float* x, float* w, float* mean, float* rstd, float* dx, float* dw, float* db) => _inner.LayerNormBackward(rows, c, dy, x, w, mean, rstd, dx, dw, db);
    public void SwiGluForward(long rows, int f, float* gu, float* m) => _inner.SwiGluForward(rows, f, gu, m);
    public void SwiGluBackward(long rows, int f, float* dm, float* gu, float* dgu) => _inner.SwiGluBackward(rows, f, dm, gu, dgu);
    public void GeluForward(long n, float* x, float* y) => _inner.GeluForward(n, x, y);
    public void GeluBackward(long n, float* dy, float* x, float* dx) => _inner.GeluBackward(n, dy, x, dx);
    public void CrossEntropy(long rows, int vocab, float* logits, long ld, int* targets, float* losses, float gradScale) => _inner.CrossEntropy(rows, vocab, logits, ld, targets, losses, gradScale);
    public void ArgMaxRows(long rows, int vocab, float* logits, long ld, int* result) => _inner.ArgMaxRows(rows, vocab, logits, ld, result);
    public double Sum(long n, float* x) => _inner.Sum(n, x);
    public void AdamWStep(long n, float* param, float* grad, float* m, float* v, float lr, float beta1, float beta2, float eps, float weightDecay, long step) => _inner.AdamWStep(n, param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step);
    public double SumOfSquares(long n, float* x) => _inner.SumOfSquares(n, x);
    public void Scale(long n, float* x, float s) => _inner.Scale(n, x, s);
    public void CopyToDevice(void* hostSrc, void* deviceDst, long bytes) => _inner.CopyToDevice(hostSrc, deviceDst, bytes);
    public void CopyToHost(void* deviceSrc, void* hostDst, long bytes) => _inner.CopyToHost(deviceSrc, hostDst, bytes);
    public ICopyStream CreateCopyStream(string name) => _inner.CreateCopyStream(name);
    public IHostStore CreateHostStore(long bytes) => _inner.CreateHostStore(bytes);

    public IDeviceArena CreateArena(long capacity, bool poison) => _inner.CreateArena(capacity, poison);
    /// <summary>Nothing of its own to free: the inner backend belongs to the caller, the ring's buffers to the model's arena.</summary>
    public void Dispose()
    {
    }
}
