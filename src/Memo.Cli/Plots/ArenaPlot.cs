// A memory plan as a picture: time on x, address on y, one rectangle per buffer colored by its
// kind (or layer, or group), the live-bytes curve (the max-load lower bound is its maximum), and
// dashed lines at the peak and at the lower bound. Saved as PNG (temporary file + rename).
using Memo.Planner;
using Buffer = Memo.Planner.Buffer;
using ScottPlot;

namespace Memo.Cli.Plots;

public static class ArenaPlot
{
    /// <summary>Draws <paramref name="offsets"/> for <paramref name="problem"/> and saves a PNG.</summary>
    public static void Save(Problem problem, long[] offsets, string path, string? title = null, int width = 1600, int height = 900)
    {
        ArgumentNullException.ThrowIfNull(problem);
        ArgumentNullException.ThrowIfNull(offsets);
        ArgumentNullException.ThrowIfNull(path);
        long peak = Solution.PeakOf(problem, offsets);
        long lowerBound = Sweep.MaxLoad(problem);
        var (unit, scale) = Unit(Math.Max(peak, 1));

        var plot = new Plot();
        var (labelOf, legend) = ColorKey(problem);
        var palette = new ScottPlot.Palettes.Category10();
        for (int i = 0; i < problem.Count; i++)
        {
            Buffer b = problem.Buffers[i];
            if (b.Size == 0) continue;
            var rect = plot.Add.Rectangle(b.Lifespan.Lower, b.Lifespan.Upper, offsets[i] / scale, (offsets[i] + b.Size) / scale);
            var color = palette.GetColor(labelOf[i]);
            rect.FillStyle.Color = color.WithAlpha(0.75);
            rect.LineStyle.Color = Colors.Black.WithAlpha(0.6);
            rect.LineStyle.Width = problem.Count > 2000 ? 0 : 0.5f;
        }

        var curve = Sweep.LoadCurve(problem);
        if (curve.Count > 0)
        {
            var xs = new double[curve.Count];
            var ys = new double[curve.Count];
            for (int k = 0; k < curve.Count; k++)
            {
                xs[k] = curve[k].Time;
                ys[k] = curve[k].Live / scale;
            }
            var line = plot.Add.Scatter(xs, ys);
            line.ConnectStyle = ConnectStyle.StepHorizontal;
            line.MarkerSize = 0;
            line.LineWidth = 2;
            line.Color = Colors.Black;
            line.LegendText = "live bytes";
        }
        var peakLine = plot.Add.HorizontalLine(peak / scale);
        peakLine.LinePattern = LinePattern.Dashed;
        peakLine.Color = Colors.Red;
        peakLine.LineWidth = 1.5f;
        peakLine.LegendText = $"peak {Format(peak, unit, scale)}";
        var lbLine = plot.Add.HorizontalLine(lowerBound / scale);
        lbLine.LinePattern = LinePattern.Dotted;
        lbLine.Color = Colors.DarkGreen;
        lbLine.LineWidth = 1.5f;
        lbLine.LegendText = $"lower bound {Format(lowerBound, unit, scale)}";

        for (int k = 0; k < legend.Count; k++)
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = legend[k], FillColor = palette.GetColor(k).WithAlpha(0.75) });
        plot.ShowLegend(Alignment.UpperRight);
        plot.Title(title ?? $"{problem.Count} buffers, peak {Format(peak, unit, scale)}, lower bound {Format(lowerBound, unit, scale)}");
        plot.XLabel("time");
        plot.YLabel($"address ({unit})");
        plot.Axes.SetLimitsY(0, peak / scale * 1.08);

        string full = System.IO.Path.GetFullPath(path);
        string tmp = full + ".tmp-" + Guid.NewGuid().ToString("N") + ".png";
        try
        {
            plot.SavePng(tmp, width, height);
            File.Move(tmp, full, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw new MemoException($"{path}: cannot write the plot ({e.Message}); check the path and permissions", e);
        }
    }

    /// <summary>Color index per buffer and the legend labels: by kind, else layer, else group; one color otherwise.</summary>
    private static (int[] LabelOf, List<string> Legend) ColorKey(Problem problem)
    {
        Func<Buffer, string?> key =
            problem.Buffers.Any(b => b.Kind is not null) ? b => b.Kind
            : problem.Buffers.Any(b => b.Layer >= 0) ? b => b.Layer >= 0 ? $"layer {b.Layer}" : "no layer"
            : problem.Buffers.Any(b => b.Group is not null) ? b => b.Group
            : _ => null;
        var legend = new List<string>();
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        var labelOf = new int[problem.Count];
        for (int i = 0; i < problem.Count; i++)
        {
            string? k = key(problem.Buffers[i]);
            if (k is null)
            {
                labelOf[i] = 0;
                continue;
            }
            if (!index.TryGetValue(k, out int c))
            {
                index[k] = c = legend.Count;
                legend.Add(k);
            }
            labelOf[i] = c;
        }
        // More than the palette's colors would repeat them: keep the legend short.
        if (legend.Count > 10) legend.Clear();
        return (labelOf, legend);
    }

    private static (string Unit, double Scale) Unit(long peak) =>
        peak >= 1L << 30 ? ("GiB", 1L << 30)
        : peak >= 1L << 20 ? ("MiB", 1L << 20)
        : peak >= 1L << 10 ? ("KiB", 1L << 10)
        : ("bytes", 1);

    private static string Format(long bytes, string unit, double scale) =>
        scale == 1 ? $"{bytes} bytes" : $"{bytes / scale:0.###} {unit}";
}
