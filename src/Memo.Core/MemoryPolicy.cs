using System.Globalization;

namespace Memo;

/// <summary>
/// A memory policy for every layer of a model: its kind, the per-layer alpha, which layers swap, and the
/// rules that size it. The engine (train), the planner (plan) and every report take their answers from here:
/// <list type="bullet">
/// <item><see cref="IsSwapped"/> / <see cref="SwappedLayers"/>: every layer but the last two goes to host memory
/// (the last two start backward at once);</item>
/// <item><see cref="AlphaForHost"/> and <see cref="AlphaForLink"/>: the paper's one-variable LP, the largest alpha with
/// (S_skeleton + alpha S_rest) x swapped layers within the host budget and (S_skeleton + alpha S_rest) copied within
/// one layer's forward time;</item>
/// <item><see cref="SwappedTokens"/> and <see cref="HostBytesPerLayer"/>: what one swapped layer puts in host memory.</item>
/// </list>
/// </summary>
public sealed record MemoryPolicy
{
    private MemoryPolicy(PolicyKind kind, int recomputedLayers, IReadOnlyList<double>? alphas)
    {
        Kind = kind;
        RecomputedLayers = recomputedLayers;
        Alphas = alphas;
    }

    public PolicyKind Kind { get; }

    /// <summary>Number of layers fully recomputed (the first ones, as Megatron's block method does); 0 unless <see cref="PolicyKind.Recompute"/>.</summary>
    public int RecomputedLayers { get; }

    /// <summary>Per layer, the fraction of tokens whose token-local rows are swapped (Swap: all 1; Memo: chosen). Null for Keep/Recompute.</summary>
    public IReadOnlyList<double>? Alphas { get; }

    public static MemoryPolicy Keep { get; } = new(PolicyKind.Keep, 0, null);

    /// <summary>Full recomputation of the first <paramref name="layers"/> layers (all layers when it equals the layer count).</summary>
    public static MemoryPolicy Recompute(int layers)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(layers);
        return new(PolicyKind.Recompute, layers, null);
    }

    public static MemoryPolicy Swap(int layers) => new(PolicyKind.Swap, 0, Enumerable.Repeat(1.0, layers).ToArray());

    /// <summary>Memo with one alpha per layer (the last two layers' values are not used: those layers stay on the device).</summary>
    public static MemoryPolicy Memo(IReadOnlyList<double> alphas)
    {
        ArgumentNullException.ThrowIfNull(alphas);
        foreach (var a in alphas)
        {
            if (!(a >= 0 && a <= 1)) throw new ArgumentOutOfRangeException(nameof(alphas), a, "alpha must be in [0, 1]");
        }
        return new(PolicyKind.Memo, 0, alphas.ToArray());
    }

    /// <summary>True for the layers whose activations go to host memory: every layer but the last two.</summary>
    public static bool IsSwapped(int layer, int layers) => layer < layers - 2;

    /// <summary>How many layers of <paramref name="layers"/> go to host memory (<see cref="IsSwapped"/>).</summary>
    public static int SwappedLayers(int layers) => Math.Max(0, layers - 2);

    /// <summary>Tokens of <paramref name="tokens"/> whose token-local rows a swapped layer copies at <paramref name="alpha"/> (floor(alpha N)).</summary>
    public static long SwappedTokens(double alpha, long tokens) => (long)Math.Floor(alpha * tokens);

    /// <summary>
    /// Host bytes one swapped layer holds: the skeleton for all <paramref name="tokens"/>, the token-local rows
    /// for <see cref="SwappedTokens"/> of them (under <see cref="PolicyKind.Swap"/> pass alpha 1).
    /// </summary>
    public static long HostBytesPerLayer(long skeletonBytesPerToken, long tokenLocalBytesPerToken, long tokens, double alpha) =>
        checked(skeletonBytesPerToken * tokens + tokenLocalBytesPerToken * SwappedTokens(alpha, tokens));

    /// <summary>
    /// The host-memory side of the alpha rule: the largest alpha in [0, 1] with
    /// swapped x (skeleton + alpha x tokenLocal) &lt;= hostBudget, where skeleton and tokenLocal are one layer's bytes.
    /// 1 when nothing is swapped or there is nothing token-local; the caller checks that the skeleton itself fits.
    /// </summary>
    public static double AlphaForHost(double hostBudget, int swappedLayers, double skeletonBytes, double tokenLocalBytes) =>
        swappedLayers == 0 || tokenLocalBytes == 0 ? 1.0
            : Math.Clamp((hostBudget - swappedLayers * skeletonBytes) / (swappedLayers * tokenLocalBytes), 0, 1);

    /// <summary>
    /// The link side of the alpha rule: the largest alpha in [0, 1] with skeleton + alpha x tokenLocal &lt;= hiddenBytes,
    /// the bytes the link moves while one layer computes its forward (bandwidth x layer time).
    /// </summary>
    public static double AlphaForLink(double hiddenBytes, double skeletonBytes, double tokenLocalBytes) =>
        tokenLocalBytes > 0 ? Math.Clamp((hiddenBytes - skeletonBytes) / tokenLocalBytes, 0, 1) : 1.0;

    /// <summary>
    /// The alpha rule over two host tiers, RAM then disk, as the engine's store fills them (swapped layers in order
    /// into RAM, what does not fit into the disk file behind it). One alpha for all swapped layers:
    /// <list type="bullet">
    /// <item>RAM only: min(<see cref="AlphaForLink"/>(linkHiddenBytes), <see cref="AlphaForHost"/>(ramBudget)),
    /// when the skeletons fit in RAM;</item>
    /// <item>spilling to disk: a layer that lives (partly) on disk moves at the slower tier's rate, so
    /// min(<see cref="AlphaForLink"/>(min(linkHiddenBytes, diskHiddenBytes)), <see cref="AlphaForHost"/>(ramBudget + diskBudget)),
    /// when the skeletons fit in RAM and disk together.</item>
    /// </list>
    /// The disk is used only where it gives the larger alpha or where the skeletons do not fit in RAM; at an alpha
    /// whose bytes fit in RAM nothing spills, so RAM alone answers. Null when the skeletons fit in neither.
    /// Budgets are one device's bytes; hidden bytes are what each path moves during one layer's forward.
    /// </summary>
    public static (double Alpha, bool SpillsToDisk)? AlphaForTiers(int swappedLayers, double skeletonBytes, double tokenLocalBytes,
        double ramBudget, double diskBudget, double linkHiddenBytes, double diskHiddenBytes)
    {
        if (swappedLayers <= 0) return (Math.Min(1.0, AlphaForLink(linkHiddenBytes, skeletonBytes, tokenLocalBytes)), false);
        double skeletons = swappedLayers * skeletonBytes;
        double? ram = skeletons <= ramBudget
            ? Math.Min(AlphaForLink(linkHiddenBytes, skeletonBytes, tokenLocalBytes), AlphaForHost(ramBudget, swappedLayers, skeletonBytes, tokenLocalBytes))
            : null;
        double? disk = diskBudget > 0 && skeletons <= ramBudget + diskBudget
            ? Math.Min(AlphaForLink(Math.Min(linkHiddenBytes, diskHiddenBytes), skeletonBytes, tokenLocalBytes),
                AlphaForHost(ramBudget + diskBudget, swappedLayers, skeletonBytes, tokenLocalBytes))
            : null;
        // At the disk alpha, do the swapped bytes pass RAM? If not, nothing spills and it is a RAM plan with a lower alpha.
        bool spills = disk is double d && swappedLayers * (skeletonBytes + d * tokenLocalBytes) > ramBudget;
        if (ram is double r && (!spills || r >= disk!.Value)) return (r, false);
        return spills ? (disk!.Value, true) : null;
    }

    public string Describe(int layers) => Kind switch
    {
        PolicyKind.Keep => "keep all",
        PolicyKind.Recompute when RecomputedLayers == 0 => "selective (no recompute)",
        PolicyKind.Recompute => string.Create(CultureInfo.InvariantCulture, $"full recompute {RecomputedLayers}/{layers}"),
        PolicyKind.Swap => "swap all",
        _ => string.Create(CultureInfo.InvariantCulture, $"swap+recompute a={(Alphas is { Count: > 0 } ? Alphas[0] : 0):0.000}"),
    };
}
