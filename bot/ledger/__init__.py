"""The ledger: a person's month (spent, limits, grants, mix, forecast, freshness), read in
one place for every surface, and their history.

- ``bot.ledger.month``: the month as values, and the rules that combine its figures;
- ``bot.ledger.read``: reading it from the store, for one person or a batch;
- ``bot.ledger.history``: the last months, and unattributed spend.
"""

from bot.ledger.history import MonthLine, history, unattributed
from bot.ledger.month import (
    FORECAST_WINDOW_DAYS,
    Balance,
    Forecast,
    Grant,
    Limit,
    binding,
    forecast,
    forecast_window,
)
from bot.ledger.read import (
    MonthUsage,
    Usage,
    balance,
    balance_of_slack_user,
    balances,
    cap_for,
    freshness,
    month_usage,
    team_caps,
)

__all__ = [
    "FORECAST_WINDOW_DAYS",
    "Balance",
    "Forecast",
    "Grant",
    "Limit",
    "MonthLine",
    "MonthUsage",
    "Usage",
    "balance",
    "balance_of_slack_user",
    "balances",
    "binding",
    "cap_for",
    "forecast",
    "forecast_window",
    "freshness",
    "history",
    "month_usage",
    "team_caps",
    "unattributed",
]
