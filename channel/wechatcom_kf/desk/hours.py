"""Business hours (营业时间): is a customer message inside opening hours, and when do we reopen?

Schedule: rules separated by ``;`` / ``；`` or newlines (blank lines and a trailing ``;`` are fine),
each ``DAYS TIMES``; whitespace is free and day names are case-insensitive::

    mon-fri 09:00-18:00; sat 10:00-16:00
    周一-周五 09:00-12:00,13:30-18:00
    daily 00:00-24:00

DAYS: a day, a range (``mon-fri``, ``周一至周五``, ``1-5``; ``sat-mon`` wraps) or a list (``mon,wed``,
``周一、周三``) of ``mon``…``sun`` / ``monday``…``sunday`` / 周一…周日 / 星期一…星期日 (also 周天, 星期天)
/ ``1``…``7`` (1 = Monday), or a group: ``daily`` 每天 每日, ``weekdays`` 工作日, ``weekends`` 周末.
TIMES: ``HH:MM-HH:MM`` ranges separated by commas; start inclusive, end exclusive, minute precision.
``24:00`` is allowed as an end; an end before the start crosses midnight (``fri 22:00-02:00`` is open
Friday 22:00 to Saturday 02:00). An empty schedule means always open (the feature is off; closed
dates are then ignored — use ``daily 00:00-24:00`` to close on holidays only).

``closed_dates``: ISO dates ``2026-10-01`` or ranges ``2026-10-01..2026-10-07`` (inclusive). A closed
date closes every moment of that local calendar date, including the after-midnight tail of the
previous day's range; a range starting on a closed date still opens its after-midnight tail on the
next (open) date.

Time zone: an IANA name via ``zoneinfo``. Without a tz database, China's zones (no DST since 1991)
fall back to a fixed UTC+08:00 and UTC names to UTC; other names raise ``ValueError``. Rules are
wall-clock: an instant is converted to local time and judged by its date and minute. In a DST gap a
boundary inside the skipped hour takes effect at the jump; in a repeated hour (fall back) moments are
judged by wall-clock time each time round; a reported start uses the first occurrence, a reopening
the first one that is not in the past.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Interval = tuple[int, int]  # [start, end) minutes of one local calendar day
Week = tuple[tuple[Interval, ...], ...]  # index 0 = Monday

DAY_MINUTES = 24 * 60
HORIZON_DAYS = 400  # how far closed_period looks for the previous close / next opening
CHINA_STANDARD_TIME = timezone(timedelta(hours=8))
_CHINA_ZONES = frozenset(
    {"asia/shanghai", "prc", "asia/chongqing", "asia/chungking", "asia/harbin", "asia/hong_kong"}
    | {"hongkong", "asia/macau", "asia/macao", "asia/taipei", "roc"}
)
_UTC_ZONES = frozenset({"utc", "etc/utc", "gmt", "etc/gmt", "zulu", "etc/zulu"})


def _day_names() -> dict[str, tuple[int, ...]]:
    """Every accepted day word (already lower case) → the weekdays it means."""
    everyday, weekdays, weekends = tuple(range(7)), tuple(range(5)), (5, 6)
    names = {"daily": everyday, "everyday": everyday, "每天": everyday, "每日": everyday}
    names |= {"weekdays": weekdays, "工作日": weekdays, "weekends": weekends, "周末": weekends}
    short = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    full = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    for day, (word, long_word, zh) in enumerate(zip(short, full, "一二三四五六日", strict=True)):
        words = (word, long_word, str(day + 1), f"周{zh}", f"星期{zh}", f"礼拜{zh}")
        names |= {w: (day,) for w in words}
    return names | {"周天": (6,), "星期天": (6,), "礼拜天": (6,)}


_DAYS = _day_names()
_DASH = r"\s*(?:-|~|～|–|—|至|到)\s*"
_TIME = r"(\d{1,2})\s*[:：]\s*(\d{2})"
_RANGE = re.compile(_TIME + _DASH + _TIME)
_SINGLE = re.compile(_TIME + rf"(?:{_DASH})?")
_TIME_START = re.compile(r"\d{1,2}\s*[:：]")  # where a rule's TIMES begin (DAYS may be digits too)
_RULE_SEP = re.compile(r"[;；]")
_LIST_SEP = re.compile(r"\s*[,，、]\s*|(?<=\d)\s+(?=\d)")  # commas, or blanks between two ranges
_DAY_SEP = re.compile(r"[,，、\s]+")
_DATES = re.compile(r"(\d{4}-\d{2}-\d{2})(?:\s*\.\.\s*(\d{4}-\d{2}-\d{2}))?")
_DAY_HELP = "expected mon..sun, 周一..周日, 星期一..星期日, 1..7 (1 = Monday) or daily/每天"
_RULE_HELP = "expected DAYS HH:MM-HH:MM, e.g. 'mon-fri 09:00-18:00'"


def fallback_timezone(name: str) -> tzinfo:
    """A fixed zone for names whose offset is constant, for hosts without a tz database."""
    key = name.strip().lower()
    if key in _CHINA_ZONES:
        return CHINA_STANDARD_TIME
    if key in _UTC_ZONES:
        return UTC
    raise ValueError(f"unknown time zone {name!r}; expected an IANA name such as 'Asia/Shanghai'")


def resolve_timezone(name: str, loader: Callable[[str], tzinfo] = ZoneInfo) -> tzinfo:
    """``ZoneInfo(name)``, falling back to a fixed offset when the system has no data for it."""
    try:
        return loader(name.strip())
    except ZoneInfoNotFoundError:
        return fallback_timezone(name)
    except ValueError:  # ZoneInfo rejects malformed keys (empty, absolute paths) with ValueError
        raise ValueError(f"time zone {name!r} is not an IANA name such as 'Asia/Shanghai'") from None


@dataclass(frozen=True)
class ClosedPeriod:
    """A closed stretch: from the last close (at most HORIZON_DAYS back) to the next opening, None if
    none within HORIZON_DAYS — so a stretch longer than the horizon may change its period_id once."""

    start: datetime
    reopens: datetime | None

    @property
    def period_id(self) -> str:
        """Same for every moment of this closed period, different for the next: a once-per-period key."""
        return self.reopens.isoformat() if self.reopens else "never"

    def seconds_until_reopen(self, when: datetime | float) -> float | None:
        """Seconds from ``when`` to the reopening (never negative), e.g. a TTL; None if it never reopens."""
        if self.reopens is None:
            return None
        if isinstance(when, datetime):
            # Naive datetimes are local wall time, as in BusinessHours. Timestamps, not subtraction:
            # aware datetimes sharing a tzinfo subtract as wall clocks and would miss a DST change.
            when = (when.replace(tzinfo=self.start.tzinfo) if when.utcoffset() is None else when).timestamp()
        return max(0.0, self.reopens.timestamp() - when)


@dataclass(frozen=True)
class BusinessHours:
    """A parsed schedule (build it with ``parse``); pure and immutable, safe to share between threads."""

    schedule: str
    timezone: str
    zone: tzinfo
    week: Week
    closed: tuple[tuple[date, date], ...]  # inclusive local date ranges

    @classmethod
    def parse(
        cls, schedule: str, *, timezone: str = "Asia/Shanghai", closed_dates: Sequence[str] = ()
    ) -> BusinessHours:
        """Parse an operator's schedule; ``ValueError`` says which part is wrong and what was expected."""
        zone = resolve_timezone(timezone)
        closed = _parse_closed(closed_dates)
        if not schedule.strip():
            return cls(schedule, timezone, zone, (((0, DAY_MINUTES),),) * 7, closed)
        ranges = [found for rule in _split_rules(schedule) for found in _parse_rule(rule)]
        return cls(schedule, timezone, zone, _build_week(ranges), closed)

    @property
    def always_open(self) -> bool:
        return not self.schedule.strip()

    def is_open(self, when: datetime | float) -> bool:
        """``when``: a unix timestamp, an aware datetime, or a naive datetime in local wall time."""
        if self.always_open:
            return True
        wall = self._wall(when)
        minute = wall.hour * 60 + wall.minute
        return any(start <= minute < end for start, end in self._intervals(wall.date()))

    def closed_period(self, when: datetime | float) -> ClosedPeriod | None:
        """None when open; else the closed period that contains ``when``."""
        if self.is_open(when):
            return None
        wall = self._wall(when)
        reopens = self._next_open(wall)
        moment = when.timestamp() if isinstance(when, datetime) and when.utcoffset() is not None else when
        if reopens and not isinstance(moment, datetime) and reopens.timestamp() <= moment:
            # The second pass of a repeated (fall back) hour reopens at that wall time's later occurrence.
            reopens = reopens.replace(fold=1)
        return ClosedPeriod(start=self._last_close(wall), reopens=reopens)

    def _wall(self, when: datetime | float) -> datetime:
        """Naive local wall-clock time: the rules are written in it."""
        if isinstance(when, datetime):
            return when if when.utcoffset() is None else when.astimezone(self.zone).replace(tzinfo=None)
        return datetime.fromtimestamp(when, self.zone).replace(tzinfo=None)

    def _intervals(self, day: date) -> tuple[Interval, ...]:
        if any(first <= day <= last for first, last in self.closed):
            return ()
        return self.week[day.weekday()]

    def _last_close(self, wall: datetime) -> datetime:
        """End of the last open interval before the closed wall time ``wall`` (clamped to the horizon)."""
        minute = wall.hour * 60 + wall.minute
        for back in range(HORIZON_DAYS + 1):
            day = wall.date() - timedelta(days=back)
            ends = [end for _, end in self._intervals(day) if back or end <= minute]
            if ends:
                return self._instant(datetime.combine(day, time()) + timedelta(minutes=max(ends)))
        return self._instant(datetime.combine(wall.date() - timedelta(days=HORIZON_DAYS), time()))

    def _next_open(self, wall: datetime) -> datetime | None:
        """Start of the first open interval after the closed wall time ``wall``, within the horizon."""
        minute = wall.hour * 60 + wall.minute
        for ahead in range(HORIZON_DAYS + 1):
            day = wall.date() + timedelta(days=ahead)
            starts = [start for start, _ in self._intervals(day) if ahead or start > minute]
            if starts:
                return self._instant(datetime.combine(day, time()) + timedelta(minutes=min(starts)))
        return None

    def _instant(self, wall: datetime) -> datetime:
        """The real moment a wall-clock boundary takes effect: its first occurrence, or a DST jump."""
        first = wall.replace(tzinfo=self.zone, fold=0)
        if first.astimezone(UTC).astimezone(self.zone).replace(tzinfo=None) == wall:
            return first
        # The clock skips ``wall``: bisect for the jump, the first second whose wall time is later.
        low, high = int(wall.replace(tzinfo=self.zone, fold=1).timestamp()), int(first.timestamp())
        while high - low > 1:
            middle = (low + high) // 2
            if datetime.fromtimestamp(middle, self.zone).replace(tzinfo=None) >= wall:
                high = middle
            else:
                low = middle
        return datetime.fromtimestamp(high, self.zone)


def _split_rules(schedule: str) -> list[str]:
    rules: list[str] = []
    for line in schedule.splitlines():
        parts = [part.strip() for part in _RULE_SEP.split(line)]
        if not parts[-1]:
            parts.pop()  # a blank line or a trailing ';' is harmless in a config file
        for part in parts:
            if not part:
                raise ValueError(f"schedule line {line.strip()!r} has an empty rule (two ';' in a row?)")
            rules.append(part)
    if not rules:
        raise ValueError(f"schedule has no rules; {_RULE_HELP} (or leave it empty for always open)")
    return rules


def _parse_rule(rule: str) -> list[tuple[int, int, int]]:
    """``(weekday, start, end)`` minute ranges of one ``DAYS TIMES`` rule."""
    found = _TIME_START.search(rule)
    if found is None:
        raise ValueError(f"rule {rule!r} has no times; {_RULE_HELP}")
    days_text, times_text = rule[: found.start()].strip(), rule[found.start() :]
    if not days_text:
        raise ValueError(f"rule {rule!r} has no days before its times; {_RULE_HELP}")
    try:
        days = _parse_days(days_text)
        times = [_parse_range(part) for part in _LIST_SEP.split(times_text.strip()) if part]
    except ValueError as err:
        raise ValueError(f"rule {rule!r}: {err}") from None
    return [(day, start, end) for day in days for start, end in times]


def _parse_days(text: str) -> list[int]:
    days: list[int] = []
    for item in _DAY_SEP.split(re.sub(_DASH, "-", text.lower())):
        if not item:
            continue  # "mon," or stray blanks
        if item in _DAYS:
            days += _DAYS[item]
            continue
        names = item.split("-")
        bad = [name for name in names if len(_DAYS.get(name, ())) != 1]  # groups cannot bound a range
        if len(names) != 2 or bad:
            raise ValueError(f"{(bad[0] if bad and bad[0] else item)!r} is not a day; {_DAY_HELP}")
        first, last = (_DAYS[name][0] for name in names)
        days += [(first + step) % 7 for step in range((last - first) % 7 + 1)]  # sat-mon wraps
    return days


def _parse_range(text: str) -> Interval:
    match = _RANGE.fullmatch(text)
    if match is None:
        if _SINGLE.fullmatch(text):
            raise ValueError(f"{text!r} has no end time; expected HH:MM-HH:MM, e.g. '09:00-18:00'")
        raise ValueError(f"{text!r} is not a time range; expected HH:MM-HH:MM, e.g. '09:00-18:00'")
    start, end = _minute(match[1], match[2], end=False), _minute(match[3], match[4], end=True)
    if start == end:
        raise ValueError(f"{text!r} starts and ends at the same time; use 00:00-24:00 for a whole day")
    return start, end


def _minute(hours: str, minutes: str, *, end: bool) -> int:
    h, m = int(hours), int(minutes)
    if m < 60 and (h < 24 or (end and h == 24 and m == 0)):
        return h * 60 + m
    expected = "an end 00:00..24:00" if end else "a start 00:00..23:59"
    raise ValueError(f"'{hours}:{minutes}' is not a valid time; expected {expected}")


def _build_week(ranges: list[tuple[int, int, int]]) -> Week:
    per_day: list[list[Interval]] = [[] for _ in range(7)]
    for day, start, end in ranges:
        if end > start:
            per_day[day].append((start, end))
            continue
        per_day[day].append((start, DAY_MINUTES))  # crosses midnight: the tail is the next day's
        if end:
            per_day[(day + 1) % 7].append((0, end))
    # Overlaps need no merging: lookups take any()/max()/min() over a day's intervals.
    return tuple(tuple(sorted(set(intervals))) for intervals in per_day)


def _parse_closed(items: Sequence[str]) -> tuple[tuple[date, date], ...]:
    if isinstance(items, str):  # one string from a config file: "2026-10-01..2026-10-07, 2027-01-01"
        items = re.split(r"[,，;；\s]+", items)
    spans: list[tuple[date, date]] = []
    for text in (str(item).strip() for item in items):
        if not text:
            continue  # an empty entry in a config list
        try:
            if not (match := _DATES.fullmatch(text)):
                raise ValueError(text)
            span = (date.fromisoformat(match[1]), date.fromisoformat(match[2] or match[1]))
        except ValueError:  # the shape is wrong, or no such day (2026-02-30)
            raise ValueError(
                f"closed date {text!r} is not a date; expected YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD"
            ) from None
        if span[1] < span[0]:
            raise ValueError(f"closed dates {text!r} end before they start")
        spans.append(span)
    return tuple(sorted(spans))
