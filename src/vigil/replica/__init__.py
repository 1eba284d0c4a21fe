"""Replicated data: promotable groups and the database instances behind them."""
