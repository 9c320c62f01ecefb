"""Forecasters for capacity planning and predictive alerts. Pure computation (arrives with the forecasting issue)."""
