using Memo.CostModel;
using ScottPlot;

namespace Memo.Cli.Plots;

/// <summary>PNG figures of <c>memo plan</c>: per-GPU memory breakdown, and MFU / memory against sequence length.</summary>
public static class StrategyPlots
{
    private const double GiB = 1L << 30;

    private static readonly Color[] PartColors =
    [
        Color.FromHex("#4E79A7"), Color.FromHex("#A0CBE8"), Color.FromHex("#F28E2B"), Color.FromHex("#E15759"),
        Color.FromHex("#59A14F"), Color.FromHex("#EDC948"), Color.FromHex("#B07AA1"), Color.FromHex("#FF9DA7"),
        Color.FromHex("#9C755F"),
    ];

    private static readonly Color[] StrategyColors =
    [
        Color.FromHex("#D62728"), Color.FromHex("#1F77B4"), Color.FromHex("#2CA02C"), Color.FromHex("#7F7F7F"),
    ];

    /// <summary>Stacked bars, one per strategy, of the per-GPU memory at the peak, with the device capacity as a line.</summary>
    public static void Breakdown(IReadOnlyList<StrategyPlan> plans, string path, string title)
    {
        ArgumentNullException.ThrowIfNull(plans);
        var plot = new Plot();
        var shown = plans.Where(p => p.Memory is not null).ToArray();
        var ticks = new List<Tick>();
        var totals = new List<(int X, double Total)>();
        for (int i = 0; i < shown.Length; i++)
        {
            var p = shown[i];
            double bottom = 0;
            var parts = p.Memory!.Parts;
            for (int k = 0; k < parts.Count; k++)
            {
                double v = parts[k].Bytes / GiB;
                if (v <= 0) continue;
                plot.Add.Bar(new Bar { Position = i, ValueBase = bottom, Value = bottom + v, FillColor = PartColors[k % PartColors.Length], Size = 0.6 });
                bottom += v;
            }
            string label = StrategyPlan.StrategyName(p.Strategy) + (p.Fits ? "" : " (OOM)") + "\n" + p.Layout;
            ticks.Add(new Tick(i, label));
            totals.Add((i, bottom));
        }
        // Bars far above the capacity are clipped so that the ones near it stay readable; every bar is labelled with its total.
        double capacity = shown.Length > 0 ? shown[0].DeviceCapacityBytes / GiB : 1;
        double top = Math.Min(totals.Count > 0 ? totals.Max(t => t.Total) : capacity, 2 * capacity) * 1.12;
        top = Math.Max(top, capacity * 1.12);
        foreach (var (x, total) in totals)
        {
            var text = plot.Add.Text($"{total:0.0} GiB", x, Math.Min(total, top / 1.12) + top * 0.01);
            text.LabelAlignment = Alignment.LowerCenter;
            text.LabelFontSize = 13;
            text.LabelBold = true;
        }
        if (shown.Length > 0)
        {
            var cap = plot.Add.HorizontalLine(shown[0].DeviceCapacityBytes / GiB);
            cap.LinePattern = LinePattern.Dashed;
            cap.Color = Colors.Black;
            cap.LegendText = "device capacity";
        }
        var partNames = shown.Length > 0 ? shown[0].Memory!.Parts : [];
        for (int k = 0; k < partNames.Count; k++)
        {
            if (shown.All(p => p.Memory!.Parts[k].Bytes == 0)) continue;
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = partNames[k].Label, FillColor = PartColors[k % PartColors.Length] });
        }
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks.ToArray());
        plot.Axes.SetLimits(-0.6, Math.Max(shown.Length, 1) - 0.4, 0, top);
        plot.YLabel("GiB per GPU (peak)");
        plot.Title(title);
        plot.ShowLegend(Edge.Right);
        Save(plot, path, 1000, 650);
    }

    /// <summary>Two panels against sequence length (log2 axis): MFU where a strategy fits, and its per-GPU peak memory.</summary>
    public static void Lengths(IReadOnlyList<(long Seq, IReadOnlyList<StrategyPlan> Plans)> sweep, DeviceProfile device, string path, string title)
    {
        ArgumentNullException.ThrowIfNull(sweep);
        ArgumentNullException.ThrowIfNull(device);
        var multi = new Multiplot();
        multi.AddPlots(2);
        var mfuPlot = multi.GetPlot(0);
        var memPlot = multi.GetPlot(1);
        int strategies = sweep.Count > 0 ? sweep[0].Plans.Count : 0;
        for (int s = 0; s < strategies; s++)
        {
            var name = StrategyPlan.StrategyName(sweep[0].Plans[s].Strategy);
            var color = StrategyColors[(int)sweep[0].Plans[s].Strategy % StrategyColors.Length];
            var fx = new List<double>();
            var fy = new List<double>();
            var mx = new List<double>();
            var my = new List<double>();
            foreach (var (seq, plans) in sweep)
            {
                var p = plans[s];
                double x = Math.Log2(seq);
                if (p.Fits && p.Mfu is double m)
                {
                    fx.Add(x);
                    fy.Add(m * 100);
                }
                if (p.DevicePeakBytes is long b)
                {
                    mx.Add(x);
                    my.Add(b / GiB);
                }
            }
            if (fx.Count > 0)
            {
                var sc = mfuPlot.Add.Scatter(fx.ToArray(), fy.ToArray());
                sc.Color = color;
                sc.LegendText = name;
                sc.LineWidth = 2;
                sc.MarkerSize = 7;
            }
            if (mx.Count > 0)
            {
                var sc = memPlot.Add.Scatter(mx.ToArray(), my.ToArray());
                sc.Color = color;
                sc.LegendText = name;
                sc.LineWidth = 2;
                sc.MarkerSize = 7;
            }
        }
        var cap = memPlot.Add.HorizontalLine(device.DeviceMemoryBytes / GiB);
        cap.LinePattern = LinePattern.Dashed;
        cap.Color = Colors.Black;
        cap.LegendText = "device capacity";

        var ticks = sweep.Select(x => new Tick(Math.Log2(x.Seq), Sizes.FormatCount(x.Seq))).ToArray();
        double x0 = sweep.Count > 0 ? Math.Log2(sweep[0].Seq) - 0.3 : 0, x1 = sweep.Count > 0 ? Math.Log2(sweep[^1].Seq) + 0.3 : 1;
        foreach (var p in new[] { mfuPlot, memPlot })
        {
            p.Axes.SetLimitsX(x0, x1);
            p.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks);
            p.XLabel("sequence length (tokens)");
            p.ShowLegend(Alignment.UpperLeft);
        }
        mfuPlot.YLabel("MFU (%) where it fits");
        mfuPlot.Axes.SetLimitsY(0, 80);
        memPlot.YLabel("device peak, GiB per GPU");
        memPlot.Axes.SetLimitsY(0, Math.Max(device.DeviceMemoryBytes / GiB * 1.5, 1));
        mfuPlot.Title(title);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        try
        {
            multi.SavePng(path, 1000, 1100);
        }
        catch (IOException e)
        {
            throw new MemoException($"--plot: cannot write '{path}' ({e.Message})");
        }
        catch (UnauthorizedAccessException e)
        {
            throw new MemoException($"--plot: cannot write '{path}' ({e.Message})");
        }
    }

    private static void Save(Plot plot, string path, int width, int height)
    {
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            plot.SavePng(path, width, height);
        }
        catch (IOException e)
        {
            throw new MemoException($"--plot: cannot write '{path}' ({e.Message})");
        }
        catch (UnauthorizedAccessException e)
        {
            throw new MemoException($"--plot: cannot write '{path}' ({e.Message})");
        }
    }

    /// <summary>
    /// Tornado plot of the sensitivity table: per assumed figure, one horizontal bar per strategy from its MFU with the
    /// figure moved the unfavourable way to its MFU moved the favourable way, as the change from the base MFU in
    /// percentage points. A strategy that does not fit counts as 0% MFU (the bar then reaches far left).
    /// </summary>
    public static void Tornado(IReadOnlyList<SensitivityRow> rows, string path, string title)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var plot = new Plot();
        var ticks = new List<Tick>();
        int strategies = rows.Count > 0 ? rows[0].Base.Count : 0;
        double height = 0.8 / Math.Max(1, strategies);
        double extent = 1;
        for (int r = 0; r < rows.Count; r++)
        {
            var row = rows[rows.Count - 1 - r];
            ticks.Add(new Tick(r, $"{row.Parameter.Key} ({row.Parameter.Change})"));
            for (int s = 0; s < row.Base.Count; s++)
            {
                if (row.Base[s].Mfu is not double b) continue;
                double w = 100 * ((row.Worse[s].Mfu ?? 0) - b), g = 100 * ((row.Better[s].Mfu ?? 0) - b);
                double y = r - 0.4 + height * (s + 0.5);
                plot.Add.Bar(new Bar
                {
                    Position = y, ValueBase = Math.Min(w, g), Value = Math.Max(w, g), Size = height * 0.9,
                    FillColor = StrategyColors[(int)row.Base[s].Strategy % StrategyColors.Length], Orientation = Orientation.Horizontal,
                });
                extent = Math.Max(extent, Math.Max(Math.Abs(w), Math.Abs(g)));
            }
        }
        if (rows.Count > 0)
        {
            foreach (var b in rows[0].Base.Where(p => p.Mfu is not null))
            {
                plot.Legend.ManualItems.Add(new LegendItem
                {
                    LabelText = $"{StrategyPlan.StrategyName(b.Strategy)} (base {100 * b.Mfu!.Value:0.0}%)",
                    FillColor = StrategyColors[(int)b.Strategy % StrategyColors.Length],
                });
            }
        }
        var zero = plot.Add.VerticalLine(0);
        zero.Color = Colors.Black;
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks.ToArray());
        plot.Axes.SetLimits(-extent * 1.1, extent * 1.1, -0.6, Math.Max(rows.Count, 1) - 0.4);
        plot.XLabel("MFU change, percentage points (worse ... better); not fitting counts as 0% MFU");
        plot.Title(title);
        plot.ShowLegend(Edge.Right);
        Save(plot, path, 1300, 120 + 60 * Math.Max(rows.Count, 1));
    }
}
