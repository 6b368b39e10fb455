using System.Globalization;
using Memo.CostModel;
using Memo.Model.Memory;

namespace Memo.Cli.Commands;

/// <summary>
/// Memo's fragmentation on a GPU plan is not assumed but measured on the engine's own offset planner: the engine's
/// buffers for the model under the memo policy are laid out (<see cref="MemoryLayout.Build"/>, the call the engine
/// makes before step 0) and the arena's excess over the live bytes at its peak is taken relative to the activation
/// side (everything but weights, gradients and optimizer state). The engine's layout is fp32 on one device, so this
/// is the planner's packing overhead for this model's buffer set, not a GPU measurement.
/// </summary>
public static class PlannedArenaOverhead
{
    /// <summary>The overhead factor and a line saying how it was measured.</summary>
    public static (double Factor, string Source) Measure(ModelConfig model, long seq)
    {
        ArgumentNullException.ThrowIfNull(model);
        int t = (int)Math.Clamp(seq, 1, int.MaxValue);
        var layout = MemoryLayout.Build(model, 1, t, PolicyKind.Memo, threads: 1);
        var live = layout.LiveByCategory(layout.PeakTime);
        long persistent = live[MemoryCategory.Parameters] + live[MemoryCategory.Gradients] + live[MemoryCategory.OptimizerState];
        double activation = layout.LowerBound - persistent;
        double factor = activation > 0 ? 1 + (layout.TotalBytes - layout.LowerBound) / activation : 1;
        return (factor, string.Create(CultureInfo.InvariantCulture,
            $"measured: the engine's offset planner ({layout.Solver}) on {model.Name}'s buffers under memo at {t} tokens needs {layout.TotalBytes - layout.LowerBound} B above the {layout.LowerBound} B live at its peak"));
    }
}
