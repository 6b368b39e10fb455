namespace Memo.Planner;

/// <summary>Half-open interval of time steps [Lower, Upper) during which a buffer is live.</summary>
public readonly record struct Lifespan(long Lower, long Upper);
