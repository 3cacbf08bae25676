"""BusinessHours: the operator's 营业时间 schedule, closed dates, and the closed period a moment is in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest

from channel.wechatcom_kf.desk.hours import (
    CHINA_STANDARD_TIME,
    BusinessHours,
    ClosedPeriod,
    fallback_timezone,
    resolve_timezone,
)

SHANGHAI = resolve_timezone("Asia/Shanghai")
WEEKDAYS = "mon-fri 09:00-18:00"


def at(day: int, hour: int, minute: int = 0, *, month: int = 5, second: int = 0) -> datetime:
    """A Shanghai moment in May 2026 (4 May 2026 is a Monday)."""
    return datetime(2026, month, day, hour, minute, second, tzinfo=SHANGHAI)


# --- parsing ---------------------------------------------------------------------------------------


def test_english_days_ranges_and_several_rules() -> None:
    hours = BusinessHours.parse("mon-fri 09:00-18:00; sat 10:00-16:00")
    assert hours.week[0] == hours.week[4] == ((540, 1080),)
    assert hours.week[5] == ((600, 960),)
    assert hours.week[6] == ()
    assert not hours.always_open


def test_chinese_days_and_several_time_ranges() -> None:
    expected = ((540, 720), (810, 1080))
    for schedule in (
        "周一-周五 09:00-12:00,13:30-18:00",
        "星期一至星期五 09:00-12:00，13:30-18:00",
        "周一到周五 9:00～12:00、13：30-18：00",
    ):
        hours = BusinessHours.parse(schedule)
        assert hours.week[:5] == (expected,) * 5, schedule
        assert hours.week[5:] == ((), ()), schedule


def test_digit_days_daily_lists_and_groups() -> None:
    assert BusinessHours.parse("1-5 09:00-18:00").week == BusinessHours.parse(WEEKDAYS).week
    assert BusinessHours.parse("6,7 10:00-12:00").week[5:] == (((600, 720),),) * 2
    assert BusinessHours.parse("周六、周日 10:00-12:00").week[5:] == (((600, 720),),) * 2
    assert BusinessHours.parse("daily 00:00-24:00").week == (((0, 1440),),) * 7
    assert BusinessHours.parse("每天 08:00-20:00").week == (((480, 1200),),) * 7
    assert BusinessHours.parse("工作日 09:00-18:00").week == BusinessHours.parse(WEEKDAYS).week
    assert BusinessHours.parse("周末 10:00-12:00").week[5:] == (((600, 720),),) * 2
    assert BusinessHours.parse("星期天 10:00-12:00").week[6] == ((600, 720),)


def test_day_names_are_case_insensitive_and_whitespace_is_forgiven() -> None:
    hours = BusinessHours.parse("  MON - Fri   09:00 - 18:00 ;\n\n  Sat 10:00-12:00 13:00-14:00;  \n")
    assert hours.week[:5] == (((540, 1080),),) * 5
    assert hours.week[5] == ((600, 720), (780, 840))
    assert BusinessHours.parse("Monday 09:00-10:00\nsunday 09:00-10:00").week[6] == ((540, 600),)


def test_a_wrapping_day_range() -> None:
    hours = BusinessHours.parse("sat-mon 10:00-12:00")
    assert [bool(day) for day in hours.week] == [True, False, False, False, False, True, True]


def test_a_range_crossing_midnight_is_split_into_the_next_day() -> None:
    hours = BusinessHours.parse("fri 22:00-02:00; sun 20:00-00:00")
    assert hours.week[4] == ((1320, 1440),)
    assert hours.week[5] == ((0, 120),)
    assert hours.week[6] == ((1200, 1440),)  # ending at 00:00 leaves nothing on Monday
    assert hours.week[0] == ()


def test_an_empty_schedule_is_always_open_even_on_closed_dates() -> None:
    hours = BusinessHours.parse("  ", closed_dates=["2026-05-04"])
    assert hours.always_open
    assert hours.is_open(at(4, 3))
    assert hours.closed_period(at(4, 3)) is None


@pytest.mark.parametrize(
    ("schedule", "names"),
    [
        ("funday 09:00-18:00", ["'funday' is not a day", "mon..sun"]),
        ("mon-xyz 09:00-18:00", ["'xyz' is not a day"]),
        ("mon-tue-wed 09:00-18:00", ["'mon-tue-wed' is not a day"]),
        ("mon 25:00-26:00", ["'25:00' is not a valid time", "00:00..23:59"]),
        ("mon 09:00-24:30", ["'24:30' is not a valid time"]),
        ("mon 24:00-08:00", ["'24:00' is not a valid time"]),
        ("mon 09:60-10:00", ["'09:60' is not a valid time"]),
        ("mon 09:00", ["'09:00' has no end time", "HH:MM-HH:MM"]),
        ("mon 09:00-", ["'09:00-' has no end time"]),
        ("mon 09:00-18", ["'09:00-18' is not a time range"]),
        ("mon 09:00-09:00", ["starts and ends at the same time", "00:00-24:00"]),
        ("mon-fri", ["rule 'mon-fri' has no times", "mon-fri 09:00-18:00"]),
        ("09:00-18:00", ["has no days before its times"]),
        ("mon 09:00-18:00;; sat 10:00-12:00", ["empty rule"]),
        (";", ["empty rule"]),
        ("; mon 09:00-18:00", ["empty rule"]),
    ],
)
def test_schedule_errors_name_the_bad_part(schedule: str, names: list[str]) -> None:
    with pytest.raises(ValueError) as caught:
        BusinessHours.parse(schedule)
    for name in names:
        assert name in str(caught.value)


def test_a_bad_part_is_reported_with_its_rule() -> None:
    with pytest.raises(ValueError, match=r"rule 'sat 10:00-25:00': '25:00' is not a valid time"):
        BusinessHours.parse("mon-fri 09:00-18:00; sat 10:00-25:00")


@pytest.mark.parametrize(
    ("dates", "name"),
    [
        (["2026-13-01"], "'2026-13-01' is not a date"),
        (["2026-02-30"], "'2026-02-30' is not a date"),
        (["10/01/2026"], "'10/01/2026' is not a date"),
        (["2026-10-01..2026-10"], "'2026-10-01..2026-10' is not a date"),
        (["2026-10-07..2026-10-01"], "end before they start"),
    ],
)
def test_closed_date_errors_name_the_bad_date(dates: list[str], name: str) -> None:
    with pytest.raises(ValueError, match="closed date") as caught:
        BusinessHours.parse(WEEKDAYS, closed_dates=dates)
    assert name in str(caught.value)
    if "is not a date" in name:
        assert "YYYY-MM-DD" in str(caught.value)


def test_empty_closed_date_entries_are_skipped() -> None:
    hours = BusinessHours.parse(WEEKDAYS, closed_dates=["", " 2026-05-04 .. 2026-05-05 "])
    assert hours.closed == ((at(4, 0).date(), at(5, 0).date()),)


def test_closed_dates_as_one_string_are_split() -> None:
    hours = BusinessHours.parse(WEEKDAYS, closed_dates="2026-05-04, 2026-05-06..2026-05-07")
    assert not hours.is_open(at(4, 10))
    assert hours.is_open(at(5, 10))
    assert not hours.is_open(at(7, 10))


# --- is_open ---------------------------------------------------------------------------------------


def test_start_is_inclusive_and_end_exclusive() -> None:
    hours = BusinessHours.parse(WEEKDAYS)
    assert not hours.is_open(at(4, 8, 59, second=59))
    assert hours.is_open(at(4, 9))
    assert hours.is_open(at(4, 17, 59, second=59))
    assert not hours.is_open(at(4, 18))
    assert not hours.is_open(at(9, 12))  # Saturday


def test_a_range_crossing_midnight_is_open_into_the_next_morning() -> None:
    hours = BusinessHours.parse("fri 22:00-02:00")
    assert not hours.is_open(at(8, 21, 59))
    assert hours.is_open(at(8, 22))
    assert hours.is_open(at(8, 23, 59))
    assert hours.is_open(at(9, 0))
    assert hours.is_open(at(9, 1, 59))
    assert not hours.is_open(at(9, 2))
    assert not hours.is_open(at(4, 1))  # Monday: no Sunday range spills over


def test_a_whole_day_schedule_ends_at_24_00() -> None:
    hours = BusinessHours.parse("daily 00:00-24:00")
    assert hours.is_open(at(4, 0))
    assert hours.is_open(at(10, 23, 59, second=59))


def test_closed_dates_and_date_ranges_close_the_whole_day() -> None:
    hours = BusinessHours.parse(WEEKDAYS, closed_dates=["2026-05-05", "2026-05-13..2026-05-15"])
    assert hours.is_open(at(4, 10))
    assert not hours.is_open(at(5, 10))
    assert hours.is_open(at(6, 10))
    assert hours.is_open(at(12, 10))
    assert not any(hours.is_open(at(day, 10)) for day in (13, 14, 15))
    assert hours.is_open(at(18, 10))


def test_a_closed_date_closes_the_midnight_tail_of_the_day_before() -> None:
    closed_saturday = BusinessHours.parse("fri 22:00-02:00", closed_dates=["2026-05-09"])
    assert closed_saturday.is_open(at(8, 23, 59))
    assert not closed_saturday.is_open(at(9, 0))
    closed_friday = BusinessHours.parse("fri 22:00-02:00", closed_dates=["2026-05-08"])
    assert not closed_friday.is_open(at(8, 23))
    assert closed_friday.is_open(at(9, 1))  # Saturday is an open date


def test_a_timestamp_is_judged_in_the_zone() -> None:
    hours = BusinessHours.parse(WEEKDAYS)
    assert hours.is_open(at(4, 9).timestamp())
    assert not hours.is_open(at(4, 8, 59).timestamp())
    assert hours.is_open(int(at(4, 12).timestamp()))


def test_an_aware_utc_datetime_is_converted_to_shanghai() -> None:
    hours = BusinessHours.parse(WEEKDAYS, timezone="Asia/Shanghai")
    assert hours.is_open(datetime(2026, 5, 4, 1, 0, tzinfo=UTC))  # 09:00 in Shanghai
    assert not hours.is_open(datetime(2026, 5, 4, 0, 59, tzinfo=UTC))
    assert not hours.is_open(datetime(2026, 5, 4, 10, 0, tzinfo=UTC))  # 18:00 in Shanghai


def test_a_naive_datetime_is_local_wall_time() -> None:
    hours = BusinessHours.parse(WEEKDAYS, timezone="Europe/London")
    assert hours.is_open(datetime(2026, 5, 4, 9, 0))
    assert not hours.is_open(datetime(2026, 5, 4, 18, 0))


# --- closed periods --------------------------------------------------------------------------------


def test_an_open_moment_has_no_closed_period() -> None:
    assert BusinessHours.parse(WEEKDAYS).closed_period(at(4, 10)) is None


def test_one_closed_period_from_friday_evening_to_monday_morning() -> None:
    hours = BusinessHours.parse(WEEKDAYS)
    periods = [hours.closed_period(moment) for moment in (at(8, 19), at(9, 3), at(10, 23, 59), at(11, 8, 59))]
    assert all(period is not None for period in periods)
    assert {period.period_id for period in periods if period} == {"2026-05-11T09:00:00+08:00"}
    assert periods[0] == ClosedPeriod(start=at(8, 18), reopens=at(11, 9))
    following = hours.closed_period(at(11, 19))
    assert following == ClosedPeriod(start=at(11, 18), reopens=at(12, 9))
    assert following is not None and periods[0] is not None
    assert following.period_id != periods[0].period_id


def test_the_closed_period_before_opening_on_the_same_day() -> None:
    hours = BusinessHours.parse("mon-fri 09:00-12:00,13:30-18:00")
    assert hours.closed_period(at(5, 8)) == ClosedPeriod(start=at(4, 18), reopens=at(5, 9))
    lunch, evening = hours.closed_period(at(5, 12)), hours.closed_period(at(5, 18))
    assert lunch == ClosedPeriod(start=at(5, 12), reopens=at(5, 13, 30))
    assert lunch is not None and evening is not None
    assert lunch.period_id != evening.period_id


def test_closed_periods_around_midnight_ranges_and_closed_dates() -> None:
    hours = BusinessHours.parse("fri 22:00-02:00; sat 10:00-12:00", closed_dates=["2026-05-16"])
    assert hours.closed_period(at(9, 2)) == ClosedPeriod(start=at(9, 2), reopens=at(9, 10))
    # Saturday 16 May is closed: Friday's range is cut at midnight and Saturday's morning is lost.
    assert hours.closed_period(at(16, 0)) == ClosedPeriod(start=at(16, 0), reopens=at(22, 22))


def test_a_holiday_week_is_one_closed_period() -> None:
    hours = BusinessHours.parse(WEEKDAYS, closed_dates=["2026-10-01..2026-10-07"])
    inside = [hours.closed_period(at(day, 12, month=10)) for day in (1, 3, 7)]
    assert {period.period_id for period in inside if period} == {"2026-10-08T09:00:00+08:00"}
    assert inside[0] == ClosedPeriod(start=at(30, 18, month=9), reopens=at(8, 9, month=10))


def test_a_schedule_that_never_reopens() -> None:
    hours = BusinessHours.parse("daily 09:00-18:00", closed_dates=["2026-01-01..2030-12-31"])
    period = hours.closed_period(at(4, 12))
    assert period is not None
    assert period.reopens is None
    assert period.period_id == "never"
    assert period.seconds_until_reopen(at(4, 12)) is None


def test_seconds_until_reopen_for_a_ttl() -> None:
    period = BusinessHours.parse(WEEKDAYS).closed_period(at(8, 19))
    assert period is not None
    assert period.seconds_until_reopen(at(8, 19)) == (at(11, 9) - at(8, 19)).total_seconds()
    assert period.seconds_until_reopen(at(11, 8, 59).timestamp()) == 60.0
    assert period.seconds_until_reopen(datetime(2026, 5, 11, 8, 0)) == 3600.0  # naive: Shanghai wall time
    assert period.seconds_until_reopen(at(12, 0)) == 0.0


def test_closed_period_of_a_timestamp_matches_its_datetime() -> None:
    hours = BusinessHours.parse(WEEKDAYS)
    assert hours.closed_period(at(9, 3).timestamp()) == hours.closed_period(at(9, 3))


# --- time zones ------------------------------------------------------------------------------------


def test_china_zones_fall_back_to_a_fixed_utc_plus_8() -> None:
    for name in ("Asia/Shanghai", "PRC", "Asia/Chongqing", "asia/hong_kong", " Asia/Harbin "):
        zone = fallback_timezone(name)
        assert zone is CHINA_STANDARD_TIME
        assert zone.utcoffset(None) == timedelta(hours=8)
    assert fallback_timezone("UTC").utcoffset(None) == timedelta(0)
    with pytest.raises(ValueError, match="unknown time zone 'Europe/Paris'"):
        fallback_timezone("Europe/Paris")


def test_resolve_timezone_uses_the_fallback_without_a_tz_database() -> None:
    def no_tz_database(name: str) -> tzinfo:
        raise ZoneInfoNotFoundError(name)

    assert resolve_timezone("Asia/Shanghai", no_tz_database) is CHINA_STANDARD_TIME
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        resolve_timezone("Mars/Olympus", no_tz_database)


def test_a_fixed_offset_zone_gives_the_same_answers() -> None:
    fixed = BusinessHours(**{**vars(BusinessHours.parse(WEEKDAYS)), "zone": CHINA_STANDARD_TIME})
    period = fixed.closed_period(datetime(2026, 5, 8, 11, 0, tzinfo=UTC))  # Friday 19:00 in China
    assert period is not None
    assert period.period_id == "2026-05-11T09:00:00+08:00"
    assert fixed.is_open(datetime(2026, 5, 4, 1, 0, tzinfo=UTC))


def test_unknown_and_malformed_zones_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        BusinessHours.parse(WEEKDAYS, timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="not an IANA name"):
        BusinessHours.parse(WEEKDAYS, timezone="")


def _berlin() -> ZoneInfo:
    try:
        return ZoneInfo("Europe/Berlin")
    except ZoneInfoNotFoundError:
        pytest.skip("no tz database for Europe/Berlin")


def test_a_boundary_in_a_dst_gap_takes_effect_at_the_jump() -> None:
    berlin = _berlin()  # 29 March 2026: 02:00 CET jumps to 03:00 CEST
    hours = BusinessHours.parse("sun 02:30-05:00", timezone="Europe/Berlin")
    period = hours.closed_period(datetime(2026, 3, 29, 1, 30, tzinfo=berlin))
    assert period is not None
    assert period.reopens == datetime(2026, 3, 29, 3, 0, tzinfo=berlin)
    assert period.reopens.utcoffset() == timedelta(hours=2)
    assert hours.is_open(datetime(2026, 3, 29, 1, 0, tzinfo=UTC))  # 03:00 CEST


def test_wall_clock_rules_follow_dst() -> None:
    berlin = _berlin()
    hours = BusinessHours.parse(WEEKDAYS, timezone="Europe/Berlin")
    assert hours.is_open(datetime(2026, 1, 5, 8, 0, tzinfo=UTC))  # 09:00 CET
    assert hours.is_open(datetime(2026, 7, 6, 7, 0, tzinfo=UTC))  # 09:00 CEST
    assert not hours.is_open(datetime(2026, 7, 6, 6, 59, tzinfo=UTC))
    period = hours.closed_period(datetime(2026, 3, 27, 20, 0, tzinfo=berlin))
    assert period is not None
    assert period.reopens == datetime(2026, 3, 30, 9, 0, tzinfo=berlin)
    assert period.seconds_until_reopen(datetime(2026, 3, 28, 9, 0, tzinfo=berlin)) == (48 - 1) * 3600


def test_the_second_pass_of_a_repeated_hour_reopens_at_its_later_occurrence() -> None:
    berlin = _berlin()  # 25 October 2026: 03:00 CEST falls back to 02:00 CET
    hours = BusinessHours.parse("sun 02:30-05:00", timezone="Europe/Berlin")
    first = hours.closed_period(datetime(2026, 10, 25, 0, 10, tzinfo=UTC))  # 02:10 CEST
    second = hours.closed_period(datetime(2026, 10, 25, 1, 10, tzinfo=UTC))  # 02:10 CET
    assert first is not None and second is not None
    assert first.period_id == "2026-10-25T02:30:00+02:00"
    assert second.period_id == "2026-10-25T02:30:00+01:00"
    assert second.seconds_until_reopen(datetime(2026, 10, 25, 1, 10, tzinfo=UTC)) == 20 * 60
    assert hours.is_open(datetime(2026, 10, 25, 2, 40, tzinfo=berlin, fold=1))  # 02:40 CET
