//! Graph's scalar oddities, read leniently: timestamps with 0–7 fraction digits, ISO 8601
//! durations, doubles that arrive as strings ("NaN"), values of an unexpected type.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// Parse an ISO 8601 / RFC 3339 timestamp; a missing offset means UTC (seen in some Graph answers).
pub fn parse_timestamp(s: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.to_offset(UtcOffset::UTC));
    }
    let fmt = time::macros::format_description!(
        version = 2,
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    PrimitiveDateTime::parse(s, &fmt).ok().map(|t| t.assume_utc())
}

/// `YYYY-MM-DDTHH:MM:SS[.fffffff]Z`: UTC, fraction digits kept up to 7 (Graph's precision).
pub fn format_timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let ticks = t.nanosecond() / 100;
    if ticks != 0 {
        let frac = format!("{ticks:07}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// A timestamp in UTC ISO form: already-canonical values are borrowed as they are (the common
/// case), others are converted; unreadable ones become `None`.
pub fn normalize_timestamp<'a>(s: &Cow<'a, str>) -> Option<Cow<'a, str>> {
    if is_canonical_utc(s.as_bytes()) {
        return Some(s.clone());
    }
    parse_timestamp(s).map(|t| Cow::Owned(format_timestamp(t)))
}

/// `YYYY-MM-DDTHH:MM:SS(.d{1,7})?Z` with plausible field ranges.
fn is_canonical_utc(b: &[u8]) -> bool {
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let num = |r: std::ops::Range<usize>| b[r].iter().fold(0u32, |a, d| a * 10 + u32::from(d - b'0'));
    if b.len() < 20
        || !(digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10) && b[10] == b'T')
        || !(digits(11..13) && b[13] == b':' && digits(14..16) && b[16] == b':' && digits(17..19))
        || b[b.len() - 1] != b'Z'
    {
        return false;
    }
    let (mo, d, h, mi, s) = (num(5..7), num(8..10), num(11..13), num(14..16), num(17..19));
    if !(1..=12).contains(&mo) || !(1..=28).contains(&d) || h > 23 || mi > 59 || s > 59 {
        // Days 29–31 take the slow path, which knows the calendar.
        return false;
    }
    match b.len() {
        20 => true,
        n => b[19] == b'.' && (22..=28).contains(&n) && digits(20..n - 1),
    }
}

/// Milliseconds between two timestamps (end - start), when both can be read.
pub fn duration_between_ms(start: Option<&str>, end: Option<&str>) -> Option<i64> {
    let (s, e) = (parse_timestamp(start?)?, parse_timestamp(end?)?);
    i64::try_from((e - s).whole_milliseconds()).ok()
}

/// An ISO 8601 duration (`PT0.016S`, `PT1M2.5S`, `P1DT2H`, `-PT1S`) in milliseconds. Years and
/// months have no fixed length and are refused, as is anything unreadable.
pub fn parse_duration_ms(s: &str) -> Option<f64> {
    let (sign, rest) = match s.strip_prefix('-') {
        Some(r) => (-1.0, r),
        None => (1.0, s.strip_prefix('+').unwrap_or(s)),
    };
    let rest = rest.strip_prefix(['P', 'p'])?;
    let (date, time) = match rest.split_once(['T', 't']) {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut total = 0.0;
    let mut any = false;
    let mut take = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut num = String::new();
        let mut last_unit = 0usize;
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' || c == ',' {
                num.push(if c == ',' { '.' } else { c });
                continue;
            }
            let idx = units.iter().position(|(u, _)| u.eq_ignore_ascii_case(&c))?;
            if idx < last_unit || num.is_empty() {
                return None;
            }
            let v: f64 = num.parse().ok()?;
            total += v * units[idx].1;
            any = true;
            last_unit = idx + 1;
            num.clear();
        }
        num.is_empty().then_some(())
    };
    take(date, &[('W', 604_800_000.0), ('D', 86_400_000.0)])?;
    if let Some(t) = time {
        if t.is_empty() {
            return None;
        }
        take(t, &[('H', 3_600_000.0), ('M', 60_000.0), ('S', 1000.0)])?;
    }
    (any && total.is_finite()).then_some(sign * total)
}

/// A string-ish value: strings as they are (borrowed when possible), numbers and booleans as
/// their text, anything else as absent. Unknown enum values are just strings.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Text<'a>(pub Option<Cow<'a, str>>);

impl<'a> Text<'a> {
    /// The value, if any and non-empty.
    pub fn get(&self) -> Option<&Cow<'a, str>> {
        self.0.as_ref().filter(|s| !s.is_empty())
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(v))))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Text(None))
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Text(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A number that may arrive as a number or as a string (`"1.25"`, `"NaN"`); non-finite values and
/// anything unreadable are absent.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Num(pub Option<f64>);

impl Num {
    /// As an integer, when it is one.
    pub fn int(self) -> Option<i64> {
        self.0.filter(|v| v.fract() == 0.0 && v.abs() < 9.0e15).map(|v| v as i64)
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let t = Text::deserialize(d)?;
        let v = t.0.and_then(|s| s.trim().parse::<f64>().ok());
        Ok(Num(v.filter(|v| v.is_finite())))
    }
}

/// A boolean that may arrive as a string (`"true"`); anything else is absent.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Flag(pub Option<bool>);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let t = Text::deserialize(d)?;
        Ok(Flag(t.0.and_then(|s| match s.trim() {
            v if v.eq_ignore_ascii_case("true") => Some(true),
            v if v.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        })))
    }
}

/// An object that may also be `null` or of another type (then absent).
#[derive(Debug, Clone, PartialEq)]
pub struct Obj<T>(pub Option<T>);

impl<T> Default for Obj<T> {
    fn default() -> Self {
        Obj(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(m)).map(|v| Obj(Some(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Obj(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Obj(None))
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Obj(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Obj(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Obj(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Obj(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Obj(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Obj(None))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A list that may also be `null` or of another type (then empty); elements that are not of the
/// element type are an error (a list of sessions that holds a number is not a callRecord).
#[derive(Debug, Clone, PartialEq)]
pub struct List<T>(pub Vec<T>);

impl<T> Default for List<T> {
    fn default() -> Self {
        List(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(List(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_from_graph() {
        assert_eq!(parse_duration_ms("PT0.016S"), Some(16.0));
        assert_eq!(parse_duration_ms("PT1S"), Some(1000.0));
        assert_eq!(parse_duration_ms("PT0S"), Some(0.0));
        assert_eq!(parse_duration_ms("PT1M2.5S"), Some(62_500.0));
        assert_eq!(parse_duration_ms("P1DT2H"), Some(93_600_000.0));
        assert_eq!(parse_duration_ms("-PT1S"), Some(-1000.0));
        assert!((parse_duration_ms("PT0.0000001S").unwrap() - 0.0001).abs() < 1e-12);
        for bad in ["", "P", "PT", "0.016", "PT1", "PTS", "P1Y", "PT1S1M", "PT1.2.3S", "NaN"] {
            assert_eq!(parse_duration_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn timestamps_of_every_precision() {
        for (input, want) in [
            ("2026-11-20T08:00:00Z", "2026-11-20T08:00:00Z"),
            ("2026-11-20T08:00:00.1Z", "2026-11-20T08:00:00.1Z"),
            ("2026-11-20T08:00:00.1234567Z", "2026-11-20T08:00:00.1234567Z"),
            ("2026-11-30T08:00:00.50Z", "2026-11-30T08:00:00.5Z"),
            ("2026-11-20T09:30:00+01:30", "2026-11-20T08:00:00Z"),
            ("2026-11-20T08:00:00.123456789Z", "2026-11-20T08:00:00.1234567Z"),
            ("2026-11-20T08:00:00", "2026-11-20T08:00:00Z"),
        ] {
            let got = normalize_timestamp(&Cow::Borrowed(input));
            assert_eq!(got.as_deref(), Some(want), "{input}");
        }
        for bad in ["", "yesterday", "2026-02-30T00:00:00Z", "2026-11-20T25:00:00Z"] {
            assert_eq!(normalize_timestamp(&Cow::Borrowed(bad)), None, "{bad}");
        }
    }

    #[test]
    fn lenient_scalars() {
        let n: Vec<Num> = serde_json::from_str(r#"[1.5, "2.5", "NaN", "Infinity", null, "x", true, {"a":1}]"#).unwrap();
        assert_eq!(
            n.iter().map(|n| n.0).collect::<Vec<_>>(),
            [Some(1.5), Some(2.5), None, None, None, None, None, None]
        );
        let t: Vec<Text> = serde_json::from_str(r#"["a", 3, null, [1], false]"#).unwrap();
        assert_eq!(
            t.iter().map(|t| t.0.as_deref()).collect::<Vec<_>>(),
            [Some("a"), Some("3"), None, None, Some("false")]
        );
    }
}
