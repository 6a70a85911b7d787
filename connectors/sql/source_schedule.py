"""When the SQL source polls a table next (pure: the caller passes "now").

With ``poll.interval.ms`` a table is polled right away, then each interval after
the start of its previous poll (a poll that took longer is followed at once). With
``poll.cron`` it is polled at the expression's fire times (UTC): the first one at
or after start-up, then the first one after the previous poll's start that is not
already past — fire times missed while a long poll ran are skipped, not caught up.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from apscheduler.triggers.cron import CronTrigger

_TICK = dt.timedelta(microseconds=1)


@dataclass(frozen=True)
class PollSchedule:
    """A fixed interval, or a cron expression when ``cron`` is set."""

    interval: dt.timedelta
    cron: str | None = None
    _trigger: CronTrigger | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        trigger = CronTrigger.from_crontab(self.cron, timezone=dt.UTC) if self.cron else None
        object.__setattr__(self, "_trigger", trigger)

    def next_poll(self, last_poll: dt.datetime | None, now: dt.datetime) -> dt.datetime:
        """When to poll next, given the start of the previous poll (None: never polled)
        and the current time (both timezone-aware)."""
        trigger = self._trigger
        if trigger is None:
            return now if last_poll is None else last_poll + self.interval
        earliest = now if last_poll is None else max(now, last_poll + _TICK)
        fire = trigger.get_next_fire_time(None, earliest)
        if fire is None:  # pragma: no cover - a crontab without end always fires again
            raise ValueError(f"cron expression {self.cron!r} never fires again")
        return fire


def seconds_until(when: dt.datetime, now: dt.datetime) -> float:
    """Seconds from ``now`` to ``when``; 0 when it is past."""
    return max((when - now).total_seconds(), 0.0)
