using Memo.Training;

namespace Memo.Cli.Commands.Train;

/// <summary>The checkpoint locks of one run: --resume, --checkpoint and --save, each distinct directory once.</summary>
internal sealed class Locks : IDisposable
{
    private readonly List<CheckpointLock> _held = [];

    public static Locks Take(TrainCommand.TrainArgs a)
    {
        var locks = new Locks();
        try
        {
            foreach (var (flag, dir) in new[] { ("--resume", a.ResumeDir), ("--checkpoint", a.CheckpointDir), ("--save", a.SaveDir) })
            {
                if (dir == null || locks._held.Any(l => l.Path == Path.GetFullPath(dir).TrimEnd(Path.DirectorySeparatorChar) + ".lock")) continue;
                locks._held.Add(CheckpointLock.Acquire(dir, flag));
            }
            return locks;
        }
        catch
        {
            locks.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        foreach (var l in _held) l.Dispose();
        _held.Clear();
    }
}
