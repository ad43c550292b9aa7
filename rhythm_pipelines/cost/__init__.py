"""Cost: the price catalog, per-channel cost tracking, the Pareto frontier, budget-constrained routing
(an exact LP), replay evaluation, budgets with alerts, and period reports. No Dagster imports."""
