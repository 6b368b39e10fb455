namespace Memo.CostModel;

/// <summary>
/// One figure the planner's answer rests on, with where it comes from. <see cref="Kind"/> is one of
/// "specification" (vendor data sheet), "assumption" (a judgement, with its basis in <see cref="Source"/>),
/// "fitted" (chosen so that the model reproduces a paper figure: not independent evidence for that figure),
/// "measured" (timed or laid out on this machine) or "override" (set by a flag or a profile file).
/// </summary>
public sealed record Assumption(string Key, double Value, string Unit, string Kind, string Source);
