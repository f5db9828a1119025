//! Rows as a binary `COPY … FROM STDIN (FORMAT binary)` stream.
//!
//! PostgreSQL spends about a third of a text `COPY` of a Salesforce page parsing the text
//! of each value (timestamps above all); the binary format hands it each value in its
//! internal form. Salesforce writes dates, times and numbers in one fixed layout each, so
//! they are converted here at little cost. A value in any other shape makes [`encode`]
//! give up on the whole batch, and the caller sends text instead: PostgreSQL's own input
//! functions then accept it or name what is wrong with it, as before.
//!
//! Layouts (PostgreSQL's `*_recv` functions): a header, then per row a 16-bit field count
//! and per field a 32-bit length (-1 for NULL) and the bytes; a 16-bit -1 ends the stream.

use crate::mapping::ColumnType;
use chrono::NaiveDate;

use super::decode::Columns;

/// `PGCOPY\n\377\r\n\0`, no flags, no header extension.
pub(crate) const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The end of a binary stream: a field count of -1.
pub(crate) const TRAILER: &[u8] = &[0xff, 0xff];

/// Microseconds in a day.
const DAY_MICROS: i64 = 86_400_000_000;

/// Encodes `values`, each column of the given type. `None` when a value is not in the
/// layout Salesforce uses for its type.
pub fn encode(types: &[ColumnType], values: &Columns) -> Option<Vec<u8>> {
    if types.len() != values.width() {
        return None;
    }
    let rows = values.len();
    let fields = i16::try_from(types.len()).ok()?;
    // Sized after the first record, to spare most of the regrowth.
    let width: usize = values.row(0).map(|v| v.map_or(8, str::len) + 8).sum();
    let mut out = Vec::with_capacity(HEADER.len() + rows * (width + 2) + 2);
    out.extend_from_slice(HEADER);
    for row in 0..rows {
        out.extend_from_slice(&fields.to_be_bytes());
        for (column_type, value) in types.iter().zip(values.row(row)) {
            match value {
                None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(text) => push_value(&mut out, *column_type, text)?,
            }
        }
    }
    out.extend_from_slice(TRAILER);
    Some(out)
}

/// Appends one non-NULL value with its length; `None` (with part of it appended) when it
/// is not in Salesforce's layout for its type.
pub(crate) fn push_value(out: &mut Vec<u8>, column_type: ColumnType, text: &str) -> Option<()> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    match column_type {
        ColumnType::Varchar(_) | ColumnType::Text => out.extend_from_slice(text.as_bytes()),
        ColumnType::Boolean => out.push(match text {
            "true" => 1,
            "false" => 0,
            _ => return None,
        }),
        ColumnType::Integer => out.extend_from_slice(&text.parse::<i32>().ok()?.to_be_bytes()),
        ColumnType::BigInt => out.extend_from_slice(&text.parse::<i64>().ok()?.to_be_bytes()),
        ColumnType::Numeric { .. } | ColumnType::NumericAny => push_numeric(out, text)?,
        ColumnType::Date => out.extend_from_slice(&days_since_2000(text)?.to_be_bytes()),
        ColumnType::TimestampTz => out.extend_from_slice(&timestamp_micros(text)?.to_be_bytes()),
        ColumnType::Time => out.extend_from_slice(&time_micros(text)?.to_be_bytes()),
    }
    let length = i32::try_from(out.len() - start - 4).ok()?;
    out[start..start + 4].copy_from_slice(&length.to_be_bytes());
    Some(())
}

/// `YYYY-MM-DD` as days since 2000-01-01, PostgreSQL's epoch.
fn days_since_2000(text: &str) -> Option<i32> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(digits(&b[0..4])?).ok()?,
        digits(&b[5..7])?,
        digits(&b[8..10])?,
    )?;
    let epoch = NaiveDate::from_ymd_opt(2000, 1, 1)?;
    i32::try_from(date.signed_duration_since(epoch).num_days()).ok()
}

/// `YYYY-MM-DDTHH:MM:SS[.fff][Z|±HHMM|±HH:MM]` as microseconds since 2000-01-01 UTC.
fn timestamp_micros(text: &str) -> Option<i64> {
    let (date, time) = text.split_at_checked(10)?;
    let time = time.strip_prefix('T')?;
    let days = i64::from(days_since_2000(date)?);
    let (clock, offset) = split_offset(time)?;
    let local = days * DAY_MICROS + clock_micros(clock)?;
    Some(local - offset)
}

/// `HH:MM:SS[.fff][Z]` (Salesforce's time fields are always `Z`) as microseconds since
/// midnight.
fn time_micros(text: &str) -> Option<i64> {
    let clock = text.strip_suffix('Z').unwrap_or(text);
    clock_micros(clock)
}

/// `HH:MM:SS[.f…]` as microseconds; at most microsecond precision.
fn clock_micros(clock: &str) -> Option<i64> {
    let b = clock.as_bytes();
    if b.len() < 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let (hours, minutes, seconds) = (digits(&b[0..2])?, digits(&b[3..5])?, digits(&b[6..8])?);
    if hours > 23 || minutes > 59 || seconds > 59 {
        return None;
    }
    let fraction = match &b[8..] {
        [] => 0,
        [b'.', rest @ ..] if !rest.is_empty() && rest.len() <= 6 => {
            digits(rest)? * 10u32.pow(6 - u32::try_from(rest.len()).ok()?)
        }
        _ => return None,
    };
    Some(
        (i64::from(hours) * 3600 + i64::from(minutes) * 60 + i64::from(seconds)) * 1_000_000
            + i64::from(fraction),
    )
}

/// Splits `HH:MM:SS.fff+0000` into the clock and the offset east of UTC in microseconds.
fn split_offset(time: &str) -> Option<(&str, i64)> {
    if let Some(clock) = time.strip_suffix('Z') {
        return Some((clock, 0));
    }
    let at = time.rfind(['+', '-'])?;
    let (clock, offset) = time.split_at(at);
    let b = offset.as_bytes();
    let (hours, minutes) = match b.len() {
        5 => (digits(&b[1..3])?, digits(&b[3..5])?),
        6 if b[3] == b':' => (digits(&b[1..3])?, digits(&b[4..6])?),
        _ => return None,
    };
    let micros = (i64::from(hours) * 60 + i64::from(minutes)) * 60_000_000;
    Some((clock, if b[0] == b'-' { -micros } else { micros }))
}

/// ASCII digits as a number; `None` for anything else.
fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 9 {
        return None;
    }
    b.iter().try_fold(0u32, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
    })
}

/// A JSON number (`-12.50`, `1.0E7`) as PostgreSQL's binary numeric: digit count, weight
/// of the first base-10,000 digit, sign, display scale, then the digits. The display scale
/// is the number of fraction digits as written, as `numeric_in` keeps it.
fn push_numeric(out: &mut Vec<u8>, text: &str) -> Option<()> {
    let number = Decimal::parse(text)?;
    let dscale = u16::try_from((-number.shift).max(0)).ok()?;
    let (groups, weight) = number.base_10000()?;
    out.extend_from_slice(&i16::try_from(groups.len()).ok()?.to_be_bytes());
    out.extend_from_slice(&i16::try_from(weight).ok()?.to_be_bytes());
    let sign: u16 = if number.negative && !groups.is_empty() {
        0x4000
    } else {
        0
    };
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
    for group in groups {
        out.extend_from_slice(&group.to_be_bytes());
    }
    Some(())
}

/// A decimal number as written: its value is `digits` × 10^`shift`.
struct Decimal {
    negative: bool,
    /// The decimal digits written, most significant first (0-9 each).
    digits: Vec<u8>,
    shift: i32,
}

impl Decimal {
    /// `-12.50`, `1.0E7`, `3e-2`; `None` for anything else, or an exponent beyond ±1000.
    fn parse(text: &str) -> Option<Decimal> {
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
            Some(at) => {
                let exponent = &unsigned[at + 1..];
                let exponent = exponent.strip_prefix('+').unwrap_or(exponent);
                (&unsigned[..at], exponent.parse::<i32>().ok()?)
            }
            None => (unsigned, 0),
        };
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let written = || whole.bytes().chain(fraction.bytes());
        if whole.is_empty() || !written().all(|c| c.is_ascii_digit()) {
            return None;
        }
        if !(-1000..=1000).contains(&exponent) {
            return None;
        }
        Some(Decimal {
            negative,
            digits: written().map(|c| c - b'0').collect(),
            shift: exponent - i32::try_from(fraction.len()).ok()?,
        })
    }

    /// The base-10,000 digits, most significant first, without leading or trailing zero
    /// groups, and the weight of the first (0 for zero).
    fn base_10000(&self) -> Option<(Vec<u16>, i32)> {
        // Decimal digit i (from the left) has place value 10^(shift + len - 1 - i). Groups
        // of four align on place values that are multiples of 4; the first group's
        // exponent (floor division) gives the weight.
        let len = i32::try_from(self.digits.len()).ok()?;
        let top = self.shift + len - 1;
        let first_group = top.div_euclid(4);
        let last_group = self.shift.div_euclid(4);
        let mut groups: Vec<u16> =
            Vec::with_capacity(usize::try_from(first_group - last_group + 1).ok()?);
        for group in (last_group..=first_group).rev() {
            let mut value = 0u16;
            for place in (group * 4..group * 4 + 4).rev() {
                let index = top - place;
                let digit = match usize::try_from(index) {
                    Ok(index) if index < self.digits.len() => self.digits[index],
                    _ => 0,
                };
                value = value * 10 + u16::from(digit);
            }
            groups.push(value);
        }
        let leading = groups.iter().take_while(|&&g| g == 0).count();
        groups.drain(..leading);
        while groups.last() == Some(&0) {
            groups.pop();
        }
        let weight = if groups.is_empty() {
            0
        } else {
            first_group - i32::try_from(leading).ok()?
        };
        Some((groups, weight))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(text: &str) -> Option<(i16, i16, u16, u16, Vec<u16>)> {
        let mut out = Vec::new();
        push_numeric(&mut out, text)?;
        let word = |i: usize| u16::from_be_bytes([out[i], out[i + 1]]);
        let n = word(0) as usize;
        Some((
            word(0) as i16,
            word(2) as i16,
            word(4),
            word(6),
            (0..n).map(|k| word(8 + 2 * k)).collect(),
        ))
    }

    #[test]
    fn numbers_become_base_ten_thousand_digits() {
        assert_eq!(numeric("0"), Some((0, 0, 0, 0, vec![])));
        assert_eq!(
            numeric("12345.678"),
            Some((3, 1, 0, 3, vec![1, 2345, 6780]))
        );
        assert_eq!(numeric("-0.0001"), Some((1, -1, 0x4000, 4, vec![1])));
        assert_eq!(numeric("1.0E7"), Some((1, 1, 0, 0, vec![1000])));
        assert_eq!(numeric("2.5e-3"), Some((1, -1, 0, 4, vec![25])));
        assert_eq!(numeric("100000000"), Some((1, 2, 0, 0, vec![1])));
        assert_eq!(numeric("-0.00"), Some((0, 0, 0, 2, vec![])));
        assert_eq!(numeric("abc"), None);
        assert_eq!(numeric("1.5E99999"), None);
        assert_eq!(numeric(".5"), None);
    }

    #[test]
    fn salesforce_dates_and_times_become_microseconds_since_2000() {
        assert_eq!(days_since_2000("2000-01-02"), Some(1));
        assert_eq!(days_since_2000("1999-12-31"), Some(-1));
        assert_eq!(days_since_2000("2024-02-30"), None);
        assert_eq!(
            timestamp_micros("2000-01-01T00:00:01.500+0000"),
            Some(1_500_000)
        );
        assert_eq!(
            timestamp_micros("2000-01-01T01:00:00.000+0100"),
            Some(0),
            "an offset east of UTC is subtracted"
        );
        assert_eq!(timestamp_micros("2000-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            timestamp_micros("2000-01-01T00:00:00.000-05:30"),
            Some(19_800_000_000)
        );
        assert_eq!(timestamp_micros("2000-01-01 00:00:00"), None);
        assert_eq!(time_micros("13:05:07.250Z"), Some(47_107_250_000));
        assert_eq!(time_micros("25:00:00.000Z"), None);
    }

    #[test]
    fn a_value_out_of_layout_gives_up_on_the_batch() {
        let types = [ColumnType::Text, ColumnType::Integer];
        let good = Columns::from_rows(2, [[Some("a"), Some("7")]]).unwrap();
        assert!(encode(&types, &good).is_some());
        let bad = Columns::from_rows(2, [[Some("a"), Some("7.5")]]).unwrap();
        assert!(encode(&types, &bad).is_none());
    }
}
