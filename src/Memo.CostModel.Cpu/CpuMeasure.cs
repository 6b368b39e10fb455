using System.Diagnostics;
using System.Globalization;
using Memo.Backends;
using Memo.Cpu;
using Memo.Cpu.Kernels;
using Memo.Model;

namespace Memo.CostModel.Cpu;

/// <summary>
/// Fills the <c>cpu</c> profile from the CPU engine's own kernels on this machine, timed at the shapes of the
/// workload being planned (median over repetitions, so a burst of load from other processes moves it less):
/// <list type="bullet">
/// <item>gemm_efficiency: the GEMMs of one layer (forward, dx and dW of the four projections) and of one LM-head
/// chunk, weighted as a step runs them, against the profile's fp32 peak;</item>
/// <item>attention_forward_efficiency / attention_backward_efficiency: <see cref="Attention"/> forward and backward
/// at the model's heads and head dimension, FLOPs counted with the causal 1/2 (backward 2.5x forward);</item>
/// <item>memory_bandwidth: an element-wise pass (<see cref="Elementwise.Add"/>, bytes read + written) over arrays of
/// one activation's size;</item>
/// <item>host_link_bandwidth: memcpy on one thread, as the engine's copy engine moves swapped activations;</item>
/// <item>intra_node_bandwidth (only when the workload has several ranks): the rank-to-rank rate, probed in this process as
/// one message's bytes copied into a third buffer and out of it again on one thread, the two copies a shared-memory
/// channel makes (a proxy: MPI's own handshakes and its waits for the peer are not in it).</item>
/// </list>
/// Without a workload the shapes are generic (512^3 GEMM, 1024 tokens of 4 heads of 64).
/// </summary>
public sealed unsafe class CpuMeasure : ILocalMeasure
{
    private static readonly HashSet<string> Warmed = [];
    private readonly long _copyBytes;
    private readonly double _minSeconds;
    private readonly double _warmSeconds;
    private readonly Func<double> _clock;

    /// <summary>
    /// Copies up to <paramref name="copyBytes"/>; times each figure for at least <paramref name="minSeconds"/> (and 3
    /// repetitions), after warming each kernel up for <paramref name="warmSeconds"/> the first time this process runs it.
    /// Times are read from <paramref name="clock"/> (seconds; default the wall clock); a benchmark on a loaded machine
    /// can pass the calling thread's CPU clock with a one-thread pool.
    /// </summary>
    /// <remarks>
    /// The warm-up matters: the runtime first runs a method as quickly jitted code and recompiles it optimized only
    /// after it has been called a number of times, with a delay; a kernel timed on its first few calls can be several
    /// times slower than in a training step that has run for a while (what <c>memo train</c> reports from step 2 on).
    /// </remarks>
    public CpuMeasure(long copyBytes = 128L << 20, double minSeconds = 0.25, double warmSeconds = 0.5, Func<double>? clock = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(copyBytes, 1L << 20);
        _copyBytes = copyBytes;
        _minSeconds = minSeconds;
        _warmSeconds = warmSeconds;
        _clock = clock ?? (() => Stopwatch.GetTimestamp() / (double)Stopwatch.Frequency);
    }

    public bool CanMeasure(DeviceProfile profile)
    {
        ArgumentNullException.ThrowIfNull(profile);
        return profile.CpuEngine;
    }

    public DeviceProfile Measure(DeviceProfile profile, ICollection<string> notes) => Measure(profile, null, notes);

    public DeviceProfile Measure(DeviceProfile profile, MeasureWorkload? workload, ICollection<string> notes)
    {
        ArgumentNullException.ThrowIfNull(profile);
        ArgumentNullException.ThrowIfNull(notes);
        int threads = workload?.Threads ?? WorkerPool.Default.Threads;
        WorkerPool? own = threads == WorkerPool.Default.Threads ? null : new WorkerPool(threads);
        try
        {
            return MeasureWith(profile, workload, own ?? WorkerPool.Default, notes);
        }
        finally
        {
            own?.Dispose();
        }
    }

    private DeviceProfile MeasureWith(DeviceProfile profile, MeasureWorkload? workload, WorkerPool pool, ICollection<string> notes)
    {
        var inv = CultureInfo.InvariantCulture;
        var measured = new List<string>(profile.Measured);
        var p = profile;
        double peak = p.PeakFp32Flops;

        double gemm = workload is null ? GenericGemm(pool) : ModelGemm(workload, pool);
        p = p with { GemmEfficiency = Math.Clamp(gemm / peak, 1e-6, 1.0) };
        measured.Add("gemm_efficiency");
        string where = workload is null ? "512^3" : $"{workload.Model.Name}'s layer and head shapes";
        notes.Add(string.Create(inv, $"measured CPU matmul at {where}: {gemm / 1e9:0.0} GFLOP/s (gemm_efficiency {p.GemmEfficiency:0.000} of the assumed {peak / 1e9:0} GFLOP/s peak)"));

        var (fwd, bwd, t, heads, kv, dim) = AttentionRates(workload, pool);
        p = p with { AttentionForwardEfficiency = Math.Clamp(fwd / peak, 1e-6, 1.0), AttentionBackwardEfficiency = Math.Clamp(bwd / peak, 1e-6, 1.0) };
        measured.Add("attention_forward_efficiency");
        measured.Add("attention_backward_efficiency");
        notes.Add(string.Create(inv, $"measured causal attention at {t} tokens, {heads}/{kv} heads of {dim}: forward {fwd / 1e9:0.0}, backward {bwd / 1e9:0.0} GFLOP/s"));

        double pass = workload is null ? GenericPass(pool) : ModelPasses(workload, pool);
        long copyBytes = workload is null ? _copyBytes : Math.Clamp(LayerSavedBytes(workload), 1L << 20, _copyBytes);
        double copy = CopyBandwidth(copyBytes);
        p = p with { MemoryBandwidth = pass, HostLinkBandwidth = copy };
        measured.Add("memory_bandwidth");
        measured.Add("host_link_bandwidth");
        notes.Add(workload is null
            ? string.Create(inv, $"measured element-wise add over 16 MiB arrays: {pass / 1e9:0.0} GB/s read+write (memory_bandwidth)")
            : string.Create(inv, $"measured {workload.Model.Name}'s memory-bound passes (norms, activations, residuals, loss, AdamW): {pass / 1e9:0.0} GB/s of traffic (memory_bandwidth)"));
        notes.Add(string.Create(inv, $"measured memcpy on one thread, {Sizes.FormatBytes(copyBytes)}: {copy / 1e9:0.0} GB/s (host_link_bandwidth, the copy engine's rate)"));
        if (workload is { RankTransferBytes: > 0 } ranked)
        {
            long message = Math.Clamp(ranked.RankTransferBytes, 1L << 20, _copyBytes);
            double link = RankTransferBandwidth(message);
            p = p with { IntraNodeBandwidth = link };
            measured.Add("intra_node_bandwidth");
            notes.Add(string.Create(inv, $"measured a {Sizes.FormatBytes(message)} message copied into shared-memory-like staging and out again on one thread: {link / 1e9:0.0} GB/s (intra_node_bandwidth, the rank-to-rank proxy)"));
        }
        return p with { Measured = measured.Distinct().ToArray() };
    }

    /// <summary>
    /// Median seconds of <paramref name="body"/> over at least 3 runs and <see cref="_minSeconds"/>, after a warm-up: one
    /// run, or on the first use of <paramref name="kind"/> in this process at least <see cref="_warmSeconds"/> and 30 runs
    /// (at most 4x as long), so the kernels run optimized code.
    /// </summary>
    private double Median(string kind, Action body)
    {
        bool first;
        lock (Warmed) first = Warmed.Add(kind);
        var warm = Stopwatch.StartNew();
        int runs = 0;
        do
        {
            body();
            runs++;
        }
        while (first && (warm.Elapsed.TotalSeconds < _warmSeconds || runs < 30) && warm.Elapsed.TotalSeconds < 4 * _warmSeconds);
        var times = new List<double>();
        var total = Stopwatch.StartNew();
        while ((total.Elapsed.TotalSeconds < _minSeconds || times.Count < 3) && times.Count < 1000)
        {
            double t0 = _clock();
            body();
            times.Add(_clock() - t0);
        }
        times.Sort();
        return times.Count % 2 == 1 ? times[times.Count / 2] : (times[times.Count / 2 - 1] + times[times.Count / 2]) / 2;
    }

    private double GenericGemm(WorkerPool pool)
    {
        const long n = 512;
        using var a = Random(n * n, 1);
        using var b = Random(n * n, 2);
        using var c = new NativeBuffer(n * n * sizeof(float));
        double s = Median("gemm 512", () => Gemm.Multiply(false, false, n, n, n, a.Floats, n, b.Floats, n, c.Floats, n, accumulate: false, pool));
        return 2.0 * n * n * n / s;
    }

    /// <summary>
    /// FLOP/s of the step's GEMM mix: one layer's twelve GEMMs at m token rows and one head chunk's three, combined
    /// with the weights a step gives them (layers x tokens/m layer sets, tokens/chunk head chunks).
    /// </summary>
    private double ModelGemm(MeasureWorkload w, WorkerPool pool)
    {
        var cfg = w.Model;
        long n = w.Batch * w.Seq;
        long c = cfg.HiddenSize, f = cfg.IntermediateSize, q = cfg.QkvSize, v = cfg.VocabSize;
        long up = ActivationInventory.UpWidth(cfg);
        long attn = (long)cfg.NumHeads * cfg.HeadDim;
        (long In, long Out)[] projections = [(c, q), (attn, c), (c, up), (f, c)];
        double perToken = projections.Sum(x => 2.0 * x.In * x.Out);
        // Rows: the step's tokens, at most 4096 and at most ~4 GFLOP per layer set, so large models stay quick to measure.
        long m = Math.Max(64, Math.Min(Math.Min(n, 4096), (long)(4e9 / (3 * perToken))));
        long maxIn = projections.Max(x => x.In), maxOut = projections.Max(x => x.Out);
        using var x = Random(m * Math.Max(maxIn, maxOut), 1);
        using var y = Random(m * Math.Max(maxIn, maxOut), 2);
        using var wt = Random(maxIn * maxOut, 3);
        using var dx = new NativeBuffer(m * maxIn * sizeof(float));
        using var g = new NativeBuffer(maxIn * maxOut * sizeof(float));
        double layer = Median("gemm layer", () =>
        {
            foreach (var (i, o) in projections)
            {
                Gemm.Multiply(false, true, m, o, i, x.Floats, i, wt.Floats, i, y.Floats, o, accumulate: false, pool);   // y = x W^T
                Gemm.Multiply(false, false, m, i, o, y.Floats, o, wt.Floats, i, dx.Floats, i, accumulate: false, pool); // dx = dy W
                Gemm.Multiply(true, false, o, i, m, y.Floats, o, x.Floats, i, g.Floats, i, accumulate: true, pool);    // dW += dy^T x
            }
        });
        long h = Math.Min(Transformer.HeadChunkRows, n);
        using var hx = Random(h * c, 4);
        using var logits = Random(h * v, 5);
        using var wh = Random(v * c, 6);
        using var dh = new NativeBuffer(h * c * sizeof(float));
        using var gh = new NativeBuffer(v * c * sizeof(float));
        double head = Median("gemm head", () =>
        {
            Gemm.Multiply(false, true, h, v, c, hx.Floats, c, wh.Floats, c, logits.Floats, v, accumulate: false, pool);
            Gemm.Multiply(false, false, h, c, v, logits.Floats, v, wh.Floats, c, dh.Floats, c, accumulate: false, pool);
            Gemm.Multiply(true, false, v, c, h, logits.Floats, v, hx.Floats, c, gh.Floats, c, accumulate: true, pool);
        });
        double layerSets = cfg.NumLayers * (double)n / m, headChunks = (double)n / h;
        double flops = layerSets * 3 * perToken * m + headChunks * 3 * 2.0 * h * v * c;
        return flops / (layerSets * layer + headChunks * head);
    }

    private (double Forward, double Backward, long T, int Heads, int KvHeads, int Dim) AttentionRates(MeasureWorkload? w, WorkerPool pool)
    {
        int heads = w?.Model.NumHeads ?? 4, kv = w?.Model.NumKvHeads ?? 4, dim = w?.Model.HeadDim ?? 64;
        long width = (long)heads * dim;
        // Tokens: the sequence, at most 4096 and at most ~16 GFLOP forward + backward.
        long t = w is null ? 1024 : Math.Min(w.Seq, Math.Max(128, Math.Min(4096, (long)Math.Sqrt(16e9 / (7.0 * width)))));
        long stride = (long)(heads + 2 * kv) * dim;
        using var qkv = Random(t * stride, 7);
        using var dqkv = new NativeBuffer(t * stride * sizeof(float));
        using var o = new NativeBuffer(t * width * sizeof(float));
        using var dO = Random(t * width, 8);
        using var lse = new NativeBuffer(t * heads * sizeof(float));
        using var ws = new NativeBuffer(Attention.WorkspaceFloats(pool.Threads, dim) * sizeof(float));
        var shape = new AttentionShape(1, t, heads, kv, dim, stride, stride, width, 1 / MathF.Sqrt(dim));
        long kOff = width, vOff = width + (long)kv * dim;
        double fwd = Median("attention forward", () => Attention.Forward(shape, qkv.Floats, qkv.Floats + kOff, qkv.Floats + vOff, o.Floats, lse.Floats, ws.Floats, pool));
        double bwd = Median("attention backward", () => Attention.Backward(shape, qkv.Floats, qkv.Floats + kOff, qkv.Floats + vOff, o.Floats, lse.Floats, dO.Floats,
            dqkv.Floats, dqkv.Floats + kOff, dqkv.Floats + vOff, ws.Floats, pool));
        double flops = 2.0 * t * (double)t * width; // QK^T and PV, causal
        return (flops / fwd, 2.5 * flops / bwd, t, heads, kv, dim);
    }

    private double GenericPass(WorkerPool pool)
    {
        const long floats = 1L << 22;
        using var a = Random(floats, 9);
        using var b = Random(floats, 10);
        using var c = new NativeBuffer(floats * sizeof(float));
        double s = Median("add", () => Elementwise.Add(floats, a.Floats, b.Floats, c.Floats, pool));
        return 3.0 * sizeof(float) * floats / s;
    }

    /// <summary>
    /// The rate of the step's memory-bound work, in bytes of <see cref="CpuTimeModel.Traffic"/> per second: one layer's
    /// passes forward and backward at m token rows, the loss over m rows in head chunks and the optimizer over the
    /// model's parameters, each as the engine calls them, combined with the weights a step gives them.
    /// </summary>
    private double ModelPasses(MeasureWorkload w, WorkerPool pool)
    {
        var cfg = w.Model;
        var traffic = CpuTimeModel.Traffic(cfg);
        long n = w.Batch * w.Seq;
        int C = cfg.HiddenSize, F = cfg.IntermediateSize, Q = cfg.QkvSize, V = cfg.VocabSize, H = cfg.NumHeads, Hkv = cfg.NumKvHeads, D = cfg.HeadDim;
        bool llama = cfg.Family == ModelFamily.Llama;
        long up = ActivationInventory.UpWidth(cfg);
        long widest = Math.Max(Math.Max(up, Q), C);
        long m = Math.Max(16, Math.Min(Math.Min(n, 4096), (1L << 24) / widest));
        const float Eps = 1e-5f;

        using var x = Random(m * C, 11);
        using var x2 = Random(m * C, 12);
        using var hbuf = new NativeBuffer(m * C * sizeof(float));
        using var a = Random(m * C, 13);
        using var outBuf = new NativeBuffer(m * C * sizeof(float));
        using var qkv = Random(m * Q, 14);
        using var u = Random(m * up, 15);
        using var act = new NativeBuffer(m * F * sizeof(float));
        using var dy = Random(m * C, 16);
        using var dx = new NativeBuffer(m * C * sizeof(float));
        using var dh = Random(m * C, 17);
        using var dAct = Random(m * F, 18);
        using var dUp = new NativeBuffer(m * up * sizeof(float));
        using var mean = Random(m, 19);
        using var rstd = Random(m, 20);
        using var wv = Random(widest, 21);
        using var dw = new NativeBuffer(widest * sizeof(float));
        var (cosTable, sinTable) = Rope.Table((int)m, D, cfg.RopeTheta);
        using var cos = new NativeBuffer(cosTable.Length * sizeof(float));
        using var sin = new NativeBuffer(sinTable.Length * sizeof(float));
        cosTable.CopyTo(new Span<float>(cos.Floats, cosTable.Length));
        sinTable.CopyTo(new Span<float>(sin.Floats, sinTable.Length));
        long kOff = (long)H * D;

        // One layer's memory-bound passes, in the engine's order (Transformer.PreAttention, PostAttention, LayerBackward).
        double layer = Median("passes " + cfg.ModelType, () =>
        {
            float* h = hbuf.Floats, wt = wv.Floats, g = dw.Floats;
            if (llama)
            {
                RmsNorm.Forward(m, C, x.Floats, wt, h, rstd.Floats, Eps, pool);
                Rope.Forward(qkv.Floats, Q, m, H, D, 0, m, cos.Floats, sin.Floats, pool);
                Rope.Forward(qkv.Floats + kOff, Q, m, Hkv, D, 0, m, cos.Floats, sin.Floats, pool);
                Elementwise.Add(m * C, x.Floats, a.Floats, x2.Floats, pool);
                RmsNorm.Forward(m, C, x2.Floats, wt, h, rstd.Floats, Eps, pool);
                SwiGlu.Forward(m, F, u.Floats, act.Floats, pool);
                Elementwise.Add(m * C, x2.Floats, a.Floats, outBuf.Floats, pool);

                SwiGlu.Backward(m, F, dAct.Floats, u.Floats, dUp.Floats, pool);
                Elementwise.Copy(m * C, dy.Floats, dx.Floats, pool);
                RmsNorm.Backward(m, C, dh.Floats, x2.Floats, wt, rstd.Floats, dx.Floats, g, pool);
                Rope.Backward(qkv.Floats, Q, m, H, D, 0, m, cos.Floats, sin.Floats, pool);
                Rope.Backward(qkv.Floats + kOff, Q, m, Hkv, D, 0, m, cos.Floats, sin.Floats, pool);
                RmsNorm.Backward(m, C, dh.Floats, x.Floats, wt, rstd.Floats, dx.Floats, g, pool);
            }
            else
            {
                LayerNorm.Forward(m, C, x.Floats, wt, wt, h, mean.Floats, rstd.Floats, Eps, pool);
                Bias.Forward(m, Q, qkv.Floats, wt, pool);
                Bias.Forward(m, C, a.Floats, wt, pool);
                Elementwise.Add(m * C, x.Floats, a.Floats, x2.Floats, pool);
                LayerNorm.Forward(m, C, x2.Floats, wt, wt, h, mean.Floats, rstd.Floats, Eps, pool);
                Bias.Forward(m, F, u.Floats, wt, pool);
                Gelu.Forward(m * F, u.Floats, act.Floats, pool);
                Bias.Forward(m, C, a.Floats, wt, pool);
                Elementwise.Add(m * C, x2.Floats, a.Floats, outBuf.Floats, pool);

                Bias.Backward(m, C, dy.Floats, g, pool);
                Gelu.Backward(m * F, dAct.Floats, u.Floats, dUp.Floats, pool);
                Bias.Backward(m, F, dUp.Floats, g, pool);
                Elementwise.Copy(m * C, dy.Floats, dx.Floats, pool);
                LayerNorm.Backward(m, C, dh.Floats, x2.Floats, wt, mean.Floats, rstd.Floats, dx.Floats, g, g, pool);
                Bias.Backward(m, C, dx.Floats, g, pool);
                Bias.Backward(m, Q, qkv.Floats, g, pool);
                LayerNorm.Backward(m, C, dh.Floats, x.Floats, wt, mean.Floats, rstd.Floats, dx.Floats, g, g, pool);
            }
        });

        // The loss: cross-entropy and its gradient over the logits, one head chunk at a time.
        long h = Math.Min(Transformer.HeadChunkRows, m);
        using var logits = Random(h * V, 22);
        using var losses = new NativeBuffer(m * sizeof(float));
        using var targets = new NativeBuffer(m * sizeof(int));
        int* tg = (int*)targets.Pointer;
        for (long i = 0; i < m; i++) tg[i] = (int)(i * 7919 % V);
        double loss = Median("loss", () =>
        {
            for (long r0 = 0; r0 < m; r0 += h)
                CrossEntropy.ForwardBackward(Math.Min(h, m - r0), V, logits.Floats, V, tg + r0, losses.Floats + r0, 1f / m, pool);
        });

        // The optimizer: clear the gradients, their global norm, AdamW, tensor by tensor as the trainer runs it
        // (over a flat block of at most 16M parameters, scaled up, for large models).
        var layout = new ParameterLayout(cfg);
        long total = layout.TotalElements;
        bool flat = total > 1L << 24;
        long held = flat ? 1L << 24 : total;
        using var pw = Random(held, 23);
        using var pg = Random(held, 24);
        using var pm = new NativeBuffer(held * sizeof(float));
        using var pv = new NativeBuffer(held * sizeof(float));
        double optimizer = Median("optimizer", () =>
        {
            Elementwise.Fill(held, pg.Floats, 0.001f, pool);
            if (flat)
            {
                AdamW.SumOfSquares(held, pg.Floats, pool);
                AdamW.Step(held, pw.Floats, pg.Floats, pm.Floats, pv.Floats, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1, pool);
                return;
            }
            for (int i = 0; i < layout.Specs.Count; i++) AdamW.SumOfSquares(layout.Specs[i].Elements, pg.Floats + layout.Offset(i), pool);
            for (int i = 0; i < layout.Specs.Count; i++)
            {
                long o = layout.Offset(i);
                AdamW.Step(layout.Specs[i].Elements, pw.Floats + o, pg.Floats + o, pm.Floats + o, pv.Floats + o,
                    1e-3f, 0.9f, 0.95f, 1e-8f, layout.Specs[i].Decay ? 0.1f : 0f, 1, pool);
            }
        }) * total / held;

        // The step's traffic over the time these passes take for it; the passes outside the layers (embedding,
        // final norm) at the layers' rate.
        double layerFloats = traffic.LayerForward + traffic.LayerBackward, outside = traffic.OutsideForward + traffic.OutsideBackward;
        double layerSets = cfg.NumLayers * (double)n / m;
        double bytes = sizeof(float) * (layerSets * m * layerFloats + n * outside + n * traffic.LossPerToken + total * traffic.OptimizerPerParameter);
        double seconds = layerSets * layer + n * outside / (m * layerFloats) * layer + (double)n / m * loss + optimizer;
        return bytes / seconds;
    }

    private double CopyBandwidth(long bytes)
    {
        using var src = new NativeBuffer(bytes);
        using var dst = new NativeBuffer(bytes);
        double s = Median("copy", () => Buffer.MemoryCopy(src.Pointer, dst.Pointer, bytes, bytes));
        return bytes / s;
    }

    /// <summary>Bytes per second of a message of <paramref name="bytes"/> passed through a staging buffer: two memcpys on one thread.</summary>
    private double RankTransferBandwidth(long bytes)
    {
        using var src = new NativeBuffer(bytes);
        using var staging = new NativeBuffer(bytes);
        using var dst = new NativeBuffer(bytes);
        double s = Median("rank transfer", () =>
        {
            Buffer.MemoryCopy(src.Pointer, staging.Pointer, bytes, bytes);
            Buffer.MemoryCopy(staging.Pointer, dst.Pointer, bytes, bytes);
        });
        return bytes / s;
    }

    /// <summary>Bytes one layer's saved activations take for the workload's tokens (what one swap copy moves).</summary>
    private static long LayerSavedBytes(MeasureWorkload w)
    {
        long perToken = 0;
        foreach (var r in ActivationInventory.For(w.Model))
        {
            if (r.NeededByBackward) perToken += r.ElementsPerToken(w.Model) * sizeof(float);
        }
        return perToken * w.Batch * w.Seq;
    }

    private static NativeBuffer Random(long floats, int seed)
    {
        // Values in [-0.5, 0.5): a multiplicative hash of the index, cheap for large buffers.
        var buf = new NativeBuffer(floats * sizeof(float), zero: false);
        float* p = buf.Floats;
        for (long i = 0; i < floats; i++) p[i] = unchecked((uint)((i + seed) * 2654435761L)) / 4294967296f - 0.5f;
        return buf;
    }
}
