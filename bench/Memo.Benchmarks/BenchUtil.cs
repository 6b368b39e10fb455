using System.Globalization;

namespace Memo.Benchmarks;

/// <summary>Small helpers shared by the benchmark commands: argument lookup, medians, markdown output.</summary>
internal static class BenchUtil
{
    public static string? Arg(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    public static int IntArg(string[] args, string name, int fallback) =>
        Arg(args, name) is { } s ? int.Parse(s, CultureInfo.InvariantCulture) : fallback;

    public static double Median(IEnumerable<double> xs)
    {
        var a = xs.Order().ToArray();
        if (a.Length == 0) return double.NaN;
        return a.Length % 2 == 1 ? a[a.Length / 2] : (a[a.Length / 2 - 1] + a[a.Length / 2]) / 2;
    }

    /// <summary>The 1, 5 and 15 minute load averages (the machine may be shared; they say how busy it was).</summary>
    public static string LoadAverage()
    {
        const string path = "/proc/loadavg";
        try
        {
            return File.Exists(path) ? string.Join(", ", File.ReadAllText(path).Split(' ').Take(3)) : "unknown";
        }
        catch (IOException)
        {
            return "unknown";
        }
    }

    /// <summary>"median (min-max)" of a sample, the spread of a benchmark figure.</summary>
    public static string MedianSpread(IReadOnlyCollection<double> xs, string fmt = "0.0") =>
        xs.Count == 0 ? "n/a" : $"{F(Median(xs), fmt)} ({F(xs.Min(), fmt)}-{F(xs.Max(), fmt)})";

    public static string F(double v, string fmt = "0.0") => v.ToString(fmt, CultureInfo.InvariantCulture);

    public static string Machine() => $"{Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}, Vector512 {System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated}";

    /// <summary>Prints the report and, with --out FILE, writes it atomically.</summary>
    public static void Emit(string[] args, string report)
    {
        Console.WriteLine(report);
        if (Arg(args, "--out") is { } path)
        {
            string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
            if (dir != null) Directory.CreateDirectory(dir);
            File.WriteAllText(path + ".tmp", report);
            File.Move(path + ".tmp", path, overwrite: true);
            Console.Error.WriteLine($"wrote {path}");
        }
    }
}
