using System.Globalization;

namespace Memo.CostModel;

/// <summary>
/// How fit, alpha and MFU move when each assumed efficiency, bandwidth or allowance changes by a stated amount:
/// efficiencies by 0.10 (absolute), bandwidths by 20%, the fitted GPUs-per-host-link constant to 1 and 4, the
/// caching allocator's fragmentation factor by 0.10, the reserved device memory by 1 GiB. Specifications (peak
/// FLOP/s, memory sizes) are not moved.
/// </summary>
public static class Sensitivity
{
    /// <summary>Absolute change applied to each efficiency factor.</summary>
    public const double EfficiencyStep = 0.10;

    /// <summary>Relative change applied to each bandwidth.</summary>
    public const double BandwidthStep = 0.20;

    /// <summary>Change applied to the caching allocator's fragmentation factor.</summary>
    public const double FragmentationStep = 0.10;

    /// <summary>The parameters moved for a request on <paramref name="device"/>.</summary>
    public static IReadOnlyList<SensitivityParameter> Parameters(DeviceProfile device)
    {
        ArgumentNullException.ThrowIfNull(device);
        string eff = string.Create(CultureInfo.InvariantCulture, $"-/+{EfficiencyStep:0.00}");
        string bw = string.Create(CultureInfo.InvariantCulture, $"-/+{BandwidthStep:P0}");
        static double Frac(double x) => Math.Clamp(x, 0.01, 1.0);
        static PlanRequest Dev(PlanRequest r, Func<DeviceProfile, DeviceProfile> f) => r with { Device = f(r.Device) };
        var list = new List<SensitivityParameter>
        {
            new("gemm_efficiency", eff,
                r => Dev(r, d => d with { GemmEfficiency = Frac(d.GemmEfficiency - EfficiencyStep) }),
                r => Dev(r, d => d with { GemmEfficiency = Frac(d.GemmEfficiency + EfficiencyStep) }), r => r.Device.GemmEfficiency),
            new("attention_forward_efficiency", eff,
                r => Dev(r, d => d with { AttentionForwardEfficiency = Frac(d.AttentionForwardEfficiency - EfficiencyStep) }),
                r => Dev(r, d => d with { AttentionForwardEfficiency = Frac(d.AttentionForwardEfficiency + EfficiencyStep) }), r => r.Device.AttentionForwardEfficiency),
            new("attention_backward_efficiency", eff,
                r => Dev(r, d => d with { AttentionBackwardEfficiency = Frac(d.AttentionBackwardEfficiency - EfficiencyStep) }),
                r => Dev(r, d => d with { AttentionBackwardEfficiency = Frac(d.AttentionBackwardEfficiency + EfficiencyStep) }), r => r.Device.AttentionBackwardEfficiency),
            new("memory_bandwidth", bw,
                r => Dev(r, d => d with { MemoryBandwidth = d.MemoryBandwidth * (1 - BandwidthStep) }),
                r => Dev(r, d => d with { MemoryBandwidth = d.MemoryBandwidth * (1 + BandwidthStep) }), r => r.Device.MemoryBandwidth),
            new("host_link_bandwidth", bw,
                r => Dev(r, d => d with { HostLinkBandwidth = d.HostLinkBandwidth * (1 - BandwidthStep) }),
                r => Dev(r, d => d with { HostLinkBandwidth = d.HostLinkBandwidth * (1 + BandwidthStep) }), r => r.Device.HostLinkBandwidth),
        };
        if (device.CpuEngine) return list;
        if (device.HasDiskTier)
        {
            list.Add(new("disk_bandwidth", bw,
                r => Dev(r, d => d with { DiskReadBandwidth = d.DiskReadBandwidth * (1 - BandwidthStep), DiskWriteBandwidth = d.DiskWriteBandwidth * (1 - BandwidthStep) }),
                r => Dev(r, d => d with { DiskReadBandwidth = d.DiskReadBandwidth * (1 + BandwidthStep), DiskWriteBandwidth = d.DiskWriteBandwidth * (1 + BandwidthStep) }),
                r => r.Device.DiskReadBandwidth ?? 0));
        }
        list.AddRange(
        [
            new("gpus_per_host_link", "4 / 1 (fitted: 2)",
                r => Dev(r, d => d with { GpusPerHostLink = 4 }),
                r => Dev(r, d => d with { GpusPerHostLink = 1 }), r => r.Device.GpusPerHostLink),
            new("collective_efficiency", eff,
                r => Dev(r, d => d with { CollectiveEfficiency = Frac(d.CollectiveEfficiency - EfficiencyStep) }),
                r => Dev(r, d => d with { CollectiveEfficiency = Frac(d.CollectiveEfficiency + EfficiencyStep) }), r => r.Device.CollectiveEfficiency),
            new("intra_node_bandwidth", bw,
                r => Dev(r, d => d with { IntraNodeBandwidth = d.IntraNodeBandwidth * (1 - BandwidthStep) }),
                r => Dev(r, d => d with { IntraNodeBandwidth = d.IntraNodeBandwidth * (1 + BandwidthStep) }), r => r.Device.IntraNodeBandwidth),
            new("inter_node_bandwidth", bw,
                r => Dev(r, d => d with { InterNodeBandwidth = d.InterNodeBandwidth * (1 - BandwidthStep) }),
                r => Dev(r, d => d with { InterNodeBandwidth = d.InterNodeBandwidth * (1 + BandwidthStep) }), r => r.Device.InterNodeBandwidth),
            new("fragmentation_factor", string.Create(CultureInfo.InvariantCulture, $"+/-{FragmentationStep:0.00}"),
                r => r with { FragmentationFactor = r.FragmentationFactor + FragmentationStep },
                r => r with { FragmentationFactor = Math.Max(1, r.FragmentationFactor - FragmentationStep) }, r => r.FragmentationFactor),
            new("reserved_bytes", "+/-1 GiB",
                r => Dev(r, d => d with { ReservedBytes = d.ReservedBytes + (1L << 30) }),
                r => Dev(r, d => d with { ReservedBytes = Math.Max(0, d.ReservedBytes - (1L << 30)) }), r => r.Device.ReservedBytes),
        ]);
        return list;
    }

    /// <summary>Plans every strategy with each parameter moved each way.</summary>
    public static IReadOnlyList<SensitivityRow> Run(PlanRequest r, IReadOnlyList<Strategy> strategies)
    {
        ArgumentNullException.ThrowIfNull(r);
        ArgumentNullException.ThrowIfNull(strategies);
        var basePlans = StrategySearch.PlanAll(r, strategies);
        var rows = new List<SensitivityRow>();
        foreach (var p in Parameters(r.Device))
        {
            var worse = p.Worse(r);
            var better = p.Better(r);
            rows.Add(new SensitivityRow(p, p.Value(worse), p.Value(r), p.Value(better),
                StrategySearch.PlanAll(worse, strategies), basePlans, StrategySearch.PlanAll(better, strategies)));
        }
        return rows;
    }
}
