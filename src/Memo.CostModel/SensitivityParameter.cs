namespace Memo.CostModel;

/// <summary>
/// One assumed figure moved by a stated amount each way: <see cref="Worse"/> makes the hardware slower or the
/// memory tighter, <see cref="Better"/> the opposite.
/// </summary>
/// <param name="Key">Profile key (or request setting) that is moved.</param>
/// <param name="Change">The stated amount, e.g. "-/+0.10" or "-/+20%".</param>
/// <param name="Worse">The request with the figure moved the unfavourable way.</param>
/// <param name="Better">The request with the figure moved the favourable way.</param>
/// <param name="Value">The figure in a request, for printing.</param>
public sealed record SensitivityParameter(string Key, string Change, Func<PlanRequest, PlanRequest> Worse, Func<PlanRequest, PlanRequest> Better, Func<PlanRequest, double> Value);
