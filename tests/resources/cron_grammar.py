"""Cron time fields and the real crontab(1)'s verdict on each, measured on Debian's
cron (3.0pl1) in a lab node; tests/e2e/test_cron_e2e.py checks the verdicts against
the binary again, tests/resources/test_cron.py checks converge's grammar against them.

OK: crontab installs it and converge accepts it. BAD: crontab refuses it and so does
converge. LAX: Debian's crontab installs it but silently drops the text after the
first complete element (``1-2-3`` is read as ``1-2``); converge refuses it, since the
job would not run when written.
"""

from __future__ import annotations

OK, BAD, LAX = "ok", "bad", "lax"

#: (field, text, verdict)
TABLE = [
    # names on their own, in ranges and in lists, any case
    ("weekday", "mon-fri", OK), ("month", "jan,jul", OK), ("weekday", "MON", OK),
    ("weekday", "Mon-Fri", OK), ("weekday", "MoN", OK), ("weekday", "SUN-TUE", OK),
    ("weekday", "mon,wed,fri", OK), ("weekday", "mon-fri,sat", OK), ("weekday", "mon-5", OK),
    ("weekday", "1-fri", OK), ("weekday", "sun,7", OK), ("weekday", "sun-sat", OK),
    ("month", "JUL", OK), ("month", "jan,feb-mar", OK), ("month", "jan-3", OK),
    ("weekday", "monday", BAD), ("weekday", "sunday", BAD), ("weekday", "tues", BAD),
    ("month", "july", BAD), ("minute", "mon", BAD), ("hour", "jan", BAD),
    # ranges, backwards ones included (the daemon wraps them)
    ("weekday", "fri-mon", OK), ("weekday", "5-1", OK), ("weekday", "7-0", OK),
    ("weekday", "0-7", OK), ("hour", "23-1", OK), ("minute", "59-0", OK),
    ("weekday", "0-8", BAD), ("minute", "1-60", BAD), ("minute", "1-", BAD),
    ("minute", "-5", BAD), ("minute", "-1", BAD),
    # steps
    ("weekday", "*/2", OK), ("weekday", "mon-fri/2", OK), ("month", "jan-dec/3", OK),
    ("month", "feb-jan/2", OK), ("minute", "1-5/2", OK), ("minute", "1-5/02", OK),
    ("minute", "*/59", OK), ("minute", "*/60", OK), ("minute", "0-59/61", OK),
    ("minute", "*/1000", OK), ("day", "1-31/31", OK), ("day", "1-31/32", OK),
    ("weekday", "mon/2", BAD), ("weekday", "5/2", BAD), ("weekday", "sun/2", BAD),
    ("minute", "5/2", BAD), ("month", "jan/2", BAD), ("weekday", "*/0", BAD),
    ("minute", "*/0", BAD), ("minute", "1-5/0", BAD), ("minute", "1-5/x", BAD),
    ("minute", "*/5x", BAD), ("minute", "1-*/2", BAD),
    # lists
    ("minute", "1,2,3", OK), ("weekday", "*,1", OK), ("minute", "*/5,1", OK),
    ("minute", "1,,3", BAD), ("minute", "1,", BAD), ("minute", ",1", BAD),
    ("weekday", "1-5,", BAD), ("minute", "*/2,mon", BAD),
    # numbers: bounds, leading zeros, junk
    ("minute", "05", OK), ("minute", "0059", OK), ("hour", "0", OK), ("day", "31", OK),
    ("month", "12", OK), ("weekday", "7", OK),
    ("minute", "60", BAD), ("minute", "0060", BAD), ("minute", "99999999999", BAD),
    ("hour", "24", BAD), ("day", "0", BAD), ("day", "32", BAD), ("month", "0", BAD),
    ("month", "13", BAD), ("weekday", "8", BAD), ("minute", "5x", BAD),
    ("minute", "0x5", BAD), ("minute", "1-2x", BAD),
    # what Debian's crontab installs by reading only the first element
    ("minute", "1-2-3", LAX), ("minute", "1-2-x", LAX), ("minute", "1-5/2/3", LAX),
    ("minute", "*-5", LAX),
]

FIELDS = ("minute", "hour", "day", "month", "weekday")


def line(field: str, text: str) -> str:
    """A crontab line with TEXT in FIELD and * in the other four."""
    return " ".join(text if name == field else "*" for name in FIELDS) + " /bin/true\n"
