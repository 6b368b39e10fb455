namespace Memo.CostModel;

/// <summary>The plans of every strategy with one figure moved each way, beside the base plans.</summary>
public sealed record SensitivityRow(SensitivityParameter Parameter, double WorseValue, double BaseValue, double BetterValue,
    IReadOnlyList<StrategyPlan> Worse, IReadOnlyList<StrategyPlan> Base, IReadOnlyList<StrategyPlan> Better);
