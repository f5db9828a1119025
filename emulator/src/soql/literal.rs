//! Turning literal text into values: string escapes, numbers, date and datetime
//! literals, and relative dates (`TODAY`, `LAST_N_DAYS:n`) resolved against a clock.

use chrono::{DateTime, Datelike, Days, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};

use super::ast::RelativeDate;

/// A string literal with its escapes resolved. In a `LIKE` pattern, `\%` and `\_` stay
/// escaped (as [`LikeChar::Literal`]); elsewhere they are plain characters.
pub fn unescape(raw: &str) -> Result<String, char> {
    let mut out = String::with_capacity(raw.len());
    for piece in like_chars(raw)? {
        match piece {
            LikeChar::Literal(c) | LikeChar::Wildcard(c) => out.push(c),
        }
    }
    Ok(out)
}

/// A character of a `LIKE` pattern: a wildcard (`%`, `_`) or a character to match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LikeChar {
    Literal(char),
    Wildcard(char),
}

/// Resolves escapes for a `LIKE` pattern. `Err` carries the character after a backslash
/// that SOQL does not define.
pub fn like_chars(raw: &str) -> Result<Vec<LikeChar>, char> {
    let mut out = Vec::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(match c {
                '%' | '_' => LikeChar::Wildcard(c),
                _ => LikeChar::Literal(c),
            });
            continue;
        }
        let escaped = chars.next().unwrap_or('\\');
        let resolved = match escaped {
            'n' | 'N' => '\n',
            'r' | 'R' => '\r',
            't' | 'T' => '\t',
            'b' | 'B' => '\u{8}',
            'f' | 'F' => '\u{c}',
            '"' | '\'' | '\\' | '%' | '_' => escaped,
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .and_then(char::from_u32)
                    .ok_or('u')?
            }
            other => return Err(other),
        };
        out.push(LikeChar::Literal(resolved));
    }
    Ok(out)
}

/// A numeric literal: digits with an optional sign and fraction.
pub fn number(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// `YYYY-MM-DD`.
pub fn date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// `YYYY-MM-DDThh:mm:ss[.SSS](Z|+hh:mm|-hh:mm|+hhmm|-hhmm)`, `T` and `Z` in either case.
pub fn datetime(text: &str) -> Option<DateTime<Utc>> {
    let normalized = text.replacen(['t'], "T", 1).replacen(['z'], "Z", 1);
    let (local, zone) = split_zone(&normalized)?;
    let naive = NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    let offset_seconds = match zone {
        "Z" => 0,
        _ => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let rest = zone.get(1..)?;
            let (hours, minutes) = match rest.len() {
                5 if rest.as_bytes()[2] == b':' => (rest.get(..2)?, rest.get(3..)?),
                4 => (rest.get(..2)?, rest.get(2..)?),
                _ => return None,
            };
            let two_digits = |s: &str| -> Option<i32> {
                s.bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| s.parse().ok())?
            };
            let (hours, minutes) = (two_digits(hours)?, two_digits(minutes)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            sign * (hours * 3600 + minutes * 60)
        }
    };
    let offset = FixedOffset::east_opt(offset_seconds)?;
    let at = offset.from_local_datetime(&naive).single()?;
    Some(at.with_timezone(&Utc))
}

fn split_zone(text: &str) -> Option<(&str, &str)> {
    if let Some(local) = text.strip_suffix('Z') {
        return Some((local, "Z"));
    }
    // The zone starts at the last sign after the `T`.
    let t = text.find('T')?;
    let sign = text[t..].rfind(['+', '-'])? + t;
    Some((&text[..sign], &text[sign..]))
}

/// A half-open range of days `[first, end)`, what a relative date literal stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRange {
    pub first: NaiveDate,
    pub end: NaiveDate,
}

impl DayRange {
    /// The same range in time: from midnight UTC of `first` to midnight UTC of `end`.
    pub fn instants(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        let midnight = |d: NaiveDate| Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN));
        (midnight(self.first), midnight(self.end))
    }
}

/// The days `literal` covers when today is `today` (the org's time zone is UTC). The
/// ranges follow the SOQL reference: `LAST_N_DAYS:n` runs from `n` days ago through the
/// end of today, `NEXT_N_DAYS:n` from tomorrow for `n` days.
pub fn relative_range(literal: RelativeDate, today: NaiveDate) -> Option<DayRange> {
    let plus = |d: NaiveDate, n: u32| d.checked_add_days(Days::new(u64::from(n)));
    let minus = |d: NaiveDate, n: u32| d.checked_sub_days(Days::new(u64::from(n)));
    let day = |d: NaiveDate| {
        Some(DayRange {
            first: d,
            end: plus(d, 1)?,
        })
    };
    let month_start = |year: i32, month: u32| NaiveDate::from_ymd_opt(year, month, 1);
    let month = |offset: i32| {
        let index = today.year() * 12 + today.month0() as i32 + offset;
        let first = month_start(index.div_euclid(12), index.rem_euclid(12) as u32 + 1)?;
        let next = index + 1;
        let end = month_start(next.div_euclid(12), next.rem_euclid(12) as u32 + 1)?;
        Some(DayRange { first, end })
    };
    let year = |offset: i32| {
        Some(DayRange {
            first: NaiveDate::from_ymd_opt(today.year() + offset, 1, 1)?,
            end: NaiveDate::from_ymd_opt(today.year() + offset + 1, 1, 1)?,
        })
    };
    match literal {
        RelativeDate::Yesterday => day(minus(today, 1)?),
        RelativeDate::Today => day(today),
        RelativeDate::Tomorrow => day(plus(today, 1)?),
        RelativeDate::LastNDays(n) => Some(DayRange {
            first: minus(today, n)?,
            end: plus(today, 1)?,
        }),
        RelativeDate::NextNDays(n) => Some(DayRange {
            first: plus(today, 1)?,
            end: plus(today, n.checked_add(1)?)?,
        }),
        RelativeDate::NDaysAgo(n) => day(minus(today, n)?),
        RelativeDate::NDaysFromNow(n) => day(plus(today, n)?),
        RelativeDate::Last90Days => relative_range(RelativeDate::LastNDays(90), today),
        RelativeDate::Next90Days => relative_range(RelativeDate::NextNDays(90), today),
        RelativeDate::LastMonth => month(-1),
        RelativeDate::ThisMonth => month(0),
        RelativeDate::NextMonth => month(1),
        RelativeDate::LastYear => year(-1),
        RelativeDate::ThisYear => year(0),
        RelativeDate::NextYear => year(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(unescape(r"Bob\'s \\ \n\t\u00e9").unwrap(), "Bob's \\ \n\té");
        assert_eq!(unescape(r"100\%").unwrap(), "100%");
        assert_eq!(unescape(r"\q"), Err('q'));
        assert_eq!(unescape(r"\u00zz"), Err('u'));
    }

    #[test]
    fn like_escapes_keep_wildcards_apart() {
        assert_eq!(
            like_chars(r"a\%%_").unwrap(),
            vec![
                LikeChar::Literal('a'),
                LikeChar::Literal('%'),
                LikeChar::Wildcard('%'),
                LikeChar::Wildcard('_'),
            ]
        );
    }

    #[test]
    fn datetimes_in_every_documented_form() {
        let expected = Utc.with_ymd_and_hms(2024, 1, 31, 10, 0, 0).unwrap();
        for text in [
            "2024-01-31T10:00:00Z",
            "2024-01-31T10:00:00.000Z",
            "2024-01-31T11:00:00+01:00",
            "2024-01-31T02:00:00-08:00",
            "2024-01-31T11:00:00+0100",
            "2024-01-31t10:00:00z",
        ] {
            assert_eq!(datetime(text), Some(expected), "{text}");
        }
        for bad in [
            "2020-12-12T12:12:00-25:00",
            "2020-52-12T12:12:00-05:00",
            "2024-01-31T10:00:00",
            "2024-01-31T10:00Z",
        ] {
            assert_eq!(datetime(bad), None, "{bad}");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(date("2024-02-29"), NaiveDate::from_ymd_opt(2024, 2, 29));
        assert_eq!(date("2023-02-29"), None);
    }

    #[test]
    fn relative_ranges() {
        let today = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        let range = |first, end| Some(DayRange { first, end });
        assert_eq!(
            relative_range(RelativeDate::Today, today),
            range(d(2024, 3, 1), d(2024, 3, 2))
        );
        assert_eq!(
            relative_range(RelativeDate::Yesterday, today),
            range(d(2024, 2, 29), d(2024, 3, 1))
        );
        // LAST_N_DAYS:1 covers yesterday and today.
        assert_eq!(
            relative_range(RelativeDate::LastNDays(1), today),
            range(d(2024, 2, 29), d(2024, 3, 2))
        );
        assert_eq!(
            relative_range(RelativeDate::NextNDays(2), today),
            range(d(2024, 3, 2), d(2024, 3, 4))
        );
        assert_eq!(
            relative_range(RelativeDate::LastMonth, d(2024, 1, 15)),
            range(d(2023, 12, 1), d(2024, 1, 1))
        );
        assert_eq!(
            relative_range(RelativeDate::ThisYear, today),
            range(d(2024, 1, 1), d(2025, 1, 1))
        );
    }
}
