using Memo.Model;

namespace Memo.Cli.Commands.Train;

/// <summary>
/// Checks before step 0 what would otherwise fail late: that --checkpoint, --save and --log can be written (a probe
/// file is created and removed beside each) and that their file systems have room for a checkpoint where the free
/// space is known.
/// </summary>
internal static class Preflight
{
    public static void Check(TrainCommand.TrainArgs a, ModelConfig cfg)
    {
        // A checkpoint holds the weights and two AdamW moments in F32; a --save without training state only the weights.
        long weights = checked(cfg.ParameterCount * sizeof(float));
        if (a.CheckpointDir != null) Writable("--checkpoint", a.CheckpointDir, checked(3 * weights));
        if (a.SaveDir != null) Writable("--save", a.SaveDir, weights);
        if (a.LogFile != null) Writable("--log", a.LogFile, 0);
    }

    private static void Writable(string flag, string target, long bytes)
    {
        string full = Path.GetFullPath(target).TrimEnd(Path.DirectorySeparatorChar);
        string parent = Path.GetDirectoryName(full) ?? ".";
        if (Directory.Exists(full) && flag == "--log") throw new MemoException($"{flag} {target} is a directory; give a file name");
        if (File.Exists(full) && flag != "--log") throw new MemoException($"{flag} {target} is a file; give a directory");
        string probe = Path.Combine(parent, $".memo-probe-{Environment.ProcessId}");
        try
        {
            Directory.CreateDirectory(parent);
            using (File.Create(probe, 1, FileOptions.DeleteOnClose))
            {
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new MemoException($"{flag} {target}: cannot write in '{parent}' ({e.Message}); choose a writable location before training starts");
        }
        long free;
        try
        {
            free = new DriveInfo(parent).AvailableFreeSpace;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return; // free space unknown here: the save itself reports a full disk
        }
        // A save writes the new copy before it removes the old one.
        if (bytes > 0 && free < bytes)
            throw new MemoException($"{flag} {target}: {Sizes.FormatBytes(free)} free in '{parent}' but a save needs about {Sizes.FormatBytes(bytes)}; free space or choose another location");
    }
}
