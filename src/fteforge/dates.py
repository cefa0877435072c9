"""Due dates as users say them: an ISO date or a phrase the Task API resolves against its own today.

Why the API takes phrases: a 135M model does not do calendar arithmetic. With dates spelled out in
the system prompt it still missed most held-out "by the end of the month" and "the day after
tomorrow" cases (release 1.16.0: 6 of its 14 agentic failures). Copying the user's words into the
call is a skill it has; turning them into a date is the server's job, done here, deterministically,
as hosted task APIs do with their natural-language due strings.

The grammar is small and closed, so a phrase either resolves to one date or is refused with a
message that lists what works (the model reads it and can repair its call).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

import regex
from jsonschema import Draft202012Validator, FormatChecker

# The JSON Schema `format` of a date argument that takes a phrase as well as YYYY-MM-DD.
DATE_FORMAT = "date-phrase"
DATE_HINT = ("use YYYY-MM-DD or a phrase: today, tomorrow, the day after tomorrow, Friday, next Friday, "
             "in 3 days, in two weeks, 3 days from now, the end of the week, the end of the month, March 14")

_WEEKDAYS = [d.lower() for d in calendar.day_name]
_MONTHS = [m.lower() for m in calendar.month_name[1:]]
NUMBER_WORDS = {"a": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14}
_MONTH_RE = "|".join(_MONTHS)
# Words a model may copy along with the date ("by Friday"); they do not change which day is meant.
_LEAD = re.compile(r"^(?:(?:by|on|due|for|until|before|after)\s+)+")


def end_of_week(day: dt.date) -> dt.date:
    """The coming Sunday (`day` itself on a Sunday): what "by the end of the week" means here."""
    return day + dt.timedelta(days=6 - day.weekday())


def end_of_month(day: dt.date) -> dt.date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def resolve_date(expr: str, today: dt.date | str) -> str:
    """A date phrase as YYYY-MM-DD, relative to `today`; ValueError if it is not in the grammar.

    A weekday ("Friday", "next Friday") is the first such day strictly after today; "end of the
    week" is the coming Sunday (today if it is Sunday); "March 14"/"14 March" without a year is the
    next such date on or after today; "in N days/weeks" and "N days from now" count from today.
    """
    today = dt.date.fromisoformat(today) if isinstance(today, str) else today
    s = _LEAD.sub("", " ".join(expr.strip().lower().split())).removeprefix("the ")
    if s in ("today", "tomorrow", "yesterday", "day after tomorrow"):
        day = today + dt.timedelta(days={"today": 0, "tomorrow": 1, "yesterday": -1}.get(s, 2))
    elif m := (re.fullmatch(r"in (\d{1,3}|[a-z]+) (day|week)s?", s)
               or re.fullmatch(r"(\d{1,3}|[a-z]+) (day|week)s? from now", s)):
        if not m[1].isdigit() and m[1] not in NUMBER_WORDS:
            raise ValueError(f"cannot resolve date phrase {expr!r}: {DATE_HINT}")
        n = int(m[1]) if m[1].isdigit() else NUMBER_WORDS[m[1]]
        day = today + dt.timedelta(days=n * (7 if m[2] == "week" else 1))
    elif m := re.fullmatch(rf"(?:next )?({'|'.join(_WEEKDAYS)})", s):
        day = today + dt.timedelta(days=(_WEEKDAYS.index(m[1]) - today.weekday() - 1) % 7 + 1)
    elif s in ("end of the week", "end of this week", "end of week"):
        day = end_of_week(today)
    elif s in ("end of the month", "end of this month", "end of month"):
        day = end_of_month(today)
    elif re.fullmatch(r"\d{4}-\d{2}-\d{2}", s):
        try:
            day = dt.date.fromisoformat(s)
        except ValueError:
            raise ValueError(f"{expr!r} is not a real date: {DATE_HINT}") from None
    elif m := (re.fullmatch(rf"({_MONTH_RE}) (\d{{1,2}})(?:st|nd|rd|th)?", s)
               or re.fullmatch(rf"(\d{{1,2}})(?:st|nd|rd|th)? ({_MONTH_RE})", s)):
        month_name, d = (m[1], m[2]) if not m[1].isdigit() else (m[2], m[1])
        month = _MONTHS.index(month_name) + 1
        if int(d) > 31 or (month == 2 and int(d) > 29) or int(d) > calendar.monthrange(2000, month)[1]:
            raise ValueError(f"{expr!r} is not a real date: {DATE_HINT}")
        # February 29 waits for the next leap year rather than failing in a common one.
        year = today.year
        while True:
            if month != 2 or int(d) != 29 or calendar.isleap(year):
                day = dt.date(year, month, int(d))
                if day >= today:
                    break
            year += 1
    else:
        raise ValueError(f"cannot resolve date phrase {expr!r}: {DATE_HINT}")
    return day.isoformat()


# The same grammar as one pattern, for `could_become_date_phrase`: `resolve_date` stays the authority
# (it also checks that a day exists), this only has to accept every prefix of what it accepts.
# At most three digits: a constrained decoder tries long digit runs, and "in 99999999 days" is past
# the last date Python has (an OverflowError once killed an evaluation stage).
_NUMBER = r"(?:\d{1,3}|" + "|".join(NUMBER_WORDS) + ")"
_PHRASE = regex.compile(
    r"\s*(?:(?:by|on|due|for|until|before|after)\s+)*(?:the\s+)?(?:"
    r"today|tomorrow|yesterday|day\s+after\s+tomorrow"
    rf"|in\s+{_NUMBER}\s+(?:day|week)s?|{_NUMBER}\s+(?:day|week)s?\s+from\s+now"
    rf"|(?:next\s+)?(?:{'|'.join(_WEEKDAYS)})"
    r"|end\s+of\s+(?:(?:the|this)\s+)?(?:week|month)"
    r"|\d{4}-\d{2}-\d{2}"
    rf"|(?:{_MONTH_RE})\s+\d{{1,2}}(?:st|nd|rd|th)?|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:{_MONTH_RE})"
    r")\s*"
)


def could_become_date_phrase(prefix: str) -> bool:
    """True while `prefix` can still be completed into a phrase `resolve_date` may accept.

    Why: constrained decoding used to check a phrase only when its string closed, so a model that
    began "inactive tasks by ..." could never close it and wrote on to its token cap. Checked at
    every token, a wrong first word is refused where it is written.
    """
    return _PHRASE.fullmatch(prefix.lower(), partial=True) is not None


def is_date_phrase(value: object) -> bool:
    """True for what `resolve_date` accepts on any day (the JSON Schema format check)."""
    if not isinstance(value, str):
        return True  # formats only constrain strings; `type` reports the rest
    try:
        resolve_date(value, dt.date(2000, 1, 1))
    except ValueError:
        return False
    return True


FORMAT_CHECKER = FormatChecker()
FORMAT_CHECKER.checks(DATE_FORMAT)(is_date_phrase)


def arguments_validator(parameters: Mapping[str, Any]) -> Draft202012Validator:
    """A validator for one tool's arguments: JSON Schema 2020-12 with formats checked, ours included."""
    return Draft202012Validator(parameters, format_checker=FORMAT_CHECKER)


def date_fields(parameters: Mapping[str, Any]) -> list[str]:
    """The arguments of a tool schema that take a date phrase."""
    return [k for k, p in parameters.get("properties", {}).items() if p.get("format") == DATE_FORMAT]


def resolve_dates(arguments: Mapping[str, Any], fields: list[str], today: dt.date | str) -> dict[str, Any]:
    """`arguments` with each date field resolved to YYYY-MM-DD; a value that does not resolve stays as
    given (validation has refused it already, or the scorer reports the mismatch)."""
    out = dict(arguments)
    for key in fields:
        if isinstance(out.get(key), str):
            try:
                out[key] = resolve_date(out[key], today)
            except ValueError:
                pass
    return out
