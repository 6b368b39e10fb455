using Memo.Model;
using Memo.Model.Memory;

namespace Memo.CostModel;

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
/// </summary>
public static class CpuTimeModel
{
    /// <summary>Seconds of one layer's forward on the engine (what the engine's alpha rule measures as the layer time).</summary>
    public static double LayerForward(ModelConfig model, long batch, long seq, DeviceProfile dev)
    {
        var c = Costs.Of(model, batch, seq, dev);
        return c.GemmForward + c.AttentionForward + c.PassesForward;
    }

    /// <summary>
    /// One training step (forward, loss, backward, optimizer update) of <paramref name="batch"/> x
    /// <paramref name="seq"/> tokens under <paramref name="policy"/> with <paramref name="threads"/> worker threads.
    /// </summary>
    public static StepTime Step(ModelConfig model, long batch, long seq, MemoryPolicy policy, DeviceProfile dev, int threads)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(dev);
        var c = Costs.Of(model, batch, seq, dev);
        int L = model.NumLayers;
        var engine = CpuRuntime.PolicyFor(policy, L);
        double alpha = CpuRuntime.AlphaOf(policy, L);
        long n = batch * seq;
        double layerFwd = c.GemmForward + c.AttentionForward + c.PassesForward;
        double layerBwd = 2 * c.GemmForward + c.AttentionBackward + c.PassesBackward;
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
        if (threads >= Environment.ProcessorCount) exposed += copyTotal / Math.Max(1, threads);

        return new StepTime
        {
            Forward = fwd + c.OutsideForward,
            Backward = bwd + c.OutsideBackward,
            Recompute = rec,
            SwapExposed = exposed,
            Head = c.Head,
            Optimizer = c.Optimizer,
            DataParallel = 0,
            LayerCommunication = 0,
            SwapBytes = copied,
        };
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

    /// <summary>Seconds of each part of the engine's work for one step shape.</summary>
    private readonly record struct Costs(
        double GemmForward, double AttentionForward, double AttentionBackward, double PassesForward, double PassesBackward,
        double OutsideForward, double OutsideBackward, double Head, double Optimizer,
        long SkeletonBytesPerToken, long TokenLocalBytesPerToken)
    {
        public static Costs Of(ModelConfig m, long batch, long seq, DeviceProfile dev)
        {
            ArgumentNullException.ThrowIfNull(m);
            ArgumentNullException.ThrowIfNull(dev);
            var shape = new LayerShape(m, Precision.Fp32);
            double n = (double)batch * seq;
            double gemmRate = dev.PeakFp32Flops * dev.GemmEfficiency;
            double bw = dev.MemoryBandwidth;
            const double F32 = sizeof(float);

            var traffic = Traffic(m);
            double headGemm = 3 * shape.HeadFlopsPerToken * n / gemmRate;          // logits, dx, dW
            long parameters = new ParameterLayout(m).TotalElements;

            var (skel, local) = ActivationInventory.SavedBytesPerToken(m, sizeof(float));
            double attention = shape.AttentionFlops(batch, seq);
            return new Costs(
                GemmForward: shape.GemmFlopsPerToken * n / gemmRate,
                AttentionForward: attention / (dev.PeakFp32Flops * dev.AttentionForwardEfficiency),
                AttentionBackward: 2.5 * attention / (dev.PeakFp32Flops * dev.AttentionBackwardEfficiency),
                PassesForward: traffic.LayerForward * F32 * n / bw,
                PassesBackward: traffic.LayerBackward * F32 * n / bw,
                OutsideForward: traffic.OutsideForward * F32 * n / bw,
                OutsideBackward: traffic.OutsideBackward * F32 * n / bw,
                Head: headGemm + traffic.LossPerToken * F32 * n / bw,
                Optimizer: traffic.OptimizerPerParameter * F32 * parameters / bw,
                SkeletonBytesPerToken: skel,
                TokenLocalBytesPerToken: local);
        }
    }
}
