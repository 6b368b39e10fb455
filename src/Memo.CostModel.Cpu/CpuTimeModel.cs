using Memo.Model;
using Memo.Model.Memory;

namespace Memo.CostModel.Cpu;

/// <summary>
/// Step time of Memo's CPU engine (src/Memo.Model), following what it runs, kernel by kernel:
/// <code>
/// per layer, forward    4 GEMMs (qkv, out, up, down), causal attention (2 T^2 x heads x head dim FLOPs per
///                       sequence), and the memory-bound passes: norms, rotary (llama) or biases (gpt2),
///                       residual adds, SwiGLU / GELU
/// per layer, backward   8 GEMMs (dx and dW of each projection), attention backward (2.5x its forward FLOPs),
///                       the backward of every memory-bound pass
/// head                  in chunks of Transformer.HeadChunkRows tokens: logits GEMM, fused cross-entropy and its
///                       gradient, two GEMMs back (dx and the head's weight gradient)
/// rest                  embedding forward/backward, final norm, clearing gradients, global grad norm, AdamW
/// recompute             every layer's forward again (attention included) before its backward
/// memo                  on swapped layers, the (1-alpha) tokens' pre- and post-attention ops (all 4 GEMMs, no attention)
/// swap/memo copies      one copy thread (memcpy): a layer's copy-out runs while the next layer computes and its
///                       prefetch while the layer above runs backward, so a copy costs only what it does not hide;
///                       when the worker threads take every core, the copy thread also takes its share of them
/// </code>
/// GEMMs run at the profile's fp32 peak x gemm_efficiency, attention at the peak x its forward/backward efficiency,
/// memory-bound passes at memory_bandwidth (bytes read + written), copies at host_link_bandwidth. On this device
/// <c>--measure</c> fills all four from the engine's own kernels at the workload's shapes (<see cref="CpuMeasure"/>).
/// <para>
/// C context-parallel x D data-parallel ranks (<c>mpiexec -n C*D memo train --cp C</c>, all on this machine): a rank
/// runs the token-local work on its T/C tokens and 1/C of the causal attention pairs (the zig-zag ring gives every
/// rank the same 2 chunk x chunk blocks per ring step, see <see cref="Memo.Distributed.RingAttention"/>), plus the ring
/// communication its compute does not hide (<see cref="RingExposed"/>), plus the gradient all-reduce over the C*D
/// ranks. The ranks share the machine's cores: a rank of t threads runs on min(C*D*t, cores)/(C*D) cores' worth
/// (<see cref="RankShare"/>). Transfers between ranks run at intra_node_bandwidth (the rank-to-rank rate).
/// </para>
/// </summary>
public static class CpuTimeModel
{
    /// <summary>Seconds of one layer's forward on the engine (what the engine's alpha rule measures as the layer time).</summary>
    public static double LayerForward(ModelConfig model, long batch, long seq, DeviceProfile dev) =>
        LayerForward(model, batch, seq, dev, 1, ParallelLayout.Single);

    /// <summary>
    /// Seconds of one layer's forward on one rank of <paramref name="layout"/> (its tokens, its share of attention and the
    /// ring's exposed transfers) with <paramref name="threads"/> worker threads per rank.
    /// </summary>
    public static double LayerForward(ModelConfig model, long batch, long seq, DeviceProfile dev, int threads, ParallelLayout layout)
    {
        var c = Costs.Of(model, batch, seq, dev, threads, layout);
        return c.GemmForward + c.AttentionForward + c.PassesForward + RingExposed(c, layout.Cp, dev).Forward;
    }

    /// <summary>
    /// One training step (forward, loss, backward, optimizer update) of <paramref name="batch"/> x
    /// <paramref name="seq"/> tokens under <paramref name="policy"/> with <paramref name="threads"/> worker threads.
    /// </summary>
    public static StepTime Step(ModelConfig model, long batch, long seq, MemoryPolicy policy, DeviceProfile dev, int threads) =>
        Step(model, batch, seq, policy, dev, threads, ParallelLayout.Single);

    /// <summary>
    /// One training step on one rank of <paramref name="layout"/> (C = Cp context-parallel ranks split each of the
    /// <paramref name="batch"/> sequences of <paramref name="seq"/> tokens; D = Dp data-parallel groups), each rank with
    /// <paramref name="threads"/> worker threads. With one rank this is the one-process step.
    /// </summary>
    public static StepTime Step(ModelConfig model, long batch, long seq, MemoryPolicy policy, DeviceProfile dev, int threads, ParallelLayout layout)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(dev);
        var c = Costs.Of(model, batch, seq, dev, threads, layout);
        int L = model.NumLayers;
        int ranks = layout.Cp * layout.Dp;
        var engine = CpuRuntime.PolicyFor(policy, L);
        double alpha = CpuRuntime.AlphaOf(policy, L);
        long n = batch * (seq / layout.Cp);
        var ring = RingExposed(c, layout.Cp, dev);
        double layerFwd = c.GemmForward + c.AttentionForward + c.PassesForward + ring.Forward;
        double layerBwd = 2 * c.GemmForward + c.AttentionBackward + c.PassesBackward + ring.Backward;
        double fwd = 0, bwd = 0, rec = 0, exposed = 0, copyTotal = 0;
        long copied = 0;

        // Bytes of one swapped layer's copy (each way), as the engine's policy runtime queues them.
        long swapRows = engine == PolicyKind.Memo ? (long)Math.Floor(alpha * n) : n;
        long layerCopy = engine is PolicyKind.Swap or PolicyKind.Memo
            ? c.SkeletonBytesPerToken * n + c.TokenLocalBytesPerToken * (engine == PolicyKind.Swap ? n : swapRows) : 0;
        for (int l = 0; l < L; l++)
        {
            double r = 0;
            bool swapped = engine is PolicyKind.Swap or PolicyKind.Memo && MemoryPolicy.IsSwapped(l, L);
            if (engine == PolicyKind.Recompute) r = layerFwd;
            if (swapped && engine == PolicyKind.Memo) r = (n - swapRows) / (double)n * (c.GemmForward + c.PassesForward);
            if (swapped)
            {
                double copy = layerCopy / dev.HostLinkBandwidth;
                exposed += Math.Max(0, copy - layerFwd) + Math.Max(0, copy - (layerBwd + r));
                copyTotal += 2 * copy;
                copied += 2 * layerCopy;
            }
            fwd += layerFwd;
            bwd += layerBwd;
            rec += r;
        }
        // The copy thread competes with the workers for the cores when they take all of them.
        if ((long)ranks * threads >= Environment.ProcessorCount) exposed += copyTotal / Math.Max(1, threads);

        // Gradients are summed over all C x D ranks before the optimizer (the bandwidth-optimal all-reduce: each rank
        // sends 2 (N-1)/N of them at the rank-to-rank rate and sums (N-1)/N of them, reading two floats and writing one,
        // at memory_bandwidth).
        long allReduce = CpuRuntime.AllReduceBytes(model, ranks);
        double reduce = allReduce > 0 ? allReduce / dev.IntraNodeBandwidth + 1.5 * allReduce / c.MemoryBandwidth : 0;
        long ringBytes = CpuRuntime.RingBytes(model, batch, seq, policy, layout.Cp);
        // The ring's exposed transfers per layer: forward and backward, and the forward again when recomputing.
        double ringTotal = L * (ring.Forward + ring.Backward) + (engine == PolicyKind.Recompute ? L * ring.Forward : 0);

        return new StepTime
        {
            Forward = fwd + c.OutsideForward,
            Backward = bwd + c.OutsideBackward,
            Recompute = rec,
            SwapExposed = exposed,
            Head = c.Head,
            Optimizer = c.Optimizer,
            DataParallel = reduce,
            LayerCommunication = ringTotal,
            SwapBytes = copied,
            LayerCommunicationBytes = ringBytes,
            DataParallelBytes = allReduce,
        };
    }

    /// <summary>
    /// Seconds of one layer's ring transfers that its attention compute does not hide, forward and backward, on a ring
    /// of <paramref name="cp"/> ranks. Each of the C ring steps computes the same share of the rank's attention; forward,
    /// the next key/value block arrives while a step computes (C-1 transfers, exposed where longer than the step);
    /// backward, the key/value block travels the same way and, from the second step on, the dK/dV accumulator of the
    /// same keys arrives while the step computes its contribution into a local block (two blocks in flight per step);
    /// the last hop, which returns each rank its own accumulator, has nothing left to overlap.
    /// </summary>
    private static (double Forward, double Backward) RingExposed(in Costs c, int cp, DeviceProfile dev)
    {
        if (cp <= 1) return (0, 0);
        double block = c.RingBlockBytes / dev.IntraNodeBandwidth;
        double fwdStep = c.AttentionForward / cp, bwdStep = c.AttentionBackward / cp;
        return ((cp - 1) * Math.Max(0, block - fwdStep), (cp - 1) * Math.Max(0, 2 * block - bwdStep) + block);
    }

    /// <summary>
    /// The fraction of the profile's rate for <paramref name="key"/> that one of <paramref name="ranks"/> ranks of
    /// <paramref name="threads"/> threads reaches while all run at once: the ranks share the machine's cores, each
    /// running on min(ranks x threads, cores) / ranks cores' worth. The profile's assumed rates are the whole machine's
    /// (every core); a rate measured with --measure is one rank's, at its threads. One process (one rank) takes the
    /// profile's rates as they are.
    /// </summary>
    public static double RankShare(DeviceProfile dev, string key, int threads, int ranks)
    {
        ArgumentNullException.ThrowIfNull(dev);
        if (ranks <= 1) return 1;
        int cores = Environment.ProcessorCount;
        double perRank = Math.Min((double)ranks * threads, cores) / ranks;
        double profileCores = dev.Measured.Contains(key) ? Math.Min(threads, cores) : cores;
        return perRank / profileCores;
    }

    /// <summary>
    /// Floats read + written by the engine's memory-bound work: per token for one layer's passes forward and
    /// backward, for the passes outside the layers (embedding, final norm, clearing the residual gradient), for the
    /// loss (cross-entropy and its gradient over the logits), and per parameter for the optimizer. Time for it is
    /// this traffic at memory_bandwidth; <see cref="CpuMeasure"/> measures that rate on the same passes, so the
    /// figure is the rate the engine's passes reach, reductions and transcendentals included.
    /// </summary>
    public readonly record struct PassTraffic(double LayerForward, double LayerBackward, double OutsideForward, double OutsideBackward,
        double LossPerToken, double OptimizerPerParameter);

    public static PassTraffic Traffic(ModelConfig model)
    {
        ArgumentNullException.ThrowIfNull(model);
        double C = model.HiddenSize, F = model.IntermediateSize, Q = model.QkvSize, V = model.VocabSize;
        double rope = (double)(model.NumHeads + model.NumKvHeads) * model.HeadDim;
        return model.Family == ModelFamily.Llama
            ? new PassTraffic(
                LayerForward: 2 * C + 2 * rope + 3 * C + 2 * C + 3 * F + 3 * C,    // rmsnorm, rotary q and k, add, rmsnorm, swiglu, add
                LayerBackward: 5 * F + 2 * C + 4 * C + 2 * rope + 4 * C,           // swiglu, copy, rmsnorm, rotary, rmsnorm
                OutsideForward: 2 * C + 2 * C,                                      // embedding, final rmsnorm
                OutsideBackward: C + 4 * C + 3 * C,                                 // clear, final rmsnorm, embedding
                LossPerToken: 3 * V,                                                // max, sum of exp, gradient in place
                OptimizerPerParameter: 9)                                          // clear grads, grad norm, AdamW (w, g, m, v in; w, m, v out)
            : new PassTraffic(
                LayerForward: 2 * C + 2 * Q + 2 * C + 3 * C + 2 * C + 2 * F + 2 * F + 2 * C + 3 * C, // layernorm, 4 biases, add, layernorm, gelu, add
                LayerBackward: C + 3 * F + F + 2 * C + 4 * C + C + Q + 4 * C,                       // bias, gelu, bias, copy, layernorm, bias, bias, layernorm
                OutsideForward: 3 * C + 2 * C,
                OutsideBackward: C + 4 * C + 5 * C,
                LossPerToken: 3 * V,
                OptimizerPerParameter: 9);
    }

    /// <summary>Seconds of each part of one rank's work for one step shape.</summary>
    private readonly record struct Costs(
        double GemmForward, double AttentionForward, double AttentionBackward, double PassesForward, double PassesBackward,
        double OutsideForward, double OutsideBackward, double Head, double Optimizer,
        long SkeletonBytesPerToken, long TokenLocalBytesPerToken, double MemoryBandwidth, long RingBlockBytes)
    {
        /// <summary>
        /// One rank of <paramref name="layout"/>: the token-local work of its batch x seq/C tokens, 1/C of the causal
        /// attention of the whole sequences, at its share of the machine (<see cref="RankShare"/>).
        /// </summary>
        public static Costs Of(ModelConfig m, long batch, long seq, DeviceProfile dev, int threads, ParallelLayout layout)
        {
            ArgumentNullException.ThrowIfNull(m);
            ArgumentNullException.ThrowIfNull(dev);
            int cp = layout.Cp, ranks = layout.Cp * layout.Dp;
            var shape = new LayerShape(m, Precision.Fp32);
            long localSeq = seq / cp;
            double n = (double)batch * localSeq;
            double gemmRate = dev.PeakFp32Flops * dev.GemmEfficiency * RankShare(dev, "gemm_efficiency", threads, ranks);
            double bw = dev.MemoryBandwidth * RankShare(dev, "memory_bandwidth", threads, ranks);
            double attnFwdRate = dev.PeakFp32Flops * dev.AttentionForwardEfficiency * RankShare(dev, "attention_forward_efficiency", threads, ranks);
            double attnBwdRate = dev.PeakFp32Flops * dev.AttentionBackwardEfficiency * RankShare(dev, "attention_backward_efficiency", threads, ranks);
            const double F32 = sizeof(float);

            var traffic = Traffic(m);
            double headGemm = 3 * shape.HeadFlopsPerToken * n / gemmRate;          // logits, dx, dW
            long parameters = new ParameterLayout(m).TotalElements;

            var (skel, local) = ActivationInventory.SavedBytesPerToken(m, sizeof(float));
            double attention = shape.AttentionFlops(batch, seq) / cp;
            return new Costs(
                GemmForward: shape.GemmFlopsPerToken * n / gemmRate,
                AttentionForward: attention / attnFwdRate,
                AttentionBackward: 2.5 * attention / attnBwdRate,
                PassesForward: traffic.LayerForward * F32 * n / bw,
                PassesBackward: traffic.LayerBackward * F32 * n / bw,
                OutsideForward: traffic.OutsideForward * F32 * n / bw,
                OutsideBackward: traffic.OutsideBackward * F32 * n / bw,
                Head: headGemm + traffic.LossPerToken * F32 * n / bw,
                Optimizer: traffic.OptimizerPerParameter * F32 * parameters / bw,
                SkeletonBytesPerToken: skel,
                TokenLocalBytesPerToken: local,
                MemoryBandwidth: bw,
                RingBlockBytes: cp > 1 ? CpuRuntime.RingBlockBytes(m, batch, seq, cp) : 0);
        }
    }
}
