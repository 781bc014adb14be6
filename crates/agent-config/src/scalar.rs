//! Weakly typed scalars, the way Vault's decoder reads them: durations, booleans, file modes.

use std::time::Duration;

use crate::tree::{IntForm, Value};

const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// Largest magnitude Go's `time.Duration` (signed 64-bit nanoseconds) holds.
const GO_DURATION_LIMIT: u128 = 1 << 63;

/// Reads a duration from a number of seconds or a string, by Vault's `ParseDurationSecond` rule.
///
/// Integers and pure-integer strings are seconds, `<int>d` is days, any other string ending in
/// `s`, `m` or `h` is Go duration syntax, and the empty string is zero. Negative results are
/// refused because no setting of the agent can use them.
pub(crate) fn duration(value: &Value) -> Result<Duration, String> {
    let nanos = match value {
        Value::Int(seconds, _) => i128::from(*seconds) * NANOS_PER_SECOND,
        // Go converts the float to an integer before multiplying: 1.5 means 1 second.
        Value::Float(seconds) if seconds.is_finite() => (seconds.trunc() as i128)
            .checked_mul(NANOS_PER_SECOND)
            .ok_or_else(|| "duration is too large".to_owned())?,
        Value::Str(text) => duration_second(text)?,
        other => return Err(format!("expected a duration, found {}", other.kind())),
    };
    if nanos < 0 {
        return Err("a duration must not be negative".to_owned());
    }
    let nanos = u64::try_from(nanos).map_err(|_| "duration is too large".to_owned())?;
    Ok(Duration::from_nanos(nanos))
}

/// `ParseDurationSecond` on a string, in signed nanoseconds.
pub(crate) fn duration_second(text: &str) -> Result<i128, String> {
    if text.is_empty() {
        return Ok(0);
    }
    let invalid = || {
        format!("invalid duration {text:?}; use seconds (300) or units (\"5m\", \"1h30m\", \"2d\")")
    };

    if text.ends_with(['s', 'm', 'h']) {
        return go_duration(text).map_err(|_| invalid());
    }
    if let Some(days) = text.strip_suffix('d') {
        let days: i64 = go_atoi(days).ok_or_else(invalid)?;
        return checked_go_range(i128::from(days) * 86_400 * NANOS_PER_SECOND).ok_or_else(invalid);
    }
    let seconds: i64 = go_atoi(text).ok_or_else(invalid)?;
    checked_go_range(i128::from(seconds) * NANOS_PER_SECOND).ok_or_else(invalid)
}

/// Go's `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, in signed nanoseconds.
pub(crate) fn go_duration(text: &str) -> Result<i128, ()> {
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(());
    }

    let mut total: u128 = 0;
    while !rest.is_empty() {
        // The number: integer part, then an optional fraction.
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let whole: u128 = if int_len == 0 {
            0
        } else {
            rest[..int_len].parse().map_err(|_| ())?
        };
        if whole > GO_DURATION_LIMIT {
            return Err(());
        }
        rest = &rest[int_len..];

        let mut fraction: u128 = 0;
        let mut scale: u128 = 1;
        let mut fraction_len = 0;
        if let Some(after_dot) = rest.strip_prefix('.') {
            fraction_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            for digit in after_dot[..fraction_len].bytes() {
                // Digits beyond what the accumulator holds are dropped, as Go does.
                if fraction > (GO_DURATION_LIMIT - 1) / 10 {
                    break;
                }
                fraction = fraction * 10 + u128::from(digit - b'0');
                scale *= 10;
            }
            rest = &after_dot[fraction_len..];
        }
        if int_len == 0 && fraction_len == 0 {
            return Err(());
        }

        // The unit: everything up to the next digit or dot.
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit: u128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(()),
        };
        rest = &rest[unit_len..];

        let mut value = whole
            .checked_mul(unit)
            .filter(|v| *v <= GO_DURATION_LIMIT)
            .ok_or(())?;
        if fraction > 0 {
            // Go computes this part in floating point; so do we, for identical rounding.
            value += (fraction as f64 * (unit as f64 / scale as f64)) as u128;
        }
        total = total
            .checked_add(value)
            .filter(|v| *v <= GO_DURATION_LIMIT)
            .ok_or(())?;
    }

    if negative {
        Ok(-(total as i128))
    } else if total == GO_DURATION_LIMIT {
        Err(())
    } else {
        Ok(total as i128)
    }
}

fn go_atoi(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn checked_go_range(nanos: i128) -> Option<i128> {
    (nanos.unsigned_abs() < GO_DURATION_LIMIT).then_some(nanos)
}

/// Reads a boolean the way Go's `strconv.ParseBool` and a weak decoder do.
pub(crate) fn boolean(value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::Int(i, _) => Ok(*i != 0),
        Value::Str(text) => {
            parse_bool(text).ok_or_else(|| format!("expected true or false, found {text:?}"))
        }
        other => Err(format!("expected true or false, found {}", other.kind())),
    }
}

/// Go's `strconv.ParseBool` set, plus the empty string as false (what a weak decoder does).
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "" | "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Reads a string; numbers and booleans are accepted in their usual text form.
pub(crate) fn string(value: &Value) -> Result<String, String> {
    match value {
        Value::Str(text) => Ok(text.clone()),
        Value::Int(i, _) => Ok(i.to_string()),
        Value::Float(f) => Ok(f.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("expected a string, found {}", other.kind())),
    }
}

/// Reads a whole number; strings holding a decimal integer are accepted.
pub(crate) fn integer(value: &Value) -> Result<i64, String> {
    match value {
        Value::Int(i, _) => Ok(*i),
        Value::Str(text) => text
            .trim()
            .parse()
            .map_err(|_| format!("expected a whole number, found {text:?}")),
        other => Err(format!("expected a whole number, found {}", other.kind())),
    }
}

/// Reads a Unix permission mode such as a sink's `mode` or a template's `perms`.
///
/// Our rule (case B01): HCL `0640` and strings (`"0640"`, `"640"`) are octal, JSON integers are
/// decimal (`416` is 0o640), and a bare HCL integer such as `640` is refused because HCL reads
/// it as decimal (0o1200), which is never what its author meant. A mode with bits above 0o777
/// is refused instead of being masked.
pub(crate) fn mode(value: &Value) -> Result<u32, String> {
    let bits: i64 = match value {
        Value::Int(0, _) => 0,
        Value::Int(decimal, IntForm::HclDecimal) => {
            // The same digits read as octal are what the author meant, when they are a mode.
            let meant = parse_octal(&decimal.to_string()).filter(|bits| *bits <= 0o777);
            return Err(match meant {
                Some(_) => format!(
                    "{decimal} is read as decimal (0o{decimal:o}), which is not a file mode; \
                     write it in octal with a leading zero, e.g. 0{decimal}"
                ),
                None => format!(
                    "{decimal} is not a file mode; write one in octal with a leading zero, \
                     such as 0640"
                ),
            });
        }
        Value::Int(bits, _) => *bits,
        Value::Str(text) => parse_octal(text)
            .ok_or_else(|| format!("{text:?} is not an octal mode such as \"0640\""))?,
        other => {
            return Err(format!(
                "expected an octal mode such as 0640, found {}",
                other.kind()
            ));
        }
    };
    match u32::try_from(bits) {
        Ok(bits) if bits <= 0o777 => Ok(bits),
        _ if bits < 0 => Err(format!(
            "{bits} is not a file mode; only permission bits (0 to 0777) are allowed"
        )),
        _ => Err(format!(
            "mode 0o{bits:o} has bits above 0o777; only permission bits (0 to 0777) are allowed"
        )),
    }
}

/// Parses `"0640"`, `"640"` or `"0o640"` as octal.
pub(crate) fn parse_octal(text: &str) -> Option<i64> {
    let text = text.trim();
    let digits = text.strip_prefix("0o").unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    i64::from_str_radix(digits, 8).ok()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn check_duration(input: Value, expected: Result<u64, &str>) {
        let got = duration(&input).map(|d| d.as_millis() as u64);
        match expected {
            Ok(millis) => assert_eq!(got, Ok(millis), "{input:?}"),
            Err(fragment) => {
                let message = got.expect_err("should fail");
                assert!(message.contains(fragment), "{input:?}: {message}");
            }
        }
    }

    fn s(text: &str) -> Value {
        Value::Str(text.to_owned())
    }

    #[test]
    fn durations_follow_parse_duration_second() {
        let cases: &[(Value, Result<u64, &str>)] = &[
            (Value::Int(300, IntForm::HclDecimal), Ok(300_000)),
            (Value::Int(300, IntForm::Json), Ok(300_000)),
            (Value::Float(1.5), Ok(1_000)),
            (s("300"), Ok(300_000)),
            (s(""), Ok(0)),
            (s("2d"), Ok(172_800_000)),
            (s("5m"), Ok(300_000)),
            (s("1h30m"), Ok(5_400_000)),
            (s("1.5h"), Ok(5_400_000)),
            (s("300ms"), Ok(300)),
            (s(".5s"), Ok(500)),
            (s("1.s"), Ok(1_000)),
            (s("+5s"), Ok(5_000)),
            (s("0"), Ok(0)),
            (s("1h0m0s"), Ok(3_600_000)),
            (s("-5m"), Err("must not be negative")),
            (s("-1"), Err("must not be negative")),
            (s("5x"), Err("invalid duration \"5x\"")),
            (s("1.5"), Err("invalid duration")),
            (s("1d12h"), Err("invalid duration")),
            (s("s"), Err("invalid duration")),
            (s(" 5s"), Err("invalid duration")),
            (s("9999999999h"), Err("invalid duration")),
            (
                Value::Bool(true),
                Err("expected a duration, found a boolean"),
            ),
        ];
        for (input, expected) in cases {
            check_duration(input.clone(), *expected);
        }
    }

    #[test]
    fn go_duration_units_and_edges() {
        let cases: &[(&str, Result<i128, ()>)] = &[
            ("2us", Ok(2_000)),
            ("2\u{b5}s", Ok(2_000)),
            ("2\u{3bc}s", Ok(2_000)),
            ("10ns", Ok(10)),
            ("1h1m1s1ms1us1ns", Ok(3_661_001_001_001)),
            ("-0", Ok(0)),
            ("0.000000001s", Ok(1)),
            ("2562047h47m16.854775807s", Ok(i128::from(i64::MAX))),
            ("2562047h47m16.854775808s", Err(())),
            ("-2562047h47m16.854775808s", Ok(i128::from(i64::MIN))),
            ("", Err(())),
            ("1", Err(())),
            (".s", Err(())),
            ("1d", Err(())),
        ];
        for (input, expected) in cases {
            assert_eq!(go_duration(input), *expected, "{input}");
        }
    }

    #[test]
    fn booleans_take_the_go_set() {
        for text in ["1", "t", "T", "true", "TRUE", "True"] {
            assert_eq!(boolean(&s(text)), Ok(true), "{text}");
        }
        for text in ["0", "f", "F", "false", "FALSE", "False", ""] {
            assert_eq!(boolean(&s(text)), Ok(false), "{text}");
        }
        assert_eq!(boolean(&Value::Int(1, IntForm::Json)), Ok(true));
        assert!(boolean(&s("yes")).is_err());
        assert!(boolean(&s("tRUE")).is_err());
    }

    /// B01, our rule: octal where the author meant octal, an error naming the problem where the
    /// literal is ambiguous, and never a silently masked or decimal-read mode.
    #[test]
    fn modes_follow_the_b01_rule() {
        let cases: &[(Value, Result<u32, &str>)] = &[
            (Value::Int(0o640, IntForm::HclOctal), Ok(0o640)),
            (Value::Int(416, IntForm::Json), Ok(0o640)),
            (Value::Int(0x1a4, IntForm::HclHex), Ok(0o644)),
            (s("0640"), Ok(0o640)),
            (s("640"), Ok(0o640)),
            (s("0o600"), Ok(0o600)),
            (Value::Int(0, IntForm::HclDecimal), Ok(0)),
            (
                Value::Int(640, IntForm::HclDecimal),
                Err("write it in octal with a leading zero, e.g. 0640"),
            ),
            (
                Value::Int(640, IntForm::Json),
                Err("mode 0o1200 has bits above 0o777"),
            ),
            (
                Value::Int(0o4755, IntForm::HclOctal),
                Err("bits above 0o777"),
            ),
            (
                Value::Int(-1, IntForm::Json),
                Err("-1 is not a file mode; only permission bits (0 to 0777) are allowed"),
            ),
            // Digits that are no octal mode get no suggestion made of them.
            (
                Value::Int(99_999_999, IntForm::HclDecimal),
                Err(
                    "99999999 is not a file mode; write one in octal with a leading zero, \
                     such as 0640",
                ),
            ),
            (
                Value::Int(-1, IntForm::HclDecimal),
                Err("-1 is not a file mode; write one in octal"),
            ),
            (
                Value::Int(800, IntForm::HclDecimal),
                Err("800 is not a file mode"),
            ),
            (
                Value::Int(1000, IntForm::HclDecimal),
                Err("1000 is not a file mode"),
            ),
            (s("0980"), Err("not an octal mode")),
            (s("rw-r-----"), Err("not an octal mode")),
        ];
        for (input, expected) in cases {
            match (mode(input), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{input:?}"),
                (Err(got), Err(fragment)) => assert!(got.contains(fragment), "{input:?}: {got}"),
                (got, _) => panic!("{input:?}: unexpected {got:?}"),
            }
        }
    }

    proptest! {
        /// Any sum of whole units written the Go way parses to exactly that many nanoseconds.
        #[test]
        fn go_duration_sums_units(h in 0u64..1000, m in 0u64..1000, s in 0u64..1000, ms in 0u64..1000) {
            let text = format!("{h}h{m}m{s}s{ms}ms");
            let expected = ((h * 3600 + m * 60 + s) * 1000 + ms) as i128 * 1_000_000;
            prop_assert_eq!(go_duration(&text), Ok(expected));
        }

        /// A pure integer string means seconds, whatever its size within Go's range.
        #[test]
        fn integer_strings_are_seconds(seconds in 0i64..9_000_000_000) {
            let got = duration(&Value::Str(seconds.to_string())).map(|d| d.as_secs());
            prop_assert_eq!(got, Ok(seconds as u64));
        }

        /// A fraction of a unit rounds down to whole nanoseconds and never exceeds the next unit.
        #[test]
        fn fractional_hours(whole in 0u64..100, frac in 0u64..1000) {
            let text = format!("{whole}.{frac:03}h");
            let nanos = go_duration(&text).unwrap_or(-1);
            let low = (whole * 3600 * 1000 + frac * 3600) as i128 * 1_000_000;
            prop_assert!(nanos >= low - 1 && nanos <= low + 1, "{} -> {}", text, nanos);
        }

        /// Nothing the duration parser is given makes it panic.
        #[test]
        fn duration_parser_never_panics(text in "\\PC{0,16}") {
            let _ = duration_second(&text);
        }
    }
}
