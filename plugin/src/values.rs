//! Graph's scalar oddities, read leniently: timestamps with 0–7 fraction digits, ISO 8601
//! durations, doubles that arrive as strings ("NaN"), values of an unexpected type.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A UTC instant with Graph's precision: seconds since the Unix epoch and 100 ns ticks.
///
/// Hand-written rather than taken from a date crate: only RFC 3339 reading and writing is needed,
/// and a general date library would be a tenth of the component's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub secs: i64,
    /// 100 ns ticks within the second (0..10_000_000).
    pub ticks: u32,
}

const TICKS_PER_SEC: i64 = 10_000_000;

/// Parse an ISO 8601 / RFC 3339 timestamp: `YYYY-MM-DDTHH:MM:SS`, any number of fraction digits
/// (kept to 7), then `Z`, an offset `±HH:MM`, or nothing (read as UTC, as some Graph answers are).
pub fn parse_timestamp(s: &str) -> Option<Instant> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let d = b.get(r)?;
        d.iter().all(u8::is_ascii_digit).then(|| d.iter().fold(0i64, |a, c| a * 10 + i64::from(c - b'0')))
    };
    let sep = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (y, mo, d, h, mi, sec) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let mut i = 19;
    let mut ticks = 0i64;
    if b.get(i) == Some(&b'.') {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        for k in 0..7 {
            let digit = if k < digits { i64::from(b[i + 1 + k] - b'0') } else { 0 };
            ticks = ticks * 10 + digit;
        }
        i += 1 + digits;
    }
    let offset = match b.get(i..) {
        Some([]) | Some([b'Z' | b'z']) => 0,
        Some([sign @ (b'+' | b'-'), ..]) if b.len() == i + 6 && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'+' { o } else { -o }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset;
    Some(Instant { secs, ticks: ticks as u32 })
}

/// `YYYY-MM-DDTHH:MM:SS[.fffffff]Z`: UTC, trailing zeros of the fraction dropped.
pub fn format_timestamp(t: Instant) -> String {
    let (days, rem) = (t.secs.div_euclid(86_400), t.secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let mut out = format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", rem / 3600, rem / 60 % 60, rem % 60);
    if t.ticks != 0 {
        let frac = format!("{:07}", t.ticks);
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
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
    let ticks = (e.secs - s.secs) * TICKS_PER_SEC + (i64::from(e.ticks) - i64::from(s.ticks));
    Some(ticks / 10_000)
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
                // serde_json's float writer: core's would add a second one to the component.
                Ok(Text(serde_json::Number::from_f64(v).map(|n| Cow::Owned(n.to_string()))))
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

/// `text` with each object's repeated keys folded to their last value (as `JSON.parse` does),
/// when a typed read refused it for a repeated field: `None` for any other error, or text that is
/// not JSON. Microsoft's own documented answers repeat keys (a segment's callee with
/// `@odata.type` twice, in "List sessions"), and a typed read refuses a known field seen twice.
pub fn fold_repeated_keys(text: &[u8], error: &serde_json::Error) -> Option<String> {
    if !error.to_string().starts_with("duplicate field") {
        return None;
    }
    serde_json::from_slice::<serde_json::Value>(text).ok().map(|v| v.to_string())
}

/// `serde_json::from_slice`, taking repeated keys as [`fold_repeated_keys`] does.
pub fn from_json<T: serde::de::DeserializeOwned>(text: &[u8]) -> serde_json::Result<T> {
    serde_json::from_slice(text).or_else(|e| match fold_repeated_keys(text, &e) {
        Some(folded) => serde_json::from_str(&folded),
        None => Err(e),
    })
}

/// Whether `s` is a GUID in its 8-4-4-4-12 hex form (as Graph writes tenant, user and call ids).
pub fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
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

/// A list of objects that may also be `null` or of another type (then empty). Every element must
/// be a JSON object: serde would otherwise read an array as a struct, field by field, and a
/// `sessions` list of arrays would become sessions of nulls instead of an error.
#[derive(Debug, Clone, PartialEq)]
pub struct Objects<T>(pub Vec<T>);

impl<T> Default for Objects<T> {
    fn default() -> Self {
        Objects(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Objects<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = Option::<Vec<Object<T>>>::deserialize(d)?.unwrap_or_default();
        Ok(Objects(items.into_iter().map(|o| o.0).collect()))
    }
}

/// One element of [`Objects`]: a JSON object and nothing else.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Object<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(m)).map(Object)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
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
    fn calendar_round_trips() {
        for (input, secs) in [
            ("1970-01-01T00:00:00Z", 0),
            ("2000-02-29T00:00:00Z", 951_782_400),
            ("2026-11-20T08:00:00Z", 1_795_161_600),
            ("1969-12-31T23:59:59Z", -1),
        ] {
            let t = parse_timestamp(input).unwrap();
            assert_eq!(t.secs, secs, "{input}");
            assert_eq!(format_timestamp(t), input);
        }
        assert_eq!(
            duration_between_ms(Some("2026-11-20T08:00:00.12Z"), Some("2026-11-20T08:01:02.12345Z")),
            Some(62_003)
        );
        assert_eq!(parse_timestamp("2025-02-29T00:00:00Z"), None);
        assert_eq!(parse_timestamp("2026-11-20T08:00:00.Z"), None);
        assert_eq!(parse_timestamp("2026-11-20T08:00:00+0100"), None);
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
