using System.Globalization;
using System.Text;

namespace Memo.Model.Memory;

/// <summary>The memory report printed before step 0 (and by --dry-run), and the "does not fit" error.</summary>
public static class MemoryReport
{
    /// <summary>Host bytes swapping needs for the layout's policy at <paramref name="alpha"/> (0 for keep/recompute).</summary>
    public static long HostBytes(ModelConfig cfg, int batch, int seq, PolicyKind policy, double alpha)
    {
        if (policy is PolicyKind.Keep or PolicyKind.Recompute) return 0;
        var (skel, rest) = ActivationInventory.SavedBytesPerToken(cfg, sizeof(float));
        long perLayer = MemoryPolicy.HostBytesPerLayer(skel, rest, (long)batch * seq, policy == PolicyKind.Swap ? 1.0 : alpha);
        return checked(MemoryPolicy.SwappedLayers(cfg.NumLayers) * perLayer);
    }

    public static string Describe(MemoryLayout layout, long capacity, long hostBytes, double alpha)
    {
        var sb = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        sb.AppendLine(string.Create(inv, $"memory  policy {layout.Policy.ToString().ToLowerInvariant()}, {layout.Batch} x {layout.Seq} tokens"));
        foreach (var (cat, bytes) in layout.ByCategory)
        {
            if (bytes > 0) sb.AppendLine(string.Create(inv, $"  device {Label(cat),-20} {Sizes.FormatBytes(bytes),12}"));
        }
        sb.AppendLine(string.Create(inv, $"  device {"peak (planned)",-20} {Sizes.FormatBytes(layout.TotalBytes),12}  of budget {Sizes.FormatBytes(capacity)}"));
        sb.AppendLine(string.Create(inv, $"  device {"most live at once",-20} {Sizes.FormatBytes(layout.LowerBound),12}  (lower bound; buffers with disjoint lifespans share memory)"));
        sb.AppendLine(string.Create(inv, $"  host   {"swap store",-20} {Sizes.FormatBytes(hostBytes),12}"));
        if (layout.Policy == PolicyKind.Memo)
        {
            int swapped = MemoryPolicy.SwappedLayers(layout.Config.NumLayers);
            sb.AppendLine(string.Create(inv, $"  alpha  {alpha:0.###} for layers 0..{swapped - 1} (the last two layers are not swapped), re-chosen after step 1 from measured layer time and copy bandwidth unless --alpha is given"));
        }
        return sb.ToString().TrimEnd();
    }

    public static string Label(MemoryCategory c) => c switch
    {
        MemoryCategory.Parameters => "parameters",
        MemoryCategory.Gradients => "gradients",
        MemoryCategory.OptimizerState => "optimizer state",
        MemoryCategory.KeptActivations => "kept activations",
        MemoryCategory.SwapStaging => "swap staging",
        MemoryCategory.RecomputeBuffers => "recompute buffers",
        _ => "workspaces",
    };

    /// <summary>The one-line error when a policy does not fit the device budget: bytes needed, budget, and what would fit.</summary>
    public static MemoException DoesNotFit(ModelConfig cfg, int batch, int seq, MemoryOptions options, Workspaces workspaces, long budget)
    {
        var layout = MemoryLayout.Build(cfg, batch, seq, options.Policy, workspaces);
        long need = layout.TotalBytes;
        var cats = layout.ByCategory;
        long resident = cats[MemoryCategory.Parameters] + cats[MemoryCategory.Gradients] + cats[MemoryCategory.OptimizerState];
        if (resident > budget)
        {
            return new MemoException(string.Create(CultureInfo.InvariantCulture,
                $"--device-memory {Sizes.FormatBytes(budget)} is smaller than the parameters, gradients and optimizer state alone ({Sizes.FormatBytes(resident)}) of {cfg.Name}; no policy or sequence length fits — raise --device-memory or use a smaller model"));
        }
        var fits = Enum.GetValues<PolicyKind>()
            .Select(p => (Policy: p, Bytes: MemoryLayout.Build(cfg, batch, seq, p, workspaces).TotalBytes))
            .Where(x => x.Bytes <= budget)
            .OrderBy(x => x.Bytes)
            .Select(x => x.Policy.ToString().ToLowerInvariant())
            .ToList();
        string policyHint = fits.Count > 0 ? $"--policy {string.Join(" or ", fits)} fits" : "no policy fits this sequence";
        // Longest sequence at which the requested policy fits.
        int lo = 0, hi = seq;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) / 2;
            if (MemoryLayout.Build(cfg, batch, mid, options.Policy, workspaces).TotalBytes <= budget) lo = mid;
            else hi = mid - 1;
        }
        string seqHint = lo >= 1 ? $"--seq {lo} fits with --policy {options.Policy.ToString().ToLowerInvariant()}" : "no sequence length fits this policy";
        return new MemoException(string.Create(CultureInfo.InvariantCulture,
            $"--policy {options.Policy.ToString().ToLowerInvariant()} needs {Sizes.FormatBytes(need)} ({need} bytes) of device memory but --device-memory is {Sizes.FormatBytes(budget)} ({budget} bytes); {policyHint}; {seqHint}"));
    }
}
