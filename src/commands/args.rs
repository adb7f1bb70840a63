//! A cursor over a command's arguments, in the style of mini-redis's
//! `Parse`: handlers pull typed values off the front and call `finish`, so
//! execution never sees leftover or malformed syntax.

use bytes::Bytes;

use crate::error::CmdError;
use crate::protocol::parse_i64;

/// The arguments after the command name.
pub struct Args<'a> {
    items: &'a [Bytes],
    pos: usize,
}

impl<'a> Args<'a> {
    /// `argv` includes the command name, which is skipped.
    pub fn new(argv: &'a [Bytes]) -> Args<'a> {
        Args { items: argv, pos: 1 }
    }

    pub fn remaining(&self) -> usize {
        self.items.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The next argument, or a syntax error when there is none.
    pub fn next_bytes(&mut self) -> Result<&'a Bytes, CmdError> {
        let item = self.items.get(self.pos).ok_or(CmdError::Syntax)?;
        self.pos += 1;
        Ok(item)
    }

    /// The next argument, if any.
    pub fn next_opt(&mut self) -> Option<&'a Bytes> {
        let item = self.items.get(self.pos)?;
        self.pos += 1;
        Some(item)
    }

    pub fn peek(&self) -> Option<&'a Bytes> {
        self.items.get(self.pos)
    }

    /// Every argument left.
    pub fn rest(&mut self) -> &'a [Bytes] {
        let rest = &self.items[self.pos..];
        self.pos = self.items.len();
        rest
    }

    pub fn next_i64(&mut self) -> Result<i64, CmdError> {
        parse_int(self.next_bytes()?)
    }

    pub fn next_f64(&mut self) -> Result<f64, CmdError> {
        parse_float(self.next_bytes()?)
    }

    /// The next argument upper-cased, for matching option names.
    pub fn next_keyword(&mut self) -> Result<String, CmdError> {
        Ok(String::from_utf8_lossy(self.next_bytes()?).to_ascii_uppercase())
    }

    /// Consumes the next argument if it equals `word` (any case).
    pub fn eat(&mut self, word: &str) -> bool {
        match self.peek() {
            Some(arg) if arg.eq_ignore_ascii_case(word.as_bytes()) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    /// Fails with a syntax error when arguments are left over.
    pub fn finish(&self) -> Result<(), CmdError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(CmdError::Syntax)
        }
    }
}

/// The pairs that `argv[first..]` is made of (MSET's keys and values,
/// HSET's fields and values); an odd or zero count is an arity error.
pub fn pairs(argv: &[Bytes], first: usize) -> Result<Vec<(&Bytes, &Bytes)>, CmdError> {
    let rest = argv.get(first..).unwrap_or_default();
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(CmdError::WrongArity(String::from_utf8_lossy(&argv[0]).to_ascii_lowercase()));
    }
    Ok(rest.chunks_exact(2).map(|pair| (&pair[0], &pair[1])).collect())
}

/// An argument as Redis's `%s` prints it into a reply: a C string, so it
/// ends at its first NUL.
pub fn c_text(arg: &[u8]) -> std::borrow::Cow<'_, str> {
    let end = arg.iter().position(|&b| b == 0).unwrap_or(arg.len());
    String::from_utf8_lossy(&arg[..end])
}

/// Redis's integer argument rule (`string2ll`).
pub fn parse_int(arg: &[u8]) -> Result<i64, CmdError> {
    parse_i64(arg).ok_or(CmdError::NotInteger)
}

/// Redis's float argument rule (`strtod` on the whole string, as
/// `getDoubleFromObject` checks it): no spaces, no NaN; `inf`/`infinity`
/// with a sign, hexadecimal floats (`0x1.8p3`) and subnormals accepted;
/// values out of range (`1e400`, or `1e-400`, which would read as 0)
/// refused.
pub fn parse_float_opt(arg: &[u8]) -> Option<f64> {
    // Most scores are whole numbers: read as integers, which up to 15
    // digits are exact as doubles ("-0" and leading zeros are not taken
    // here, and go the general way).
    if arg.len() <= 15 {
        if let Some(value) = parse_i64(arg) {
            return Some(value as f64);
        }
    }
    parse_float_general(arg)
}

fn parse_float_general(arg: &[u8]) -> Option<f64> {
    match strtod(arg)? {
        (value, false) if !value.is_nan() => Some(value),
        _ => None,
    }
}

/// A score range bound as Redis's `zslParseRange` reads it: strtod on a C
/// string (up to the first NUL), so the empty string is 0, leading
/// whitespace is skipped and out-of-range values are kept (as infinity or
/// 0); only NaN and trailing garbage are refused.
pub fn parse_score_bound(arg: &[u8]) -> Option<f64> {
    let arg = &arg[..arg.iter().position(|&b| b == 0).unwrap_or(arg.len())];
    if arg.is_empty() {
        return Some(0.0);
    }
    let start = arg.iter().position(|b| !matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))?;
    match strtod(&arg[start..])? {
        (value, _) if !value.is_nan() => Some(value),
        _ => None,
    }
}

/// What C's strtod makes of all of `arg` (no leading whitespace): the
/// value and whether it was out of range (ERANGE: too big, or too small to
/// be anything but 0); None when `arg` is not one number. Decimal and
/// hexadecimal (`0x1.8p3`) forms, `inf`/`infinity`, with a sign.
fn strtod(arg: &[u8]) -> Option<(f64, bool)> {
    if arg.is_empty() || arg.len() > 5000 {
        return None;
    }
    let text = std::str::from_utf8(arg).ok()?;
    let (negative, unsigned) = match text.as_bytes()[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (magnitude, out_of_range) = if unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity")
    {
        (f64::INFINITY, false)
    } else if unsigned.eq_ignore_ascii_case("nan") {
        (f64::NAN, false)
    } else if let Some(hex) = unsigned.strip_prefix("0x").or_else(|| unsigned.strip_prefix("0X")) {
        parse_hex_float(hex)?
    } else {
        // Rust also reads "inf" spellings and a few things strtod does
        // not; allow only what strtod takes as a decimal number.
        if unsigned.starts_with(['+', '-'])
            || !unsigned.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        {
            return None;
        }
        let value = unsigned.parse::<f64>().ok()?;
        let mantissa = unsigned.split(['e', 'E']).next().unwrap_or_default();
        let underflow = value == 0.0 && mantissa.bytes().any(|b| matches!(b, b'1'..=b'9'));
        (value, value.is_infinite() || underflow)
    };
    Some((if negative { -magnitude } else { magnitude }, out_of_range))
}

/// The digits of a hexadecimal float after `0x` (`1.8p3`, `ff`, `.8`),
/// as strtod reads them, and whether the value is out of range.
fn parse_hex_float(text: &str) -> Option<(f64, bool)> {
    let (digits, exponent) = match text.find(['p', 'P']) {
        Some(at) => (&text[..at], text[at + 1..].parse::<i32>().ok()?),
        None => (text, 0),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    // Up to 32 significant digits are kept exactly; any further nonzero
    // digit only marks the value as a little above them, for rounding.
    let mut mantissa = 0u128;
    let mut scale = exponent as i64;
    let mut significant = 0;
    for (i, c) in whole.chars().chain(fraction.chars()).enumerate() {
        let digit = c.to_digit(16)? as u128;
        let in_fraction = i >= whole.len();
        if mantissa == 0 && digit == 0 {
            scale -= if in_fraction { 4 } else { 0 };
            continue;
        }
        if significant < 32 {
            mantissa = mantissa << 4 | digit;
            significant += 1;
            scale -= if in_fraction { 4 } else { 0 };
        } else {
            mantissa |= (digit != 0) as u128;
            scale += if in_fraction { 0 } else { 4 };
        }
    }
    // Scaled in steps that stay exact until the last (a mantissa below
    // 2^128 is 0 or infinite well within these bounds).
    let mut value = mantissa as f64;
    let mut scale = scale.clamp(-2400, 2400) as i32;
    while scale.abs() > 1000 {
        let step = 1000 * scale.signum();
        value *= 2f64.powi(step);
        scale -= step;
    }
    let value = value * 2f64.powi(scale);
    Some((value, value.is_infinite() || (value == 0.0 && mantissa != 0)))
}

pub fn parse_float(arg: &[u8]) -> Result<f64, CmdError> {
    parse_float_opt(arg).ok_or(CmdError::NotFloat)
}

/// The unit of a TTL argument.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TimeUnit {
    Seconds,
    Milliseconds,
}

/// An absolute expiry in unix ms from a SET/SETEX/GETEX-style argument
/// (Redis's `getExpireMillisecondsOrReply`): must be a positive integer;
/// relative values are added to `now_ms`; overflow is an invalid expire time.
pub fn parse_expire(arg: &[u8], unit: TimeUnit, relative: bool, now_ms: u64, command: &str) -> Result<u64, CmdError> {
    let value = parse_int(arg)?;
    let invalid = || CmdError::InvalidExpire(command.to_string());
    if value <= 0 {
        return Err(invalid());
    }
    let ms = match unit {
        TimeUnit::Seconds => value.checked_mul(1000).ok_or_else(invalid)?,
        TimeUnit::Milliseconds => value,
    };
    let ms = if relative { ms.checked_add(now_ms as i64).ok_or_else(invalid)? } else { ms };
    Ok(ms as u64)
}

/// The arguments of LMPOP, ZMPOP and their blocking forms from `numkeys`
/// on: `numkeys key [key ...] <end> [COUNT count]`, where `parse_end` reads
/// the LEFT|RIGHT or MIN|MAX word (checked before COUNT, as Redis does).
pub struct MultiPop<'a> {
    pub keys: &'a [Bytes],
    /// What `parse_end` made of the end word.
    pub end: bool,
    pub count: usize,
}

impl<'a> MultiPop<'a> {
    pub fn parse(args: &'a [Bytes], parse_end: impl FnOnce(&[u8]) -> Result<bool, CmdError>) -> Result<Self, CmdError> {
        let numkeys = match parse_int(&args[0]) {
            Ok(n) if n > 0 => n as u64,
            _ => return Err(CmdError::err("numkeys should be greater than 0")),
        };
        let end_at = numkeys.checked_add(1).filter(|&at| at < args.len() as u64).ok_or(CmdError::Syntax)? as usize;
        let end = parse_end(&args[end_at])?;
        let mut count = None;
        let mut options = args[end_at + 1..].iter();
        while let Some(option) = options.next() {
            match options.as_slice().first() {
                Some(value) if count.is_none() && option.eq_ignore_ascii_case(b"count") => {
                    count = match parse_int(value) {
                        Ok(n) if n > 0 => Some(n as usize),
                        _ => return Err(CmdError::err("count should be greater than 0")),
                    };
                    options.next();
                }
                _ => return Err(CmdError::Syntax),
            }
        }
        Ok(MultiPop { keys: &args[1..end_at], end, count: count.unwrap_or(1) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_number_scores_read_as_the_general_parser_reads_them() {
        let mut args: Vec<String> =
            ["0", "-0", "00", "007", "-007", "+5", "1e3", "1E3", "inf", "-Inf", "nan", " 1", "1 ", "-", ""]
                .iter()
                .map(|s| s.to_string())
                .collect();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for digits in 1..=20u32 {
            for _ in 0..200 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let n = x % 10u64.pow(digits.min(19));
                args.push(n.to_string());
                args.push(format!("-{n}"));
            }
        }
        args.push(i64::MAX.to_string());
        args.push(i64::MIN.to_string());
        for arg in &args {
            let (fast, general) = (parse_float_opt(arg.as_bytes()), parse_float_general(arg.as_bytes()));
            assert_eq!(fast.map(f64::to_bits), general.map(f64::to_bits), "{arg:?}");
        }
    }

    /// What glibc's strtod makes of each, as Redis's getDoubleFromObject
    /// checks it (None: "value is not a valid float").
    #[test]
    fn floats_read_as_strtod_reads_them() {
        let cases: &[(&str, Option<f64>)] = &[
            ("0x10", Some(16.0)),
            ("-0X1.8p1", Some(-3.0)),
            ("0x.8", Some(0.5)),
            ("0x1p-1074", Some(f64::from_bits(1))),
            ("0x1p-1080", None),
            ("0x1p1024", None),
            ("0xffffffffffffffffffffffffffffffffff", Some(2f64.powi(136))),
            ("0x", None),
            ("0x1p", None),
            ("0xg", None),
            ("5e-324", Some(f64::from_bits(1))),
            ("1e-400", None),
            ("0e-400", Some(0.0)),
            ("1e400", None),
            ("-1e400", None),
            ("1.7976931348623157e308", Some(f64::MAX)),
            ("+Infinity", Some(f64::INFINITY)),
            ("-INF", Some(f64::NEG_INFINITY)),
            ("nan", None),
            ("+-1", None),
            ("--1", None),
            ("1e", None),
            (".5", Some(0.5)),
            ("5.", Some(5.0)),
            (" 1", None),
            ("1 ", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_float_opt(text.as_bytes()), *expected, "{text:?}");
        }
    }

    /// What `ZRANGEBYSCORE key <bound> +inf` takes as its minimum in
    /// Redis 7.0 (None: "min or max is not a float").
    #[test]
    fn score_bounds_read_as_zslparserange_reads_them() {
        let cases: &[(&[u8], Option<f64>)] = &[
            (b"", Some(0.0)),
            (b"\0", Some(0.0)),
            (b"1\0garbage", Some(1.0)),
            (b" \t1", Some(1.0)),
            (b" ", None),
            (b"1 ", None),
            (b"1e400", Some(f64::INFINITY)),
            (b"-1e400", Some(f64::NEG_INFINITY)),
            (b"1e-400", Some(0.0)),
            (b"0x10", Some(16.0)),
            (b"nan", None),
            (b"abc", None),
            (b"-inf", Some(f64::NEG_INFINITY)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_score_bound(text), *expected, "{:?}", String::from_utf8_lossy(text));
        }
    }
}
