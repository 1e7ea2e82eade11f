"""Progress: how a project is going and when to stop (estimators and stopping rules)."""
