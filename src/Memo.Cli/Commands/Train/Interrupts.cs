using System.Runtime.InteropServices;

namespace Memo.Cli.Commands.Train;

/// <summary>
/// SIGINT and SIGTERM during training: the first one is recorded and the loop stops after the current step (writing
/// a checkpoint when --checkpoint is set); a second one ends the process at once, as without this handler.
/// </summary>
internal sealed class Interrupts : IDisposable
{
    private readonly PosixSignalRegistration[] _registrations;
    private volatile Received? _signal;

    public sealed record Received(string Name, int ExitCode);

    public Interrupts()
    {
        _registrations =
        [
            PosixSignalRegistration.Create(PosixSignal.SIGINT, c => OnSignal(c, new Received("SIGINT", 130))),
            PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => OnSignal(c, new Received("SIGTERM", 143))),
        ];
    }

    /// <summary>The first signal received, or null.</summary>
    public Received? Signal => _signal;

    private void OnSignal(PosixSignalContext context, Received r)
    {
        if (_signal != null) return; // the second signal: default handling ends the process
        _signal = r;
        context.Cancel = true;
    }

    public void Dispose()
    {
        foreach (var r in _registrations) r.Dispose();
    }
}
