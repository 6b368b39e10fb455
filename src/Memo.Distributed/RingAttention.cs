using Memo.Backends;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Memo.Cpu;
using Memo.Cpu.Kernels;

namespace Memo.Distributed;

/// <summary>Heads and layout of the ring's attention call on one rank; rows are the rank's zig-zag rows, (Batch, 2*Chunk).</summary>
public readonly record struct RingShape(int Batch, long Chunk, int Heads, int KvHeads, int HeadDim, float Scale)
{
    /// <summary>Floats of one packed key/value row [k heads | v heads].</summary>
    public long KvWidth => 2L * KvHeads * HeadDim;

    /// <summary>Local token rows, Batch * 2 * Chunk.</summary>
    public long Rows => checked(Batch * 2L * Chunk);

    /// <summary>Floats of one packed key/value (or dK/dV) block of the rank, Rows * KvWidth.</summary>
    public long KvFloats => checked(Rows * KvWidth);
}

/// <summary>
/// Time and bytes of the ring's communication since the counters were last reset. A transfer is one hop
/// of the ring: the key/value block a step sends and receives, or the dK/dV accumulator it passes on;
/// the share of communication hidden behind compute is 1 - <see cref="ExposedSeconds"/> / <see cref="TransferSeconds"/>.
/// </summary>
public struct RingStats
{
    /// <summary>Bytes this rank sent.</summary>
    public long BytesSent;

    /// <summary>Seconds the rank's calls spent waiting for transfers after the compute they overlap had finished.</summary>
    public double WaitSeconds;

    /// <summary>Seconds of attention compute inside the ring.</summary>
    public double ComputeSeconds;

    /// <summary>Sum over transfers of post to completion (as the communicator first saw it complete).</summary>
    public double TransferSeconds;

    /// <summary>Sum over transfers of the part after the compute they overlap had ended: completion minus compute end, or 0.</summary>
    public double ExposedSeconds;

    /// <summary>Transfers counted in <see cref="TransferSeconds"/>.</summary>
    public int Transfers;

    public int Steps;

    /// <summary>Counts one transfer posted at <paramref name="posted"/>, completed at <paramref name="done"/>, that overlapped compute until <paramref name="computeEnd"/> (Stopwatch timestamps).</summary>
    internal void Transfer(long posted, long done, long computeEnd)
    {
        TransferSeconds += Math.Max(0, done - posted) / (double)Stopwatch.Frequency;
        ExposedSeconds += Math.Max(0, done - Math.Max(posted, computeEnd)) / (double)Stopwatch.Frequency;
        Transfers++;
    }
}

/// <summary>
/// Causal attention over a sequence split zig-zag (<see cref="ZigZag"/>) across the ranks of a ring:
/// each rank keeps its queries and passes packed key/value blocks around the ring.
/// </summary>
/// <remarks>
/// Rank r holds chunks a = r and b = 2C-1-r. At ring step i it holds the keys of rank s = r - i (mod C)
/// (chunks s and 2C-1-s) and computes the pairs that are causally visible:
/// <code>
///   i = 0 (s = r):  Qa.Ka diagonal   Qb.Kb diagonal   Qb.Ka past
///   s &lt; r:         Qa.Ks past       Qb.Ks past
///   s &gt; r:         Qb.K(2C-1-s) past                Qb.Ks past
/// </code>
/// so every step after the first does two chunk-by-chunk past blocks on every rank (balanced).
/// Forward: while a step computes, the keys of the next step are received from rank r-1 and the current
/// ones sent to rank r+1 (nonblocking); partial outputs merge by log-sum-exp (<see cref="Attention.ForwardPast"/>
/// continues from the stored o, lse). Backward: the key/value blocks travel the same way, each with a
/// dK/dV accumulator that collects the contributions of every rank's queries and returns to its owner
/// after C hops. So that the accumulator's hop overlaps compute too, a step writes its contribution to
/// the first key chunk (every pair of the step but Qb.K(2C-1-src)) to a local half block while the
/// accumulator of the same keys is still on its way, and adds it on arrival:
/// <code>
///   step i:  [kv(i+1) in flight; acc(src) in flight from r-1]  compute L = dK/dV of chunk src  -> wait acc, acc += L,
///            (src &gt; r) acc += dK/dV of Qb.K(2C-1-src), send acc to r+1
/// </code>
/// (step 0 writes the rank's own accumulator directly). Only the last hop, which brings each rank its own
/// accumulator after every rank's last step, has no compute left to hide behind. Sum orders are fixed
/// by the ring, so the same layout gives the same bits.
///
/// Scratch (<see cref="WorkspaceFloats"/>): two packed key/value blocks (current, next), two dK/dV
/// accumulators (the one sent, the one received), the local dK/dV contribution to the first key chunk
/// (half a block: the second chunk's pair, when visible, adds in place once the accumulator is there),
/// then the attention kernels' workspace; the caller takes it from its planned arena.
/// </remarks>
public sealed unsafe class RingAttention
{
    private const int TagForward = 101, TagBackwardKv = 102, TagBackwardGrad = 103;

    private readonly ICommunicator _ring;
    private readonly WorkerPool _pool;
    private RingStats _stats;

    /// <param name="stats">Counters to continue from (when a new shape replaces an earlier ring).</param>
    public RingAttention(ICommunicator ring, RingShape shape, WorkerPool pool, RingStats stats = default)
    {
        ArgumentNullException.ThrowIfNull(ring);
        ArgumentNullException.ThrowIfNull(pool);
        if (shape.Batch < 0 || shape.Chunk < 0)
            throw new MemoException($"ring attention batch and chunk must not be negative (got {shape.Batch} x {shape.Chunk})");
        _ring = ring;
        _pool = pool;
        Shape = shape;
        _stats = stats;
    }

    public RingShape Shape { get; }

    public RingStats Stats => _stats;

    public void ResetStats() => _stats = default;

    /// <summary>Whole packed key/value blocks of the scratch: current and next, two accumulators (then the half-size local contribution).</summary>
    private const int Blocks = 4;

    /// <summary>Floats of the local dK/dV contribution: the first key chunk of every sequence, Batch * Chunk rows (half a block).</summary>
    private static long LocalFloats(in RingShape s) => checked(s.Batch * s.Chunk * s.KvWidth);

    /// <summary>Floats of scratch for a rank with <paramref name="threads"/> kernel threads: 4 packed blocks, half a block, the attention workspace.</summary>
    public static long WorkspaceFloats(in RingShape s, int threads) =>
        checked(Blocks * s.KvFloats + LocalFloats(s) + Attention.WorkspaceFloats(threads, s.HeadDim));

    /// <summary>Bytes one rank sends per forward and backward of one layer: (C-1) key/value blocks forward, (C-1) backward, C dK/dV blocks.</summary>
    public static long BytesPerLayer(in RingShape s, int ranks) =>
        ranks <= 1 ? 0 : checked((3L * ranks - 2) * s.KvFloats * sizeof(float));

    /// <summary>Bytes one rank sends in one layer's <see cref="Forward"/>: (C-1) key/value blocks (what a recomputed forward sends again).</summary>
    public static long ForwardBytesPerLayer(in RingShape s, int ranks) =>
        ranks <= 1 ? 0 : checked((ranks - 1L) * s.KvFloats * sizeof(float));

    /// <summary>
    /// o, lse of the rank's queries over all keys of the sequence at or before them. q rows have
    /// <paramref name="qStride"/> floats (k, v: <paramref name="kvStride"/>; o: <paramref name="oStride"/>); lse is (Rows, Heads).
    /// </summary>
    public void Forward(float* q, long qStride, float* k, float* v, long kvStride, float* o, long oStride, float* lse, float* workspace)
    {
        var s = Shape;
        if (s.Rows == 0) return;
        int C = _ring.Size, r = _ring.Rank;
        float* cur = workspace, next = workspace + s.KvFloats, attnWork = workspace + Blocks * s.KvFloats + LocalFloats(s);
        Pack(k, v, kvStride, cur);
        for (int i = 0; i < C; i++)
        {
            int src = (r - i + C) % C;
            var kv = i < C - 1 ? Post(cur, next, TagForward) : default;
            long t0 = Stopwatch.GetTimestamp();
            for (int b = 0; b < s.Batch; b++) ForwardStep(i, src, r, b, q, qStride, cur, o, oStride, lse, attnWork);
            long t1 = Stopwatch.GetTimestamp();
            if (i < C - 1) NextBlock(kv, t1, ref cur, ref next);
            EndStep(t0, t1);
        }
    }

    /// <summary>
    /// Writes dq, dk, dv (strides of q, k, v) of the rank's rows from the final o, lse of <see cref="Forward"/>
    /// and dO (stride <paramref name="oStride"/>).
    /// </summary>
    public void Backward(float* q, long qStride, float* k, float* v, long kvStride, float* o, long oStride, float* lse, float* dO,
        float* dq, float* dk, float* dv, float* workspace)
    {
        var s = Shape;
        if (s.Rows == 0) return;
        int C = _ring.Size, r = _ring.Rank;
        float* cur = workspace, next = cur + s.KvFloats, dOut = next + s.KvFloats, dIn = dOut + s.KvFloats, dLocal = dIn + s.KvFloats;
        float* attnWork = dLocal + LocalFloats(s);
        Hop acc = default;
        Pack(k, v, kvStride, cur);
        for (int i = 0; i < C; i++)
        {
            int src = (r - i + C) % C;
            var kv = i < C - 1 ? Post(cur, next, TagBackwardKv) : default;
            long t0 = Stopwatch.GetTimestamp();
            long t1;
            if (i == 0)
            {
                // Step 0 starts the rank's own accumulator.
                for (int b = 0; b < s.Batch; b++) BackwardDiagonal(b, q, qStride, cur, o, oStride, lse, dO, dq, dOut, attnWork);
                t1 = Stopwatch.GetTimestamp();
            }
            else
            {
                // While the accumulator of src's keys is still arriving from rank r-1, the contributions to their
                // first chunk go to a local half block; once it has arrived (dIn) and the previous one has left
                // (dOut), they are added and the second chunk's contribution (src > r only) adds in place.
                Clear(dLocal, LocalFloats(s));
                for (int b = 0; b < s.Batch; b++) BackwardFirstChunk(src, r, b, q, qStride, cur, o, oStride, lse, dO, dq, dLocal + b * s.Chunk * s.KvWidth, attnWork);
                t1 = Stopwatch.GetTimestamp();
                Complete(acc, t1);
                long a0 = Stopwatch.GetTimestamp();
                for (int b = 0; b < s.Batch; b++) Accumulate(dIn + b * 2 * s.Chunk * s.KvWidth, dLocal + b * s.Chunk * s.KvWidth, s.Chunk * s.KvWidth);
                if (src > r)
                {
                    for (int b = 0; b < s.Batch; b++) BackwardSecondChunk(b, q, qStride, cur, o, oStride, lse, dO, dq, dIn, attnWork);
                }
                t1 += Stopwatch.GetTimestamp() - a0;
                float* dSwap = dOut;
                dOut = dIn;
                dIn = dSwap;
            }
            if (C > 1)
            {
                // dOut goes on to the next rank (after C hops, back to its owner); dIn receives the accumulator
                // of the next step's keys (after the last step: this rank's own, complete).
                acc = Post(dOut, dIn, TagBackwardGrad);
            }
            if (i < C - 1) NextBlock(kv, t1, ref cur, ref next);
            EndStep(t0, t1);
        }
        if (C > 1)
        {
            // The last hop: nothing is left to compute while the rank's own accumulator comes back.
            long t = Stopwatch.GetTimestamp();
            Complete(acc, acc.Posted);
            _stats.WaitSeconds += Stopwatch.GetElapsedTime(t).TotalSeconds;
            Unpack(dIn, dk, dv, kvStride);
        }
        else
        {
            Unpack(dOut, dk, dv, kvStride);
        }
    }

    /// <summary>One block's hop around the ring: its receive from rank r-1, its send to rank r+1, and when both were posted.</summary>
    private readonly record struct Hop(CommRequest Receive, CommRequest Send, long Posted);

    /// <summary>Starts a hop: <paramref name="receiveInto"/> takes the block of rank r-1, <paramref name="send"/> goes to rank r+1.</summary>
    private Hop Post(float* send, float* receiveInto, int tag)
    {
        int C = _ring.Size, r = _ring.Rank;
        long posted = Stopwatch.GetTimestamp();
        var receive = _ring.Receive(receiveInto, Shape.KvFloats, CommType.Float32, (r - 1 + C) % C, tag);
        var sent = _ring.Send(send, Shape.KvFloats, CommType.Float32, (r + 1) % C, tag);
        _stats.BytesSent += Shape.KvFloats * sizeof(float);
        return new Hop(receive, sent, posted);
    }

    /// <summary>Waits for both halves of a hop; the time after <paramref name="computeEnd"/> is exposed.</summary>
    private void Complete(in Hop hop, long computeEnd) =>
        _stats.Transfer(hop.Posted, Math.Max(_ring.Complete(hop.Receive), _ring.Complete(hop.Send)), computeEnd);

    /// <summary>Completes the key/value hop and makes the block it received the current one.</summary>
    private void NextBlock(in Hop hop, long computeEnd, ref float* cur, ref float* next)
    {
        Complete(hop, computeEnd);
        float* received = next;
        next = cur;
        cur = received;
    }

    private void EndStep(long t0, long t1)
    {
        _stats.ComputeSeconds += Stopwatch.GetElapsedTime(t0, t1).TotalSeconds;
        _stats.WaitSeconds += Stopwatch.GetElapsedTime(t1).TotalSeconds;
        _stats.Steps++;
    }

    private static void Clear(float* x, long n) => NativeMemory.Clear(x, (nuint)(n * sizeof(float)));

    /// <summary>acc += add, element by element (in chunks: spans are int-indexed).</summary>
    private static void Accumulate(float* acc, float* add, long n)
    {
        const int Part = 1 << 28;
        for (long first = 0; first < n; first += Part)
        {
            int m = (int)Math.Min(Part, n - first);
            var a = new Span<float>(acc + first, m);
            System.Numerics.Tensors.TensorPrimitives.Add(a, new ReadOnlySpan<float>(add + first, m), a);
        }
    }

    private void ForwardStep(int step, int src, int r, int b, float* q, long qStride, float* kv, float* o, long oStride, float* lse, float* work)
    {
        var s = Shape;
        long c = s.Chunk, row0 = b * 2 * c;
        long kvOff = (long)s.KvHeads * s.HeadDim;
        float* qa = q + row0 * qStride, qb = q + (row0 + c) * qStride;
        float* oa = o + row0 * oStride, ob = o + (row0 + c) * oStride;
        float* la = lse + row0 * s.Heads, lb = lse + (row0 + c) * s.Heads;
        float* ka = kv + row0 * s.KvWidth, kb = kv + (row0 + c) * s.KvWidth;
        if (step == 0)
        {
            var diag = new AttentionShape(1, c, s.Heads, s.KvHeads, s.HeadDim, qStride, s.KvWidth, oStride, s.Scale);
            Attention.Forward(diag, qa, ka, ka + kvOff, oa, la, work, _pool);
            Attention.Forward(diag, qb, kb, kb + kvOff, ob, lb, work, _pool);
            Attention.ForwardPast(Past(qStride, oStride), qb, ka, ka + kvOff, ob, lb, merge: true, work, _pool);
            return;
        }
        var past = Past(qStride, oStride);
        if (src < r) Attention.ForwardPast(past, qa, ka, ka + kvOff, oa, la, merge: true, work, _pool);
        Attention.ForwardPast(past, qb, ka, ka + kvOff, ob, lb, merge: true, work, _pool);
        if (src > r) Attention.ForwardPast(past, qb, kb, kb + kvOff, ob, lb, merge: true, work, _pool);
    }

    /// <summary>Step 0 of the backward ring: the diagonal blocks overwrite dq and the rank's own dK/dV accumulator; everything after adds.</summary>
    private void BackwardDiagonal(int b, float* q, long qStride, float* kv, float* o, long oStride,
        float* lse, float* dO, float* dq, float* dkv, float* work)
    {
        var s = Shape;
        long c = s.Chunk, row0 = b * 2 * c;
        long kvOff = (long)s.KvHeads * s.HeadDim;
        float* qa = q + row0 * qStride, qb = q + (row0 + c) * qStride;
        float* dqa = dq + row0 * qStride, dqb = dq + (row0 + c) * qStride;
        float* oa = o + row0 * oStride, ob = o + (row0 + c) * oStride;
        float* dOa = dO + row0 * oStride, dOb = dO + (row0 + c) * oStride;
        float* la = lse + row0 * s.Heads, lb = lse + (row0 + c) * s.Heads;
        float* ka = kv + row0 * s.KvWidth, kb = kv + (row0 + c) * s.KvWidth;
        float* dka = dkv + row0 * s.KvWidth, dkb = dkv + (row0 + c) * s.KvWidth;
        var diag = new AttentionShape(1, c, s.Heads, s.KvHeads, s.HeadDim, qStride, s.KvWidth, oStride, s.Scale);
        Attention.Backward(diag, qa, ka, ka + kvOff, oa, la, dOa, dqa, dka, dka + kvOff, work, _pool);
        Attention.Backward(diag, qb, kb, kb + kvOff, ob, lb, dOb, dqb, dkb, dkb + kvOff, work, _pool);
        Attention.BackwardPast(Past(qStride, oStride), qb, ka, ka + kvOff, ob, lb, dOb, dqb, dka, dka + kvOff, work, _pool);
    }

    /// <summary>
    /// A later step's pairs against the first key chunk of sequence <paramref name="b"/> (chunk src): Qa.Ks when
    /// src &lt; r, and Qb.Ks; their dK/dV adds into <paramref name="dka"/> (Chunk rows, packed), dq in place.
    /// </summary>
    private void BackwardFirstChunk(int src, int r, int b, float* q, long qStride, float* kv, float* o, long oStride,
        float* lse, float* dO, float* dq, float* dka, float* work)
    {
        var s = Shape;
        long c = s.Chunk, row0 = b * 2 * c;
        long kvOff = (long)s.KvHeads * s.HeadDim;
        float* ka = kv + row0 * s.KvWidth;
        var past = Past(qStride, oStride);
        if (src < r)
            Attention.BackwardPast(past, q + row0 * qStride, ka, ka + kvOff, o + row0 * oStride, lse + row0 * s.Heads, dO + row0 * oStride,
                dq + row0 * qStride, dka, dka + kvOff, work, _pool);
        long rb = row0 + c;
        Attention.BackwardPast(past, q + rb * qStride, ka, ka + kvOff, o + rb * oStride, lse + rb * s.Heads, dO + rb * oStride,
            dq + rb * qStride, dka, dka + kvOff, work, _pool);
    }

    /// <summary>A later step's pair against the second key chunk (2C-1-src, visible only when src &gt; r): Qb.K(2C-1-src), dK/dV added into the accumulator <paramref name="dkv"/>.</summary>
    private void BackwardSecondChunk(int b, float* q, long qStride, float* kv, float* o, long oStride, float* lse, float* dO, float* dq, float* dkv, float* work)
    {
        var s = Shape;
        long c = s.Chunk, rb = b * 2 * c + c;
        long kvOff = (long)s.KvHeads * s.HeadDim;
        float* kb = kv + rb * s.KvWidth, dkb = dkv + rb * s.KvWidth;
        Attention.BackwardPast(Past(qStride, oStride), q + rb * qStride, kb, kb + kvOff, o + rb * oStride, lse + rb * s.Heads, dO + rb * oStride,
            dq + rb * qStride, dkb, dkb + kvOff, work, _pool);
    }

    /// <summary>Shape of one chunk-by-chunk past block: c queries against c keys, packed key rows.</summary>
    private AttentionPastShape Past(long qStride, long oStride)
    {
        var s = Shape;
        return new AttentionPastShape(1, s.Chunk, s.Chunk, s.Heads, s.KvHeads, s.HeadDim, qStride, s.KvWidth, oStride, s.Scale);
    }

    /// <summary>Copies the rank's k and v rows into one packed block [k heads | v heads] per row.</summary>
    private void Pack(float* k, float* v, long kvStride, float* packed)
    {
        var s = Shape;
        nuint bytes = (nuint)((long)s.KvHeads * s.HeadDim * sizeof(float));
        long half = (long)s.KvHeads * s.HeadDim;
        for (long t = 0; t < s.Rows; t++)
        {
            NativeMemory.Copy(k + t * kvStride, packed + t * s.KvWidth, bytes);
            NativeMemory.Copy(v + t * kvStride, packed + t * s.KvWidth + half, bytes);
        }
    }

    private void Unpack(float* packed, float* dk, float* dv, long kvStride)
    {
        var s = Shape;
        nuint bytes = (nuint)((long)s.KvHeads * s.HeadDim * sizeof(float));
        long half = (long)s.KvHeads * s.HeadDim;
        for (long t = 0; t < s.Rows; t++)
        {
            NativeMemory.Copy(packed + t * s.KvWidth, dk + t * kvStride, bytes);
            NativeMemory.Copy(packed + t * s.KvWidth + half, dv + t * kvStride, bytes);
        }
    }
}
