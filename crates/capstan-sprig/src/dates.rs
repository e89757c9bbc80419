//! Go's `time.Time` for templates (`now`, `toDate`...) and Sprig's date functions: Go's
//! layout-based `Format` and `Parse`, locations (UTC, Local, IANA zones through chrono-tz,
//! fixed offsets), `Duration.String`, `time.ParseDuration`.

use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use capstan_gotemplate::{FuncMap, Object, Value};
use chrono::{Offset as _, TimeZone as _};
use chrono_tz::OffsetName as _;

/// A time zone.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Loc {
    Utc,
    /// Go's `time.Local` (from `TZ` or `/etc/localtime`; UTC when unknown).
    Local,
    /// `time.FixedZone(name, offset)`.
    Fixed(String, i32),
    Tz(chrono_tz::Tz),
}

fn local_tz() -> Option<chrono_tz::Tz> {
    static TZ: OnceLock<Option<chrono_tz::Tz>> = OnceLock::new();
    *TZ.get_or_init(|| {
        let name = match std::env::var("TZ") {
            Ok(v) if !v.is_empty() => v.trim_start_matches(':').to_string(),
            Ok(_) => return None,
            Err(_) => {
                let link = std::fs::read_link("/etc/localtime").ok()?;
                let s = link.to_string_lossy().to_string();
                let i = s.find("zoneinfo/")?;
                s[i + 9..].to_string()
            }
        };
        name.parse::<chrono_tz::Tz>().ok()
    })
}

impl Loc {
    /// The zone abbreviation and offset (seconds east of UTC) at `secs`.
    fn zone(&self, secs: i64) -> (String, i32) {
        let tz = match self {
            Loc::Utc => return ("UTC".into(), 0),
            Loc::Fixed(n, o) => return (n.clone(), *o),
            Loc::Local => match local_tz() {
                Some(tz) => tz,
                None => return ("UTC".into(), 0),
            },
            Loc::Tz(tz) => *tz,
        };
        let Some(dt) = chrono::DateTime::from_timestamp(secs, 0) else {
            return ("UTC".into(), 0);
        };
        let off = tz.offset_from_utc_datetime(&dt.naive_utc());
        let abbr = off.abbreviation().unwrap_or("").to_string();
        (abbr, off.fix().local_minus_utc())
    }

    /// `time.LoadLocation`.
    fn load(name: &str) -> Option<Loc> {
        match name {
            "" | "UTC" => Some(Loc::Utc),
            "Local" => Some(Loc::Local),
            n => n.parse::<chrono_tz::Tz>().ok().map(Loc::Tz),
        }
    }
}

/// A Go `time.Time`.
#[derive(Clone, Debug)]
pub(crate) struct GoTime {
    pub secs: i64,
    pub nanos: u32,
    pub loc: Loc,
    /// Monotonic reading (seconds since the process's first clock read), as `time.Now()`
    /// carries and `String()` prints (`m=+0.000012345`).
    pub mono: Option<f64>,
}

fn mono_start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

impl GoTime {
    pub(crate) fn now() -> GoTime {
        let start = mono_start();
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        GoTime {
            secs: d.as_secs() as i64,
            nanos: d.subsec_nanos(),
            loc: Loc::Local,
            mono: Some(start.elapsed().as_secs_f64()),
        }
    }
    fn unix(secs: i64) -> GoTime {
        GoTime {
            secs,
            nanos: 0,
            loc: Loc::Local,
            mono: None,
        }
    }
    /// The zero `time.Time` (0001-01-01 00:00:00 UTC).
    fn zero() -> GoTime {
        GoTime {
            secs: -62_135_596_800,
            nanos: 0,
            loc: Loc::Utc,
            mono: None,
        }
    }
    fn in_loc(&self, loc: Loc) -> GoTime {
        GoTime {
            loc,
            mono: None,
            ..self.clone()
        }
    }
    fn add(&self, d: i128) -> GoTime {
        let total = self.secs as i128 * 1_000_000_000 + self.nanos as i128 + d;
        GoTime {
            secs: total.div_euclid(1_000_000_000) as i64,
            nanos: total.rem_euclid(1_000_000_000) as u32,
            loc: self.loc.clone(),
            mono: self.mono.map(|m| m + d as f64 / 1e9),
        }
    }
    fn unix_nanos(&self) -> i128 {
        self.secs as i128 * 1_000_000_000 + self.nanos as i128
    }

    /// `t.Format(layout)`.
    pub(crate) fn format(&self, layout: &str) -> String {
        let (abbr, off) = self.loc.zone(self.secs);
        let local = self.secs + off as i64;
        let days = local.div_euclid(86400);
        let sod = local.rem_euclid(86400);
        let (y, mo, d) = civil(days);
        let (h, mi, s) = (sod / 3600, (sod / 60) % 60, sod % 60);
        let wd = (days + 4).rem_euclid(7) as usize;
        let yday = days - days_from_civil(y, 1, 1) + 1;
        let mut out = String::new();
        let mut rest = layout;
        while !rest.is_empty() {
            let (prefix, std, suffix) = next_std_chunk(rest);
            out.push_str(prefix);
            let Some(std) = std else { break };
            rest = suffix;
            use Std::*;
            match std {
                Year => out.push_str(&format!("{:02}", y.rem_euclid(100))),
                LongYear => out.push_str(&format!("{y:04}")),
                Month => out.push_str(&MONTHS[mo as usize - 1][..3]),
                LongMonth => out.push_str(MONTHS[mo as usize - 1]),
                NumMonth => out.push_str(&mo.to_string()),
                ZeroMonth => out.push_str(&format!("{mo:02}")),
                WeekDay => out.push_str(&DAYS[wd][..3]),
                LongWeekDay => out.push_str(DAYS[wd]),
                Day => out.push_str(&d.to_string()),
                UnderDay => out.push_str(&format!("{d:>2}")),
                ZeroDay => out.push_str(&format!("{d:02}")),
                UnderYearDay => out.push_str(&format!("{yday:>3}")),
                ZeroYearDay => out.push_str(&format!("{yday:03}")),
                Hour => out.push_str(&format!("{h:02}")),
                Hour12 => out.push_str(&(if h % 12 == 0 { 12 } else { h % 12 }).to_string()),
                ZeroHour12 => {
                    out.push_str(&format!("{:02}", if h % 12 == 0 { 12 } else { h % 12 }))
                }
                Minute => out.push_str(&mi.to_string()),
                ZeroMinute => out.push_str(&format!("{mi:02}")),
                Second => out.push_str(&s.to_string()),
                ZeroSecond => out.push_str(&format!("{s:02}")),
                PM => out.push_str(if h >= 12 { "PM" } else { "AM" }),
                Pm => out.push_str(if h >= 12 { "pm" } else { "am" }),
                Tz => {
                    if !abbr.is_empty() {
                        out.push_str(&abbr);
                    } else {
                        let z = off / 60;
                        out.push(if z < 0 { '-' } else { '+' });
                        out.push_str(&format!("{:02}{:02}", z.abs() / 60, z.abs() % 60));
                    }
                }
                Iso(z_for_utc, colon, secs, hours_only) => {
                    if z_for_utc && off == 0 {
                        out.push('Z');
                    } else {
                        let a = off.abs();
                        out.push(if off < 0 { '-' } else { '+' });
                        out.push_str(&format!("{:02}", a / 3600));
                        if !hours_only {
                            if colon {
                                out.push(':');
                            }
                            out.push_str(&format!("{:02}", (a / 60) % 60));
                        }
                        if secs {
                            if colon {
                                out.push(':');
                            }
                            out.push_str(&format!("{:02}", a % 60));
                        }
                    }
                }
                Frac(sep, n, trim) => {
                    let ns = format!("{:09}", self.nanos);
                    let digits = &ns[..n.min(9)];
                    if trim {
                        let t = digits.trim_end_matches('0');
                        if !t.is_empty() {
                            out.push(sep);
                            out.push_str(t);
                        }
                    } else {
                        out.push(sep);
                        out.push_str(digits);
                    }
                }
            }
        }
        out
    }

    /// `t.String()`.
    pub(crate) fn go_string(&self) -> String {
        let mut s = self.format("2006-01-02 15:04:05.999999999 -0700 MST");
        if let Some(m) = self.mono {
            s.push_str(&format!(
                " m={}{:.9}",
                if m < 0.0 { "-" } else { "+" },
                m.abs()
            ));
        }
        s
    }

    pub(crate) fn into_value(self) -> Value {
        Value::Object(Arc::new(self))
    }
}

impl Object for GoTime {
    fn type_name(&self) -> String {
        "time.Time".into()
    }
    fn kind(&self) -> &'static str {
        "struct"
    }
    fn field(&self, _name: &str) -> Option<Value> {
        None
    }
    fn has_method(&self, name: &str) -> bool {
        matches!(
            name,
            "Unix"
                | "UnixNano"
                | "UnixMilli"
                | "UTC"
                | "Local"
                | "Format"
                | "String"
                | "Year"
                | "Month"
                | "Day"
                | "Hour"
                | "Minute"
                | "Second"
                | "Nanosecond"
                | "YearDay"
                | "Weekday"
                | "IsZero"
                | "Add"
                | "AddDate"
                | "Before"
                | "After"
                | "Equal"
                | "Sub"
                | "Round"
                | "Truncate"
        )
    }
    fn call_method(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        let (_, off) = self.loc.zone(self.secs);
        let local = self.secs + off as i64;
        let (y, mo, d) = civil(local.div_euclid(86400));
        let sod = local.rem_euclid(86400);
        let other = |i: usize| -> Result<GoTime, String> {
            match args.get(i) {
                Some(v @ Value::Object(_)) if time_arg(v).is_some() => {
                    Ok(time_arg(v).unwrap_or_else(GoTime::zero))
                }
                Some(v) => Err(format!(
                    "wrong type for value; expected time.Time; got {}",
                    v.type_name()
                )),
                None => Err("wrong number of args".into()),
            }
        };
        let int = |i: usize| -> Result<i64, String> {
            match args.get(i) {
                Some(Value::Int(n)) | Some(Value::Int64(n)) => Ok(*n),
                Some(v) => Err(format!(
                    "wrong type for value; expected int; got {}",
                    v.type_name()
                )),
                None => Err("wrong number of args".into()),
            }
        };
        Some(match name {
            "Unix" => Ok(Value::Int64(self.secs)),
            "UnixNano" => Ok(Value::Int64(self.unix_nanos() as i64)),
            "UnixMilli" => Ok(Value::Int64((self.unix_nanos() / 1_000_000) as i64)),
            "UTC" => Ok(self.in_loc(Loc::Utc).into_value()),
            "Local" => Ok(self.in_loc(Loc::Local).into_value()),
            "Format" => match args.first() {
                Some(Value::String(l)) => Ok(Value::from(self.format(l))),
                Some(v) => Err(format!(
                    "wrong type for value; expected string; got {}",
                    v.type_name()
                )),
                None => Err("wrong number of args for Format: want 1 got 0".into()),
            },
            "String" => Ok(Value::from(self.go_string())),
            "Year" => Ok(Value::Int(y)),
            "Month" => Ok(Value::Int(mo as i64)),
            "Day" => Ok(Value::Int(d as i64)),
            "Hour" => Ok(Value::Int(sod / 3600)),
            "Minute" => Ok(Value::Int((sod / 60) % 60)),
            "Second" => Ok(Value::Int(sod % 60)),
            "Nanosecond" => Ok(Value::Int(self.nanos as i64)),
            "YearDay" => Ok(Value::Int(
                local.div_euclid(86400) - days_from_civil(y, 1, 1) + 1,
            )),
            "Weekday" => Ok(Value::Int((local.div_euclid(86400) + 4).rem_euclid(7))),
            "IsZero" => Ok(Value::Bool(self.secs == -62_135_596_800 && self.nanos == 0)),
            "Add" => int(0).map(|n| self.add(n as i128).into_value()),
            "AddDate" => (|| {
                let (dy, dm, dd) = (int(0)?, int(1)?, int(2)?);
                let m0 = mo as i64 - 1 + dm;
                let ny = y + dy + m0.div_euclid(12);
                let nm = m0.rem_euclid(12) + 1;
                let days = days_from_civil(ny, nm as u32, 1) + d as i64 - 1 + dd;
                let secs = days * 86400 + sod - off as i64;
                Ok(GoTime {
                    secs,
                    mono: None,
                    ..self.clone()
                }
                .into_value())
            })(),
            "Before" => other(0).map(|o| Value::Bool(self.unix_nanos() < o.unix_nanos())),
            "After" => other(0).map(|o| Value::Bool(self.unix_nanos() > o.unix_nanos())),
            "Equal" => other(0).map(|o| Value::Bool(self.unix_nanos() == o.unix_nanos())),
            "Sub" => other(0).map(|o| {
                Value::Int64(
                    (self.unix_nanos() - o.unix_nanos()).clamp(i64::MIN as i128, i64::MAX as i128)
                        as i64,
                )
            }),
            "Round" | "Truncate" => int(0).map(|n| {
                let t = self.unix_nanos();
                let n = n as i128;
                let r = if n <= 0 {
                    t
                } else if name == "Round" {
                    let m = t.rem_euclid(n);
                    if m * 2 >= n {
                        t - m + n
                    } else {
                        t - m
                    }
                } else {
                    t - t.rem_euclid(n)
                };
                GoTime {
                    secs: r.div_euclid(1_000_000_000) as i64,
                    nanos: r.rem_euclid(1_000_000_000) as u32,
                    loc: self.loc.clone(),
                    mono: None,
                }
                .into_value()
            }),
            _ => return None,
        })
    }
    fn to_data(&self) -> Value {
        // MarshalJSON: RFC 3339 with nanoseconds
        Value::from(self.format("2006-01-02T15:04:05.999999999Z07:00"))
    }
    fn go_string(&self) -> String {
        GoTime::go_string(self)
    }
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

pub(crate) fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u64;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe as i64 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = (y - era * 400) as u64;
    let mp = if m > 2 { m - 3 } else { m + 9 } as u64;
    let doy = (153 * mp + 2) / 5 + d as u64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe as i64 - 719_468
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Std {
    Year,
    LongYear,
    Month,
    LongMonth,
    NumMonth,
    ZeroMonth,
    WeekDay,
    LongWeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    PM,
    Pm,
    Tz,
    /// (`Z` prints `Z` for UTC, colons, seconds, hours only)
    Iso(bool, bool, bool, bool),
    /// (separator, digits, trim trailing zeros)
    Frac(char, usize, bool),
}

fn starts_lower(s: &str) -> bool {
    s.as_bytes().first().is_some_and(|c| c.is_ascii_lowercase())
}

/// Go's `nextStdChunk`: (literal prefix, token, rest after the token).
fn next_std_chunk(layout: &str) -> (&str, Option<Std>, &str) {
    let b = layout.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let at = &layout[i..];
        let tok: Option<(Std, usize)> = match b[i] {
            b'J' if at.starts_with("Jan") => {
                let after = at.get(3..).unwrap_or("");
                if at.starts_with("January") {
                    Some((Std::LongMonth, 7))
                } else if !starts_lower(after) {
                    Some((Std::Month, 3))
                } else {
                    None
                }
            }
            b'M' if at.len() >= 3 => {
                if let Some(after) = at.strip_prefix("Mon") {
                    if at.starts_with("Monday") {
                        Some((Std::LongWeekDay, 6))
                    } else if !starts_lower(after) {
                        Some((Std::WeekDay, 3))
                    } else {
                        None
                    }
                } else if at.starts_with("MST") {
                    Some((Std::Tz, 3))
                } else {
                    None
                }
            }
            b'0' => match b.get(i + 1) {
                Some(c @ b'1'..=b'6') => Some((
                    [
                        Std::ZeroMonth,
                        Std::ZeroDay,
                        Std::ZeroHour12,
                        Std::ZeroMinute,
                        Std::ZeroSecond,
                        Std::Year,
                    ][(c - b'1') as usize],
                    2,
                )),
                Some(b'0') if b.get(i + 2) == Some(&b'2') => Some((Std::ZeroYearDay, 3)),
                _ => None,
            },
            b'1' => {
                if b.get(i + 1) == Some(&b'5') {
                    Some((Std::Hour, 2))
                } else {
                    Some((Std::NumMonth, 1))
                }
            }
            b'2' => {
                if at.starts_with("2006") {
                    Some((Std::LongYear, 4))
                } else {
                    Some((Std::Day, 1))
                }
            }
            b'_' => {
                if b.get(i + 1) == Some(&b'2') {
                    if at[1..].starts_with("2006") {
                        return (&layout[..i + 1], Some(Std::LongYear), &layout[i + 5..]);
                    }
                    Some((Std::UnderDay, 2))
                } else if at.starts_with("__2") {
                    Some((Std::UnderYearDay, 3))
                } else {
                    None
                }
            }
            b'3' => Some((Std::Hour12, 1)),
            b'4' => Some((Std::Minute, 1)),
            b'5' => Some((Std::Second, 1)),
            b'P' if b.get(i + 1) == Some(&b'M') => Some((Std::PM, 2)),
            b'p' if b.get(i + 1) == Some(&b'm') => Some((Std::Pm, 2)),
            b'-' | b'Z' => {
                let z = b[i] == b'Z';
                let forms: [(&str, bool, bool, bool); 5] = [
                    ("070000", false, true, false),
                    ("07:00:00", true, true, false),
                    ("0700", false, false, false),
                    ("07:00", true, false, false),
                    ("07", false, false, true),
                ];
                forms.iter().find(|(f, ..)| at[1..].starts_with(f)).map(
                    |(f, colon, secs, hours)| (Std::Iso(z, *colon, *secs, *hours), 1 + f.len()),
                )
            }
            c @ (b'.' | b',') => match b.get(i + 1) {
                Some(&d @ (b'0' | b'9')) => {
                    let mut j = i + 1;
                    while j < b.len() && b[j] == d {
                        j += 1;
                    }
                    if j < b.len() && b[j].is_ascii_digit() {
                        None
                    } else {
                        Some((Std::Frac(c as char, j - i - 1, d == b'9'), j - i))
                    }
                }
                _ => None,
            },
            _ => None,
        };
        if let Some((std, n)) = tok {
            return (&layout[..i], Some(std), &layout[i + n..]);
        }
        i += layout[i..].chars().next().map_or(1, |c| c.len_utf8());
    }
    (layout, None, "")
}

fn go_quote(s: &str) -> String {
    capstan_gotemplate::fmt::quote(s)
}

/// Go's `time.ParseInLocation(layout, value, time.Local)`.
pub(crate) fn parse(layout: &str, value: &str) -> Result<GoTime, String> {
    let (alayout, avalue) = (layout, value);
    let err = |elem: &str, val: &str, msg: &str| {
        if msg.is_empty() {
            format!(
                "parsing time {} as {}: cannot parse {} as {}",
                go_quote(avalue),
                go_quote(alayout),
                go_quote(val),
                go_quote(elem)
            )
        } else {
            format!("parsing time {}{msg}", go_quote(avalue))
        }
    };
    let mut layout = layout;
    let mut value = value;
    let (mut year, mut month, mut day) = (1i64, 1u32, 1u32);
    let (mut hour, mut min, mut sec, mut nsec) = (0i64, 0i64, 0i64, 0u32);
    let mut pm_set: Option<bool> = None;
    let mut z_offset: Option<i32> = None;
    let mut zone_name: Option<String> = None;
    let mut yday: Option<i64> = None;

    fn getnum(v: &str, fixed: bool) -> Option<(i64, &str)> {
        let b = v.as_bytes();
        if b.is_empty() || !b[0].is_ascii_digit() {
            return None;
        }
        if b.len() < 2 || !b[1].is_ascii_digit() {
            if fixed {
                return None;
            }
            return Some(((b[0] - b'0') as i64, &v[1..]));
        }
        Some((((b[0] - b'0') * 10 + (b[1] - b'0')) as i64, &v[2..]))
    }
    fn getdigits(v: &str, n: usize) -> Option<(i64, &str)> {
        if v.len() < n || !v.as_bytes()[..n].iter().all(|c| c.is_ascii_digit()) {
            return None;
        }
        Some((v[..n].parse().ok()?, &v[n..]))
    }
    fn lookup<'a>(names: &[&str], v: &'a str, short: bool) -> Option<(usize, &'a str)> {
        for (i, n) in names.iter().enumerate() {
            let n = if short { &n[..3] } else { n };
            if v.len() >= n.len() && v[..n.len()].eq_ignore_ascii_case(n) {
                return Some((i, &v[n.len()..]));
            }
        }
        None
    }

    loop {
        let (prefix, std, suffix) = next_std_chunk(layout);
        let std_str = &layout[prefix.len()..layout.len() - suffix.len()];
        // literal prefix (Go skips leading spaces on both sides)
        let mut p = prefix;
        let mut v = value;
        while !p.is_empty() {
            if p.starts_with(' ') {
                if !p.is_empty() && !v.starts_with(' ') && !prefix.trim().is_empty() {
                    return Err(err(prefix, value, ""));
                }
                p = p.trim_start_matches(' ');
                v = v.trim_start_matches(' ');
                continue;
            }
            let c = p.chars().next().unwrap();
            if !v.starts_with(c) {
                return Err(err(prefix, value, ""));
            }
            p = &p[c.len_utf8()..];
            v = &v[c.len_utf8()..];
        }
        value = v;
        let Some(std) = std else {
            if !value.is_empty() {
                return Err(err(
                    "",
                    value,
                    &format!(": extra text: {}", go_quote(value)),
                ));
            }
            break;
        };
        layout = suffix;
        let hold = value;
        let bad = || err(std_str, hold, "");
        use Std::*;
        match std {
            Year => {
                let (n, r) = getdigits(value, 2).ok_or_else(bad)?;
                year = if n >= 69 { 1900 + n } else { 2000 + n };
                value = r;
            }
            LongYear => {
                let (n, r) = getdigits(value, 4).ok_or_else(bad)?;
                year = n;
                value = r;
            }
            Month | LongMonth => {
                let (i, r) = lookup(&MONTHS, value, std == Month).ok_or_else(bad)?;
                month = i as u32 + 1;
                value = r;
            }
            NumMonth | ZeroMonth => {
                let (n, r) = getnum(value, std == ZeroMonth).ok_or_else(bad)?;
                if !(1..=12).contains(&n) {
                    return Err(err("", "", ": month out of range"));
                }
                month = n as u32;
                value = r;
            }
            WeekDay | LongWeekDay => {
                let (_, r) = lookup(&DAYS, value, std == WeekDay).ok_or_else(bad)?;
                value = r;
            }
            Day | UnderDay | ZeroDay => {
                let mut v = value;
                if std == UnderDay && v.starts_with(' ') {
                    v = &v[1..];
                }
                let (n, r) = getnum(v, std == ZeroDay).ok_or_else(bad)?;
                day = n as u32;
                value = r;
            }
            UnderYearDay | ZeroYearDay => {
                let mut v = value;
                if std == UnderYearDay {
                    v = v.trim_start_matches(' ');
                }
                let n = v.bytes().take(3).take_while(|c| c.is_ascii_digit()).count();
                if n == 0 || (std == ZeroYearDay && n < 3) {
                    return Err(bad());
                }
                yday = Some(v[..n].parse().map_err(|_| bad())?);
                value = &v[n..];
            }
            Hour => {
                let (n, r) = getnum(value, false).ok_or_else(bad)?;
                if !(0..24).contains(&n) {
                    return Err(err("", "", ": hour out of range"));
                }
                hour = n;
                value = r;
            }
            Hour12 | ZeroHour12 => {
                let (n, r) = getnum(value, std == ZeroHour12).ok_or_else(bad)?;
                if !(0..=12).contains(&n) {
                    return Err(err("", "", ": hour out of range"));
                }
                hour = n;
                value = r;
            }
            Minute | ZeroMinute => {
                let (n, r) = getnum(value, std == ZeroMinute).ok_or_else(bad)?;
                if !(0..60).contains(&n) {
                    return Err(err("", "", ": minute out of range"));
                }
                min = n;
                value = r;
            }
            Second | ZeroSecond => {
                let (n, r) = getnum(value, std == ZeroSecond).ok_or_else(bad)?;
                if !(0..60).contains(&n) {
                    return Err(err("", "", ": second out of range"));
                }
                sec = n;
                value = r;
                // fractional seconds in the value without a layout element
                let (_, next, _) = next_std_chunk(layout);
                if value.len() >= 2
                    && (value.starts_with('.') || value.starts_with(','))
                    && value.as_bytes()[1].is_ascii_digit()
                    && !matches!(next, Some(Frac(..)))
                    && !layout.starts_with(['.', ','])
                {
                    let n = 1 + value[1..]
                        .bytes()
                        .take_while(|c| c.is_ascii_digit())
                        .count();
                    let digits = &value[1..n];
                    nsec = frac_nanos(digits);
                    value = &value[n..];
                }
            }
            PM | Pm => {
                if value.len() < 2 {
                    return Err(bad());
                }
                match &value[..2] {
                    "PM" | "pm" if (std == PM) == value.starts_with('P') => pm_set = Some(true),
                    "AM" | "am" if (std == PM) == value.starts_with('A') => pm_set = Some(false),
                    _ => return Err(bad()),
                }
                value = &value[2..];
            }
            Iso(z, colon, secs, hours_only) => {
                if z && value.starts_with('Z') {
                    value = &value[1..];
                    z_offset = Some(0);
                    zone_name = Some("UTC".into());
                    continue;
                }
                let b = value.as_bytes();
                let sign = match b.first() {
                    Some(b'+') => 1,
                    Some(b'-') => -1,
                    _ => return Err(bad()),
                };
                let mut v = &value[1..];
                let (hh, r) = getdigits(v, 2).ok_or_else(bad)?;
                v = r;
                let mut mm = 0;
                let mut ss = 0;
                if !hours_only {
                    if colon {
                        v = v.strip_prefix(':').ok_or_else(bad)?;
                    }
                    let (m, r) = getdigits(v, 2).ok_or_else(bad)?;
                    mm = m;
                    v = r;
                }
                if secs {
                    if colon {
                        v = v.strip_prefix(':').ok_or_else(bad)?;
                    }
                    let (s, r) = getdigits(v, 2).ok_or_else(bad)?;
                    ss = s;
                    v = r;
                }
                z_offset = Some(sign * (hh * 3600 + mm * 60 + ss) as i32);
                value = v;
            }
            Tz => {
                if value.starts_with("UTC") {
                    zone_name = Some("UTC".into());
                    value = &value[3..];
                    continue;
                }
                let n = value.bytes().take_while(|c| c.is_ascii_uppercase()).count();
                let n = if value[n..].starts_with('T') {
                    n + 1
                } else {
                    n
                };
                if n < 3 {
                    if value.starts_with("ChST") || value.starts_with("MeST") {
                        zone_name = Some(value[..4].into());
                        value = &value[4..];
                        continue;
                    }
                    return Err(bad());
                }
                let mut end = n;
                if &value[..3] == "GMT" {
                    end = 3;
                    let rest = &value[3..];
                    if rest.starts_with(['+', '-']) {
                        let d = rest[1..].bytes().take_while(|c| c.is_ascii_digit()).count();
                        end = 4 + d;
                    }
                }
                zone_name = Some(value[..end].to_string());
                value = &value[end..];
            }
            Frac(_, n, trim) => {
                if trim {
                    if !(value.starts_with('.') || value.starts_with(',')) {
                        continue;
                    }
                    let d = value[1..]
                        .bytes()
                        .take_while(|c| c.is_ascii_digit())
                        .count();
                    nsec = frac_nanos(&value[1..1 + d]);
                    value = &value[1 + d..];
                } else {
                    if value.len() < n + 1
                        || !(value.starts_with('.') || value.starts_with(','))
                        || !value.as_bytes()[1..=n].iter().all(|c| c.is_ascii_digit())
                    {
                        return Err(bad());
                    }
                    nsec = frac_nanos(&value[1..=n]);
                    value = &value[n + 1..];
                }
            }
        }
    }
    if let Some(pm) = pm_set {
        if pm && hour < 12 {
            hour += 12;
        } else if !pm && hour == 12 {
            hour = 0;
        }
    }
    if let Some(yd) = yday {
        let leap = days_in_month(year, 2) == 29;
        if yd < 1 || yd > if leap { 366 } else { 365 } {
            return Err(err("", "", ": day-of-year out of range"));
        }
        let dd = days_from_civil(year, 1, 1) + yd - 1;
        let (_, m, d) = civil(dd);
        month = m;
        day = d;
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(err("", "", ": day out of range"));
    }
    let wall = days_from_civil(year, month, day) * 86400 + hour * 3600 + min * 60 + sec;
    if let Some(off) = z_offset {
        let secs = wall - off as i64;
        let t = GoTime {
            secs,
            nanos: nsec,
            loc: Loc::Utc,
            mono: None,
        };
        if zone_name.as_deref() == Some("UTC") && off == 0 {
            return Ok(t);
        }
        // Go keeps Local when its offset at that instant matches
        let (_, loff) = Loc::Local.zone(secs);
        let loc = if loff == off {
            Loc::Local
        } else {
            Loc::Fixed(String::new(), off)
        };
        return Ok(GoTime { loc, ..t });
    }
    if let Some(name) = zone_name {
        let (lname, loff) = Loc::Local.zone(wall);
        if lname == name {
            return Ok(GoTime {
                secs: wall - loff as i64,
                nanos: nsec,
                loc: Loc::Local,
                mono: None,
            });
        }
        let mut off = 0;
        if name.len() > 3 && name.starts_with("GMT") {
            off = name[3..].parse::<i32>().unwrap_or(0) * 3600;
        }
        if name == "UTC" {
            return Ok(GoTime {
                secs: wall,
                nanos: nsec,
                loc: Loc::Utc,
                mono: None,
            });
        }
        return Ok(GoTime {
            secs: wall - off as i64,
            nanos: nsec,
            loc: Loc::Fixed(name, off),
            mono: None,
        });
    }
    // local wall time: find the instant whose local offset gives this wall clock
    let (_, off1) = Loc::Local.zone(wall);
    let (_, off2) = Loc::Local.zone(wall - off1 as i64);
    Ok(GoTime {
        secs: wall - off2 as i64,
        nanos: nsec,
        loc: Loc::Local,
        mono: None,
    })
}

fn frac_nanos(digits: &str) -> u32 {
    let mut s: String = digits.chars().take(9).collect();
    while s.len() < 9 {
        s.push('0');
    }
    s.parse().unwrap_or(0)
}

/// Go's `time.Duration.String()`.
pub(crate) fn duration_string(d: i64) -> String {
    if d == 0 {
        return "0s".into();
    }
    let neg = d < 0;
    let u = d.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        let (unit, div) = if u < 1_000 {
            ("ns", 1u64)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&frac_str(u, div));
        out.push_str(unit);
    } else {
        let secs = u / 1_000_000_000;
        let h = secs / 3600;
        let m = (secs / 60) % 60;
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if h > 0 || m > 0 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&frac_str(u % 60_000_000_000, 1_000_000_000));
        out.push('s');
    }
    if neg {
        out.insert(0, '-');
    }
    out
}

fn frac_str(v: u64, div: u64) -> String {
    let int = v / div;
    let frac = v % div;
    if frac == 0 {
        return int.to_string();
    }
    let width = div.to_string().len() - 1;
    let f = format!("{frac:0width$}");
    format!("{int}.{}", f.trim_end_matches('0'))
}

/// Go's `time.ParseDuration`.
pub(crate) fn parse_duration(s: &str) -> Result<i64, String> {
    let orig = s;
    let bad = || format!("time: invalid duration {}", go_quote(orig));
    let mut s = s;
    let neg = if let Some(r) = s.strip_prefix('-') {
        s = r;
        true
    } else {
        if let Some(r) = s.strip_prefix('+') {
            s = r;
        }
        false
    };
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    let mut total_i: i128 = 0;
    while !s.is_empty() {
        let n = s.bytes().take_while(|c| c.is_ascii_digit()).count();
        let int_part = &s[..n];
        s = &s[n..];
        let mut frac_part = "";
        if let Some(r) = s.strip_prefix('.') {
            let f = r.bytes().take_while(|c| c.is_ascii_digit()).count();
            frac_part = &r[..f];
            s = &r[f..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(bad());
        }
        let u = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        let unit = &s[..u];
        s = &s[u..];
        let mult: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("time: missing unit in duration {}", go_quote(orig))),
            u => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    go_quote(u),
                    go_quote(orig)
                ))
            }
        };
        let iv: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| bad())?
        };
        total_i += iv * mult;
        if !frac_part.is_empty() {
            let f: f64 = format!("0.{frac_part}").parse().unwrap_or(0.0);
            total += f * mult as f64;
        }
        if total_i > i64::MAX as i128 {
            return Err(bad());
        }
    }
    let v = total_i + total as i128;
    Ok(if neg { -(v as i64) } else { v as i64 })
}

pub(crate) fn time_arg(v: &Value) -> Option<GoTime> {
    match v {
        Value::Object(o) => o.as_any()?.downcast_ref::<GoTime>().cloned(),
        _ => None,
    }
}

fn tv(t: GoTime) -> Value {
    t.into_value()
}

/// Sprig's `dateInZone` date argument: time.Time, or int/int64/int32 seconds, else now.
fn date_arg(v: &Value) -> GoTime {
    match v {
        Value::Int(i) | Value::Int64(i) => GoTime::unix(*i),
        v => time_arg(v).unwrap_or_else(GoTime::now),
    }
}

fn want_string(a: &[Value], i: usize) -> Result<String, String> {
    match &a[i] {
        Value::String(s) => Ok(s.to_string()),
        _ => Err(capstan_gotemplate::arg_type_error(i, "string")),
    }
}

fn want_time(a: &[Value], i: usize) -> Result<GoTime, String> {
    time_arg(&a[i]).ok_or_else(|| capstan_gotemplate::arg_type_error(i, "time.Time"))
}

fn nargs(name: &str, a: &[Value], n: usize) -> Result<(), String> {
    if a.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            a.len()
        ));
    }
    Ok(())
}

fn date_in_zone(layout: &str, date: &Value, zone: &str) -> String {
    let t = date_arg(date);
    let loc = Loc::load(zone).unwrap_or(Loc::Utc);
    t.in_loc(loc).format(layout)
}

pub(crate) fn register(m: &mut FuncMap) {
    m.add("now", |_, a| {
        nargs("now", a, 0)?;
        Ok(tv(GoTime::now()))
    });
    for name in ["date", "date_in_zone_local"] {
        m.add(name, |_, a| {
            nargs("date", a, 2)?;
            Ok(Value::from(date_in_zone(
                &want_string(a, 0)?,
                &a[1],
                "Local",
            )))
        });
    }
    for name in ["dateInZone", "date_in_zone"] {
        m.add(name, |_, a| {
            nargs("dateInZone", a, 3)?;
            Ok(Value::from(date_in_zone(
                &want_string(a, 0)?,
                &a[1],
                &want_string(a, 2)?,
            )))
        });
    }
    m.add("htmlDate", |_, a| {
        nargs("htmlDate", a, 1)?;
        Ok(Value::from(date_in_zone("2006-01-02", &a[0], "Local")))
    });
    m.add("htmlDateInZone", |_, a| {
        nargs("htmlDateInZone", a, 2)?;
        Ok(Value::from(date_in_zone(
            "2006-01-02",
            &a[0],
            &want_string(a, 1)?,
        )))
    });
    m.add("unixEpoch", |_, a| {
        nargs("unixEpoch", a, 1)?;
        Ok(Value::from(want_time(a, 0)?.secs.to_string()))
    });
    for name in ["dateModify", "date_modify"] {
        m.add(name, |_, a| {
            nargs("dateModify", a, 2)?;
            let d = want_string(a, 0)?;
            let t = want_time(a, 1)?;
            Ok(tv(match parse_duration(&d) {
                Ok(d) => t.add(d as i128),
                Err(_) => t,
            }))
        });
    }
    for name in ["mustDateModify", "must_date_modify"] {
        m.add(name, |_, a| {
            nargs("mustDateModify", a, 2)?;
            let d = want_string(a, 0)?;
            let t = want_time(a, 1)?;
            Ok(tv(t.add(parse_duration(&d)? as i128)))
        });
    }
    m.add("toDate", |_, a| {
        nargs("toDate", a, 2)?;
        let (l, s) = (want_string(a, 0)?, want_string(a, 1)?);
        Ok(tv(parse(&l, &s).unwrap_or_else(|_| GoTime::zero())))
    });
    m.add("mustToDate", |_, a| {
        nargs("mustToDate", a, 2)?;
        let (l, s) = (want_string(a, 0)?, want_string(a, 1)?);
        parse(&l, &s).map(tv)
    });
    m.add("ago", |_, a| {
        nargs("ago", a, 1)?;
        let t = date_arg(&a[0]);
        let now = GoTime::now();
        let d = now.unix_nanos() - t.unix_nanos();
        // Round(time.Second): halves away from zero
        let s = 1_000_000_000i128;
        let r = d.rem_euclid(s);
        let mut q = d - r;
        if r * 2 >= s {
            q += s;
        }
        if d < 0 && r * 2 == s {
            q -= s;
        }
        Ok(Value::from(duration_string(q as i64)))
    });
    m.add("duration", |_, a| {
        nargs("duration", a, 1)?;
        let n: i64 = match &a[0] {
            Value::String(s) => s.parse().unwrap_or(0),
            Value::Int64(i) => *i,
            _ => 0,
        };
        Ok(Value::from(duration_string(n.wrapping_mul(1_000_000_000))))
    });
    m.add("durationRound", |_, a| {
        nargs("durationRound", a, 1)?;
        let d: i64 = match &a[0] {
            Value::String(s) => parse_duration(s).unwrap_or(0),
            Value::Int64(i) => *i,
            v => match time_arg(v) {
                Some(t) => (GoTime::now().unix_nanos() - t.unix_nanos()) as i64,
                None => 0,
            },
        };
        let u = d.unsigned_abs();
        let hour = 3_600_000_000_000u64;
        let (year, month, day) = (hour * 24 * 365, hour * 24 * 30, hour * 24);
        let (minute, second) = (60_000_000_000u64, 1_000_000_000u64);
        let out = if u > year {
            format!("{}y", u / year)
        } else if u > month {
            format!("{}mo", u / month)
        } else if u > day {
            format!("{}d", u / day)
        } else if u > hour {
            format!("{}h", u / hour)
        } else if u > minute {
            format!("{}m", u / minute)
        } else if u > second {
            format!("{}s", u / second)
        } else {
            "0s".to_string()
        };
        Ok(Value::from(out))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_string(3_725_000_000_000), "1h2m5s");
        assert_eq!(duration_string(1_500_000), "1.5ms");
        assert_eq!(duration_string(-90_000_000_000), "-1m30s");
        assert_eq!(duration_string(5_500_000_000), "5.5s");
        assert_eq!(parse_duration("1h30m").unwrap(), 5_400_000_000_000);
        assert_eq!(parse_duration("1.5h").unwrap(), 5_400_000_000_000);
        assert_eq!(parse_duration("-48h").unwrap(), -172_800_000_000_000);
        assert_eq!(
            parse_duration("bad").unwrap_err(),
            "time: invalid duration \"bad\""
        );
        assert_eq!(
            parse_duration("1").unwrap_err(),
            "time: missing unit in duration \"1\""
        );
    }

    #[test]
    fn format_and_parse() {
        let t = parse("2006-01-02 15:04:05", "2023-03-05 07:08:09").unwrap();
        assert_eq!(
            t.format("Mon Jan _2 15:04:05 2006"),
            "Sun Mar  5 07:08:09 2023"
        );
        assert_eq!(t.format("__2 002 3:04PM"), " 64 064 7:08AM");
        let u = parse(
            "2006-01-02T15:04:05Z07:00",
            "2021-12-31T23:59:58.123456789+05:30",
        )
        .unwrap();
        assert_eq!(u.go_string(), "2021-12-31 23:59:58.123456789 +0530 +0530");
        assert_eq!(u.format("05.9 .000"), "58.1 .123");
        assert_eq!(
            parse("2006-01-02", "nope").unwrap_err(),
            "parsing time \"nope\" as \"2006-01-02\": cannot parse \"nope\" as \"2006\""
        );
    }
}
