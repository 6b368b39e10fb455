namespace Memo.CostModel;

/// <summary>
/// Step-time model: FLOPs from <see cref="LayerShape"/>, divided over the devices sharing a sequence, at the
/// profile's peak times its efficiency factors; memory-bound work at memory bandwidth; collectives at the link
/// rate times the collective efficiency (intra-node NVLink while a group stays in a node, the network otherwise);
/// swap copies at the per-GPU host link rate when all GPUs copy at once.
/// </summary>
public static class TimeModel
{
    public static LayerTimes Layer(LayerShape shape, ParallelLayout lay, DeviceProfile dev, long batch, long seq)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(dev);
        int act = shape.Precision.ActivationBytes;
        double shards = lay.SequenceShards;
        double tokens = (double)batch * seq;
        double tokensPerGroup = tokens / lay.Cp;
        double peak = dev.PeakFlops;

        double gemm = shape.GemmFlopsPerToken * tokens / shards / (peak * dev.GemmEfficiency);
        double attnFlops = shape.AttentionFlops(batch, seq) / shards;
        double attnF = attnFlops / (peak * dev.AttentionForwardEfficiency);
        double attnB = 2.5 * attnFlops / (peak * dev.AttentionBackwardEfficiency);
        double elem = 2.0 * (shape.SavedBytesPerToken + shape.TransientBytesPerToken) * tokens / shards / dev.MemoryBandwidth;

        // Tensor + sequence parallel: 2 all-gathers and 2 reduce-scatters of the full residual stream per pass.
        double tpOne = lay.Tp > 1
            ? (lay.Tp - 1.0) / lay.Tp * shape.ResidualWidth * act * tokensPerGroup / Bandwidth(dev, lay.Tp)
            : 0;
        double tp = 4 * tpOne;

        // Context parallel (ring attention, load-balanced causal): cp-1 k,v chunks pass each device, overlapped
        // with the attention blocks; backward passes k,v and their gradients.
        double cpRing = 0;
        if (lay.Cp > 1 && lay.Sharding == SequenceSharding.TensorSequence)
        {
            double chunk = (shape.QkvWidth - shape.AttentionWidth) * act * tokensPerGroup / lay.Tp;
            cpRing = (lay.Cp - 1) * chunk / Bandwidth(dev, lay.Tp * lay.Cp);
        }
        double attnFwd = Math.Max(attnF, cpRing);
        double attnBwd = Math.Max(attnB, 2 * cpRing);

        // Ulysses: all-to-alls of q, k, v and o per pass.
        double a2a = lay.Cp > 1 && lay.Sharding == SequenceSharding.Ulysses
            ? (lay.Cp - 1.0) / lay.Cp * (shape.QkvWidth + shape.AttentionWidth) * act * tokens / shards / Bandwidth(dev, lay.Cp)
            : 0;

        double forward = gemm + attnFwd + elem + tp + a2a;
        double backward = 2 * gemm + attnBwd + 2 * elem + tp + a2a;
        double zero = 0;
        if (lay.ZeroStage >= 3 && lay.Gpus > 1)
        {
            // ZeRO-3: the layer's parameters are all-gathered before use and its gradients reduce-scattered,
            // prefetched so that they overlap with compute.
            double gather = (lay.Gpus - 1.0) / lay.Gpus * MemoryModel.LayerParameters(shape.Model) * shape.Precision.ParameterBytes / Bandwidth(dev, lay.Gpus);
            forward = Math.Max(forward, gather);
            backward = Math.Max(backward, 2 * gather);
            zero = 3 * gather;
        }
        double recompute = shape.TokenLocalRecomputeFlopsPerToken * tokens / shards / (peak * dev.GemmEfficiency) + elem + 0.75 * tp;
        return new LayerTimes
        {
            Gemm = gemm,
            Attention = attnFwd,
            Elementwise = elem,
            Communication = tp + a2a,
            Forward = forward,
            Backward = backward,
            TokenRecomputeAll = recompute,
            CommunicationTotal = 2 * (tp + a2a) + 3 * cpRing + zero,
        };
    }

    /// <summary>
    /// The whole step for a policy. Swapped layers overlap their copy with compute: in forward a layer's copy to the
    /// host runs while the next layer computes (two rounding buffers), so a layer costs max(forward, copy); in
    /// backward layer i's prefetch runs while layer i+1 computes, so a layer costs max(backward + recompute, copy).
    /// Megatron's offloaded layers overlap the same way; DeepSpeed's cpu_checkpointing copies block. Selective
    /// recomputation re-runs the dropped element-wise rows at memory bandwidth. Under pipeline parallelism each
    /// sequence is one micro-batch and 1F1B takes (micro-batches + stages - 1) stage slots.
    /// </summary>
    public static StepTime Step(LayerShape shape, ParallelLayout lay, DeviceProfile dev, long batch, long seq, MemoryPolicy policy, MemoryBreakdown memory, StrategyFeatures? features = null)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(dev);
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(memory);
        var f = features ?? StrategyFeatures.None;
        int pp = Math.Max(1, lay.Pp);
        long micro = pp > 1 ? 1 : batch;               // sequences computed together
        long microBatches = pp > 1 ? batch : 1;
        var t = Layer(shape, lay, dev, micro, seq);
        int L = shape.Model.NumLayers / pp;
        double fwd = 0, bwd = 0, rec = 0, exposed = 0;
        long copied = 0;
        double link = dev.ConcurrentHostLinkBandwidth;
        int gpusPerNode = Math.Min(lay.Gpus, dev.GpusPerNode);
        double shards = lay.SequenceShards;
        double tokens = (double)micro * seq;
        int recomputed = policy.Kind == PolicyKind.Recompute ? Math.Min(policy.RecomputedLayers, L) : 0;
        int offloaded = policy.Kind is PolicyKind.Keep or PolicyKind.Recompute ? Math.Clamp(f.OffloadedLayers, 0, L - recomputed) : 0;
        double selective = f.SelectiveRecompute ? 2.0 * shape.SelectiveBytesPerToken * tokens / shards / dev.MemoryBandwidth : 0;
        for (int i = 0; i < L; i++)
        {
            double fl = t.Forward, b = t.Backward, r = 0;
            if (i < recomputed)
            {
                r = t.FullRecompute;
                if (f.CpuCheckpointing)
                {
                    exposed += 2.0 * memory.LayerInputBytes / link; // blocking copy out after the forward, back before the recompute
                    copied += 2 * memory.LayerInputBytes;
                }
            }
            else if (i < recomputed + offloaded)
            {
                double copy = memory.LayerKeptBytes / link;
                exposed += Math.Max(0, copy - fl) + Math.Max(0, copy - b);
                copied += 2 * memory.LayerKeptBytes;
                if (f.SelectiveRecompute) r = selective;
            }
            else if (policy.Kind is PolicyKind.Keep or PolicyKind.Recompute && f.SelectiveRecompute)
            {
                r = selective;
            }
            if (policy.Kind is PolicyKind.Swap or PolicyKind.Memo && MemoryPolicy.IsSwapped(i, L))
            {
                double a = policy.Alphas is { } al && i < al.Count ? al[i] : 1.0;
                r = (1 - a) * t.TokenRecomputeAll;
                long bytes = memory.LayerSkeletonBytes + (long)Math.Round(a * memory.LayerTokenLocalBytes);
                // A layer on the disk tier is written at the disk's write rate in forward and read back at its read
                // rate in backward (the disk shared by the node's GPUs, no faster than the host link).
                bool onDisk = i >= MemoryPolicy.SwappedLayers(L) - memory.DiskLayers;
                double copyOut = bytes / (onDisk ? dev.ConcurrentDiskBandwidth(gpusPerNode, write: true) : link);
                double copyIn = bytes / (onDisk ? dev.ConcurrentDiskBandwidth(gpusPerNode, write: false) : link);
                exposed += Math.Max(0, copyOut - fl) + Math.Max(0, copyIn - (b + r));
                copied += 2 * bytes;
            }
            fwd += fl;
            bwd += b;
            rec += r;
        }

        double tokensPerGroup = tokens / lay.Cp;
        int act = shape.Precision.ActivationBytes;
        double headGemm = shape.HeadFlopsPerToken * tokens / shards / (dev.PeakFlops * dev.GemmEfficiency);
        double logitsBytes = tokensPerGroup * (shape.Model.VocabSize / (double)lay.Tp) * Precision.StatBytes;
        double headGather = lay.Tp > 1 ? 2 * (lay.Tp - 1.0) / lay.Tp * shape.ResidualWidth * act * tokensPerGroup / Bandwidth(dev, lay.Tp) : 0;
        double head = 3 * headGemm + 3 * logitsBytes / dev.MemoryBandwidth + headGather;

        var p = shape.Precision;
        double optBytes = memory.OptimizerState == 0 ? 0
            : (double)memory.OptimizerState / (p.MasterBytes + p.OptimizerBytes) * (2.0 * (p.MasterBytes + p.OptimizerBytes) + p.GradientBytes + p.ParameterBytes);
        double optimizer = optBytes / dev.MemoryBandwidth;

        double dp = 0;
        int group = lay.Cp * lay.Dp;
        if (lay.ZeroStage < 3 && group > 1)
            dp = (group - 1.0) / group * memory.ParametersPerDevice * (p.GradientBytes + p.ParameterBytes) / Bandwidth(dev, lay.StageGpus);

        double pipeline = 0;
        if (pp > 1)
        {
            // 1F1B: m micro-batches through pp stages take (m + pp - 1) slots of one stage's layers; the last stage
            // also runs the head (counted once per micro-batch below). Each boundary sends the residual stream forward
            // and its gradient back once per micro-batch.
            double stage = fwd + bwd + rec + exposed;
            double send = shape.ResidualWidth * act * tokensPerGroup / lay.Tp / Bandwidth(dev, lay.Gpus);
            pipeline = (pp - 1) * stage + 2.0 * (pp - 1 + microBatches - 1) * send;
            fwd *= microBatches;
            bwd *= microBatches;
            rec *= microBatches;
            exposed *= microBatches;
            head *= microBatches;
            copied *= microBatches;
        }

        return new StepTime
        {
            Forward = fwd,
            Backward = bwd,
            Recompute = rec,
            SwapExposed = exposed,
            Head = head,
            Optimizer = optimizer,
            DataParallel = dp,
            Pipeline = pipeline,
            LayerCommunication = L * t.CommunicationTotal + headGather,
            SwapBytes = copied,
        };
    }

    /// <summary>Per-GPU, per-direction collective rate for a group of <paramref name="span"/> consecutive ranks.</summary>
    public static double Bandwidth(DeviceProfile dev, int span)
    {
        ArgumentNullException.ThrowIfNull(dev);
        double bw = span <= dev.GpusPerNode ? dev.IntraNodeCollectiveBandwidth : dev.InterNodeCollectiveBandwidth;
        return bw > 0 ? bw : throw new MemoException($"profile '{dev.Name}' has no link between devices for a group of {span}; give intra_node_bandwidth / inter_node_bandwidth in --device-profile");
    }
}
