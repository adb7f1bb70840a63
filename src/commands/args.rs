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

/// Redis's integer argument rule (`string2ll`).
pub fn parse_int(arg: &[u8]) -> Result<i64, CmdError> {
    parse_i64(arg).ok_or(CmdError::NotInteger)
}

/// Redis's float argument rule (`string2ld`/`strtold` on the whole string):
/// no spaces, no NaN; `inf`, `+inf`, `-inf` accepted.
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
    if arg.is_empty() || arg.len() > 5000 {
        return None;
    }
    let text = std::str::from_utf8(arg).ok()?;
    if text.starts_with(|c: char| c.is_whitespace()) || text.ends_with(|c: char| c.is_whitespace()) {
        return None;
    }
    let spelled = |words: &[&str]| words.iter().any(|word| text.eq_ignore_ascii_case(word));
    let value = if spelled(&["inf", "+inf", "infinity", "+infinity"]) {
        f64::INFINITY
    } else if spelled(&["-inf", "-infinity"]) {
        f64::NEG_INFINITY
    } else {
        // Rust accepts "nan", "inf" spellings and a few things strtod
        // does not; allow only what strtod would take as a number.
        if !text.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-')) {
            return None;
        }
        text.parse::<f64>().ok()?
    };
    if value.is_nan() {
        None
    } else {
        Some(value)
    }
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
}
