"""A simulated online experiment between two trained runs, before any real traffic.

    assignment  users -> arms by a salted, stable hash of their id
    logs        the lake's events as (session, item) exposures, the period's sessions
    funnel      click, cart and purchase propensities fitted on the history
    simulator   position-biased user responses to each arm's slates
    stats       ratio metrics with delta-method intervals, lift, power
    sequential  fixed horizon or an always-valid (mSPRT) analysis day by day
    offpolicy   replay and clipped IPS / SNIPS from the logs alone
    plots       the cumulative lift and the effects side by side

`recsys_cli.tasks.abtest` joins them; nothing here reads a run folder.
"""

from __future__ import annotations

from recsys_cli.errors import RecsysError


class AbTestError(RecsysError):
    """An experiment cannot be simulated as asked (no sessions, bad split...)."""
