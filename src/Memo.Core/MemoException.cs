namespace Memo;

/// <summary>
/// An error caused by the user's input (a config, a file, a flag, a budget). The CLI prints
/// <see cref="Exception.Message"/> as one line on stderr and exits with <see cref="ExitCode"/>;
/// library code throws it instead of exiting. Messages say what is wrong and what to do.
/// </summary>
public sealed class MemoException : Exception
{
    public MemoException(string message, int exitCode = 2) : base(message) => ExitCode = exitCode;

    public MemoException(string message, Exception inner, int exitCode = 2) : base(message, inner) => ExitCode = exitCode;

    public MemoException() : this("memo: unknown error") { }

    public MemoException(string message) : this(message, 2) { }

    public MemoException(string message, Exception inner) : this(message, inner, 2) { }

    public int ExitCode { get; }

    /// <summary>
    /// The user-set quantities the message names (each as <see cref="Memo.Quantities.Name"/> writes it), so a front end
    /// can show them in its own terms; empty for messages written by the front end itself.
    /// </summary>
    public IReadOnlyList<Quantity> Quantities { get; init; } = [];

    /// <summary>A library error about <paramref name="quantities"/>, whose message names each with <see cref="Memo.Quantities.Name"/>.</summary>
    public static MemoException About(string message, params Quantity[] quantities) => new(message) { Quantities = quantities };
}
