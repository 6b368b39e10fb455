using System.Globalization;

namespace Memo.CostModel;

/// <summary>Every efficiency, bandwidth and allowance a plan uses, with its source (printed by --verbose and --json).</summary>
public static class Assumptions
{
    /// <summary>The figures behind a plan for <paramref name="r"/>, in a fixed order.</summary>
    public static IReadOnlyList<Assumption> For(PlanRequest r)
    {
        ArgumentNullException.ThrowIfNull(r);
        var d = r.Device;
        DeviceProfile? preset = d.Name switch
        {
            "a800" => DeviceProfile.A800,
            "h100" => DeviceProfile.H100,
            "h200" => DeviceProfile.H200,
            _ => null,
        };
        bool a800 = d.Name == "a800";
        var list = new List<Assumption>();
        void Add(string key, double value, string unit, Func<DeviceProfile, double> get, string kind, string source)
        {
            if (d.Measured.Contains(key)) { kind = "measured"; source = "measured on this machine at the planned shapes (--measure)"; }
            else if (d.CpuEngine && kind != "specification") source += "; --measure replaces it with this machine's figure";
            else if (preset is not null && get(preset) != value) { kind = "override"; source = "set by --device-profile, --device-memory or --host-memory"; }
            list.Add(new Assumption(key, value, unit, kind, source));
        }
        if (d.CpuEngine)
        {
            Add("peak_fp32_flops", d.PeakFp32Flops, "FLOP/s", p => p.PeakFp32Flops, "assumption", "cores x SIMD lanes x 2 FMA units x 2 FLOP x 3.5 GHz");
            Add("gemm_efficiency", d.GemmEfficiency, "", p => p.GemmEfficiency, "assumption", "the engine's GEMM mix on one Zen 5 core with AVX-512 (about 130 of 224 GFLOP/s)");
            Add("attention_forward_efficiency", d.AttentionForwardEfficiency, "", p => p.AttentionForwardEfficiency, "assumption", "the engine's causal attention forward (about 110 GFLOP/s per core)");
            Add("attention_backward_efficiency", d.AttentionBackwardEfficiency, "", p => p.AttentionBackwardEfficiency, "assumption", "the engine's attention backward");
            Add("memory_bandwidth", d.MemoryBandwidth, "B/s", p => p.MemoryBandwidth, "assumption", "rate of the engine's memory-bound passes (about 20 GB/s of modelled traffic)");
            Add("host_link_bandwidth", d.HostLinkBandwidth, "B/s", p => p.HostLinkBandwidth, "assumption", "one-thread memcpy, the engine's copy thread (about 20 GB/s)");
            Add("intra_node_bandwidth", d.IntraNodeBandwidth, "B/s", p => p.IntraNodeBandwidth, "assumption",
                "rank to rank (--cp/--dp ranks on this machine): MPI's shared-memory transfer, about half a one-thread memcpy (a copy into and out of shared memory; "
                + "MPICH 4.0.2 exchanged 1-2 MiB ring messages at up to 12 GB/s between 2 ranks on the 2-core Zen 5 machine, less under load)");
            list.Add(new Assumption("planned_arena_overhead", 1.0, "x", "measured", "device memory is the engine's own arena layout, padding included"));
            return list;
        }
        Add("peak_bf16_flops", d.PeakBf16Flops, "FLOP/s", p => p.PeakBf16Flops, "specification", "dense bf16 tensor-core peak, vendor data sheet (SMs x FLOP/clock/SM x boost clock)");
        Add("memory_bandwidth", d.MemoryBandwidth, "B/s", p => p.MemoryBandwidth, "specification", "HBM bandwidth, vendor data sheet");
        Add("device_memory_bytes", d.DeviceMemoryBytes, "B", p => p.DeviceMemoryBytes, "specification", "vendor data sheet");
        Add("gemm_efficiency", d.GemmEfficiency, "", p => p.GemmEfficiency, "assumption",
            a800 ? "cuBLAS reaches 250-270 of 312 TFLOP/s on large bf16 GEMMs of A100-class GPUs" : "about 700 of 989 TFLOP/s on large bf16 GEMMs (H100 class)");
        Add("attention_forward_efficiency", d.AttentionForwardEfficiency, "", p => p.AttentionForwardEfficiency, "assumption",
            a800 ? "FlashAttention-2 paper: 50-73% of A100 peak, forward near the top (causal, head dim 128, long sequence)" : "FlashAttention-3 level on H100");
        Add("attention_backward_efficiency", d.AttentionBackwardEfficiency, "", p => p.AttentionBackwardEfficiency, "assumption",
            a800 ? "FlashAttention-2 paper: backward below forward within its 50-73% range" : "FlashAttention-3 level on H100");
        Add("collective_efficiency", d.CollectiveEfficiency, "", p => p.CollectiveEfficiency, "assumption", "NCCL all-gather / reduce-scatter bus bandwidth about 80% of the link rate");
        Add("intra_node_bandwidth", d.IntraNodeBandwidth, "B/s", p => p.IntraNodeBandwidth, "specification",
            a800 ? "A800 NVLink: 8 NVLink3 links, 400 GB/s both directions" : "NVLink4, 900 GB/s both directions");
        Add("inter_node_bandwidth", d.InterNodeBandwidth, "B/s", p => p.InterNodeBandwidth, "assumption",
            a800 ? "4 x 200 Gb/s HDR InfiniBand per node, common in A800 clusters (the paper states InfiniBand only)" : "8 x 400 Gb/s NDR per node, one NIC per GPU");
        Add("host_link_bandwidth", d.HostLinkBandwidth, "B/s", p => p.HostLinkBandwidth, "assumption",
            a800 ? "PCIe Gen4 x16: 32 GB/s raw, about 25 GB/s reached by cudaMemcpyAsync from pinned memory" : "PCIe Gen5 x16: 64 GB/s raw, about 50 GB/s reached");
        Add("gpus_per_host_link", d.GpusPerHostLink, "", p => p.GpusPerHostLink, "fitted",
            "chosen so that a whole 7B layer's copy hides behind its forward from about 192K tokens on 8 x A800 with TP=8, where the paper reports it "
            + "(with 1 the point falls at about 54K); consistent with HGX boards where two GPUs share a PCIe switch uplink, but not measured");
        Add("reserved_bytes", d.ReservedBytes, "B", p => p.ReservedBytes, "assumption", "CUDA context, NCCL buffers, cuBLAS and attention workspaces");
        Add("host_reserved_bytes", d.HostReservedBytes, "B", p => p.HostReservedBytes, "assumption", "OS, framework, pinned staging and data loading per node");
        Add("host_memory_bytes", d.HostMemoryBytes, "B", p => p.HostMemoryBytes, "specification", "the paper's servers: 2 TB of host memory per 8-GPU node");
        if (d.HasDiskTier)
        {
            const string given = "set by --disk-tier or --device-profile: the node's disk (NVMe) tier for memo's swapped activations, shared by its GPUs (no preset has one)";
            list.Add(new Assumption("disk_capacity_bytes", d.DiskCapacityBytes!.Value, "B", "override", given));
            list.Add(new Assumption("disk_read_bandwidth", d.DiskReadBandwidth!.Value, "B/s", "override", given));
            list.Add(new Assumption("disk_write_bandwidth", d.DiskWriteBandwidth!.Value, "B/s", "override", given));
        }
        list.Add(new Assumption("fragmentation_factor", r.FragmentationFactor, "x", r.FragmentationFactor == 1.15 ? "assumption" : "override",
            "caching allocator (megatron, deepspeed), on the activation side: the paper's one measurement, 7B at 512K on Megatron-LM, 73.5 GB reserved for 65.7 GB allocated, about 15% of the activation part"));
        list.Add(new Assumption("planned_arena_overhead", r.PlannedArenaOverhead, "x", r.PlannedArenaSource.StartsWith("measured", StringComparison.Ordinal) ? "measured" : "assumption",
            "planned arena (memo, keep), on the activation side: " + r.PlannedArenaSource));
        list.Add(new Assumption("logits_chunk_tokens", r.LogitsChunkTokens ?? 0, "tokens", "assumption",
            r.LogitsChunkTokens is long c ? string.Create(CultureInfo.InvariantCulture, $"LM head and loss in chunks of {c} tokens for every strategy (--lm-head chunked)") : "all logits at once for every strategy (--lm-head whole)"));
        return list;
    }
}
