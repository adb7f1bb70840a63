//! Exact emulation of the C `long double` arithmetic INCRBYFLOAT and
//! HINCRBYFLOAT do in Redis on x86-64: x87 80-bit extended precision (a
//! 64-bit mantissa), `strtold` to parse, `+` to add and `%.17Lf` to print.
//! Rust has no such type, and doing the sum in `f64` gives different digits
//! (Redis prints `0.1 + 0.2` as `0.3`, an f64 sum as `0.30000000000000004`),
//! so values are kept as `mant * 2^exp` and every rounding is done once,
//! from the exact result, with small big-integer arithmetic.

use std::cmp::Ordering;

/// Exponent of the lowest mantissa bit of the smallest normal and of every
/// subnormal 80-bit value (`2^-16382` is the smallest normal, with 63 bits
/// after its leading bit).
const MIN_EXP: i64 = -16445;
/// The largest exponent a finite value can have with a 64-bit mantissa.
const MAX_EXP: i64 = 16320;
/// Redis's `MAX_LONG_DOUBLE_CHARS`: longer strings are not floats.
const MAX_CHARS: usize = 5 * 1024;

/// An 80-bit extended-precision value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LongDouble {
    /// `mant * 2^exp`; zero has `mant == 0`.
    Finite {
        neg: bool,
        mant: u64,
        exp: i64,
    },
    Inf {
        neg: bool,
    },
    Nan,
}

impl LongDouble {
    pub const ZERO: LongDouble = LongDouble::Finite { neg: false, mant: 0, exp: 0 };

    pub fn is_finite(&self) -> bool {
        matches!(self, LongDouble::Finite { .. })
    }
}

/// Redis's `string2ld`: the whole string must be a number `strtold` reads
/// (decimal, hex `0x1.8p3`, `inf`/`infinity`), without leading space; NaN,
/// and results that overflow or underflow to zero, are rejected.
pub fn parse(text: &[u8]) -> Option<LongDouble> {
    if text.is_empty() || text.len() >= MAX_CHARS || text[0].is_ascii_whitespace() || text[0] == 0x0b {
        return None;
    }
    let (neg, rest) = match text[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if rest.eq_ignore_ascii_case(b"inf") || rest.eq_ignore_ascii_case(b"infinity") {
        return Some(LongDouble::Inf { neg });
    }
    let value = if rest.len() > 2 && rest[0] == b'0' && (rest[1] | 0x20) == b'x' {
        parse_hex(&rest[2..], neg)?
    } else {
        parse_decimal(rest, neg)?
    };
    match value {
        LongDouble::Finite { .. } => Some(value),
        // strtold sets ERANGE on overflow to HUGE_VAL; Redis rejects that.
        _ => None,
    }
}

/// Splits `digits[.digits]` (at least one digit) off the front of `text`:
/// the digits as values, how many came after the point, and the rest.
fn mantissa_digits(text: &[u8], radix: u32) -> Option<(Vec<u32>, i64, &[u8])> {
    let mut digits = Vec::new();
    let mut after_point = 0i64;
    let mut seen_point = false;
    let mut pos = 0;
    while pos < text.len() {
        let c = text[pos];
        if c == b'.' && !seen_point {
            seen_point = true;
        } else if let Some(d) = (c as char).to_digit(radix) {
            digits.push(d);
            if seen_point {
                after_point += 1;
            }
        } else {
            break;
        }
        pos += 1;
    }
    if digits.is_empty() {
        return None;
    }
    Some((digits, after_point, &text[pos..]))
}

/// Parses `[+-]digits` to the end of `text`, saturating far beyond any
/// exponent that could matter.
fn exponent(text: &[u8]) -> Option<i64> {
    let (neg, digits) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut value: i64 = 0;
    for &d in digits {
        value = (value * 10 + (d - b'0') as i64).min(1_000_000_000);
    }
    Some(if neg { -value } else { value })
}

fn parse_decimal(text: &[u8], neg: bool) -> Option<LongDouble> {
    let (digits, after_point, rest) = mantissa_digits(text, 10)?;
    let exp10 = match rest {
        [] => 0,
        [b'e' | b'E', tail @ ..] => exponent(tail)?,
        _ => return None,
    };
    let first = digits.iter().position(|&d| d != 0);
    let Some(first) = first else {
        return Some(LongDouble::Finite { neg, mant: 0, exp: 0 });
    };
    let digits = &digits[first..];
    let scale = exp10 - after_point;
    // The value is about 10^(digits + scale): outside these bounds it
    // certainly overflows or underflows to zero (both rejected).
    let magnitude = digits.len() as i64 + scale;
    if magnitude > 4940 {
        return Some(LongDouble::Inf { neg });
    }
    if magnitude < -4960 {
        return None;
    }
    let mut num = Big::from_decimal(digits);
    let mut den = Big::from_u64(1);
    // 10^k = 5^k * 2^k: the power of two goes into the exponent.
    if scale >= 0 {
        num.mul_pow5(scale as u32);
    } else {
        den.mul_pow5((-scale) as u32);
    }
    let value = round(neg, &num, &den, scale);
    match value {
        LongDouble::Finite { mant: 0, .. } => None,
        other => Some(other),
    }
}

fn parse_hex(text: &[u8], neg: bool) -> Option<LongDouble> {
    let (digits, after_point, rest) = mantissa_digits(text, 16)?;
    let exp2 = match rest {
        [] => 0,
        [b'p' | b'P', tail @ ..] => exponent(tail)?,
        _ => return None,
    };
    let mut num = Big::default();
    for d in digits {
        num.mul_small(16);
        num.add_small(d);
    }
    if num.is_zero() {
        return Some(LongDouble::Finite { neg, mant: 0, exp: 0 });
    }
    match round(neg, &num, &Big::from_u64(1), exp2 - 4 * after_point) {
        LongDouble::Finite { mant: 0, .. } => None,
        other => Some(other),
    }
}

/// `a + b` rounded to nearest, ties to even, as the x87 FPU does.
pub fn add(a: LongDouble, b: LongDouble) -> LongDouble {
    use LongDouble::*;
    match (a, b) {
        (Nan, _) | (_, Nan) => Nan,
        (Inf { neg: x }, Inf { neg: y }) if x != y => Nan,
        (Inf { neg }, _) | (_, Inf { neg }) => Inf { neg },
        (Finite { neg: na, mant: 0, .. }, Finite { neg: nb, mant: 0, .. }) => Finite { neg: na && nb, mant: 0, exp: 0 },
        (Finite { mant: 0, .. }, other) | (other, Finite { mant: 0, .. }) => other,
        (Finite { neg: na, mant: ma, exp: ea }, Finite { neg: nb, mant: mb, exp: eb }) => {
            let exp = ea.min(eb);
            let mut x = Big::from_u64(ma);
            x.shl((ea - exp) as usize);
            let mut y = Big::from_u64(mb);
            y.shl((eb - exp) as usize);
            let (neg, sum) = if na == nb {
                x.add(&y);
                (na, x)
            } else {
                match x.cmp(&y) {
                    Ordering::Equal => return LongDouble::ZERO,
                    Ordering::Greater => {
                        x.sub(&y);
                        (na, x)
                    }
                    Ordering::Less => {
                        y.sub(&x);
                        (nb, y)
                    }
                }
            };
            round(neg, &sum, &Big::from_u64(1), exp)
        }
    }
}

/// Rounds `num / den * 2^exp2` (num > 0) to the nearest 80-bit value.
fn round(neg: bool, num: &Big, den: &Big, exp2: i64) -> LongDouble {
    // Scale so the quotient has 66 or 67 bits: enough for the mantissa, a
    // rounding bit and more; the remainder says whether anything is left.
    let shift = 66 - (num.bits() as i64 - den.bits() as i64);
    let mut rem = num.clone();
    let mut divisor = den.clone();
    if shift >= 0 {
        rem.shl(shift as usize);
    } else {
        divisor.shl((-shift) as usize);
    }
    let mut quotient: u128 = 0;
    for bit in (0..68).rev() {
        let mut step = divisor.clone();
        step.shl(bit);
        if rem.cmp(&step) != Ordering::Less {
            rem.sub(&step);
            quotient |= 1 << bit;
        }
    }
    let sticky = !rem.is_zero();
    let bits = 128 - quotient.leading_zeros() as i64;
    let mut exp = exp2 - shift;
    // Drop bits beyond the 64-bit mantissa, more for subnormals.
    let mut drop = bits - 64;
    if exp + drop < MIN_EXP {
        drop = MIN_EXP - exp;
    }
    exp += drop;
    let (mut kept, round_up) = if drop > 128 {
        (0, false)
    } else {
        let kept = if drop == 128 { 0 } else { quotient >> drop };
        let low = if drop == 128 { quotient } else { quotient & ((1u128 << drop) - 1) };
        let half = 1u128 << (drop - 1);
        let up = low > half || (low == half && (sticky || kept & 1 == 1));
        (kept, up)
    };
    if round_up {
        kept += 1;
        if kept == 1 << 64 {
            kept >>= 1;
            exp += 1;
        }
    }
    if exp > MAX_EXP {
        return LongDouble::Inf { neg };
    }
    if kept == 0 {
        return LongDouble::Finite { neg, mant: 0, exp: 0 };
    }
    LongDouble::Finite { neg, mant: kept as u64, exp }
}

/// Redis's `ld2string(.., LD_STR_HUMAN)`: `%.17Lf` without trailing zeros
/// (or point), and `-0` as `0`. Only for finite values.
pub fn format_human(value: LongDouble) -> String {
    let (neg, mant, exp) = match value {
        LongDouble::Finite { neg, mant, exp } => (neg, mant, exp),
        LongDouble::Inf { neg: false } => return "inf".into(),
        LongDouble::Inf { neg: true } => return "-inf".into(),
        LongDouble::Nan => return "nan".into(),
    };
    // The value times 10^17, rounded to an integer (ties to even, as glibc).
    let scaled = mant as u128 * 100_000_000_000_000_000u128;
    let digits = if exp >= 0 {
        let mut big = Big::from_u128(scaled);
        big.shl(exp as usize);
        big.to_decimal()
    } else {
        let s = (-exp) as u32;
        let rounded = if s >= 128 {
            // scaled < 2^121 is below half a unit.
            0
        } else {
            let kept = scaled >> s;
            let low = scaled & ((1u128 << s) - 1);
            let half = 1u128 << (s - 1);
            if low > half || (low == half && kept & 1 == 1) {
                kept + 1
            } else {
                kept
            }
        };
        rounded.to_string()
    };
    let digits = format!("{digits:0>18}");
    let (int_part, frac) = digits.split_at(digits.len() - 17);
    let frac = frac.trim_end_matches('0');
    let mut out = String::with_capacity(digits.len() + 2);
    if neg {
        out.push('-');
    }
    out.push_str(int_part);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    if out == "-0" {
        out = "0".into();
    }
    out
}

/// A non-negative big integer, little-endian 32-bit limbs without high zeros.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Big(Vec<u32>);

impl Big {
    fn from_u64(value: u64) -> Big {
        Big::from_u128(value as u128)
    }

    fn from_u128(mut value: u128) -> Big {
        let mut limbs = Vec::new();
        while value != 0 {
            limbs.push(value as u32);
            value >>= 32;
        }
        Big(limbs)
    }

    fn from_decimal(digits: &[u32]) -> Big {
        let mut big = Big::default();
        for chunk in digits.chunks(9) {
            let mut value = 0u32;
            for &d in chunk {
                value = value * 10 + d;
            }
            big.mul_small(10u32.pow(chunk.len() as u32));
            big.add_small(value);
        }
        big
    }

    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn bits(&self) -> usize {
        match self.0.last() {
            Some(top) => self.0.len() * 32 - top.leading_zeros() as usize,
            None => 0,
        }
    }

    fn mul_small(&mut self, factor: u32) {
        let mut carry = 0u64;
        for limb in &mut self.0 {
            let product = *limb as u64 * factor as u64 + carry;
            *limb = product as u32;
            carry = product >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
        self.trim();
    }

    fn add_small(&mut self, value: u32) {
        let mut carry = value as u64;
        for limb in &mut self.0 {
            if carry == 0 {
                return;
            }
            let sum = *limb as u64 + carry;
            *limb = sum as u32;
            carry = sum >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
    }

    fn mul_pow5(&mut self, mut power: u32) {
        // 5^13 is the largest power of five that fits a limb.
        while power > 0 {
            let step = power.min(13);
            self.mul_small(5u32.pow(step));
            power -= step;
        }
    }

    fn shl(&mut self, bits: usize) {
        if self.is_zero() {
            return;
        }
        let (limbs, bits) = (bits / 32, bits % 32);
        if bits != 0 {
            let mut carry = 0u32;
            for limb in &mut self.0 {
                let next = *limb >> (32 - bits);
                *limb = (*limb << bits) | carry;
                carry = next;
            }
            if carry != 0 {
                self.0.push(carry);
            }
        }
        if limbs != 0 {
            self.0.splice(0..0, std::iter::repeat_n(0, limbs));
        }
    }

    fn add(&mut self, other: &Big) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        let mut carry = 0u64;
        for (i, limb) in self.0.iter_mut().enumerate() {
            let sum = *limb as u64 + *other.0.get(i).unwrap_or(&0) as u64 + carry;
            *limb = sum as u32;
            carry = sum >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
    }

    /// `self -= other`, with `self >= other`.
    fn sub(&mut self, other: &Big) {
        let mut borrow = 0i64;
        for (i, limb) in self.0.iter_mut().enumerate() {
            let mut diff = *limb as i64 - *other.0.get(i).unwrap_or(&0) as i64 - borrow;
            borrow = 0;
            if diff < 0 {
                diff += 1 << 32;
                borrow = 1;
            }
            *limb = diff as u32;
        }
        self.trim();
    }

    fn cmp(&self, other: &Big) -> Ordering {
        self.0.len().cmp(&other.0.len()).then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
    }

    /// Divides by a small divisor in place, returning the remainder.
    fn div_small(&mut self, divisor: u32) -> u32 {
        let mut rem = 0u64;
        for limb in self.0.iter_mut().rev() {
            let cur = (rem << 32) | *limb as u64;
            *limb = (cur / divisor as u64) as u32;
            rem = cur % divisor as u64;
        }
        self.trim();
        rem as u32
    }

    fn to_decimal(&self) -> String {
        let mut n = self.clone();
        let mut chunks = Vec::new();
        while !n.is_zero() {
            chunks.push(n.div_small(1_000_000_000));
        }
        let mut out = chunks.pop().map_or_else(|| "0".to_string(), |top| top.to_string());
        for chunk in chunks.iter().rev() {
            out.push_str(&format!("{chunk:09}"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `current + increment` as Redis stores it; None where Redis refuses
    /// the result (NaN or infinity).
    fn incr(a: &str, b: &str) -> Option<String> {
        let sum = add(parse(a.as_bytes())?, parse(b.as_bytes())?);
        sum.is_finite().then(|| format_human(sum))
    }

    #[test]
    fn sums_match_redis() {
        // Expected texts are Redis 7.0 replies to HINCRBYFLOAT and
        // INCRBYFLOAT on x86-64.
        let cases = [
            ("0.1", "0.2", "0.3"),
            ("0.2", "0.1", "0.3"),
            ("10", "0.1", "10.1"),
            ("0.1", "0", "0.1"),
            ("0", "1e20", "100000000000000000000"),
            ("0", "1.5e-10", "0.00000000015"),
            ("1", "1e-10", "1.0000000001"),
            ("1", "1.5e-5", "1.000015"),
            ("1.000015", "-1", "0.000015"),
            ("0.000015", "123456789.123456789", "123456789.12347178899653954"),
            ("0", "0x10", "16"),
            ("0x10", "1", "17"),
            ("17", "0x1p3", "25"),
            ("9223372036854775807", "1", "9223372036854775808"),
            ("10.5", "0.1", "10.6"),
            ("5.0e3", "2.0e2", "5200"),
            ("-1", "1", "0"),
            ("0", "-0", "0"),
            ("3.0000000000000000000000001", "0", "3"),
            ("-0.000000000000000000001", "0", "0"),
            ("0", "1e-4940", "0"),
        ];
        for (a, b, want) in cases {
            assert_eq!(incr(a, b).as_deref(), Some(want), "{a} + {b}");
        }
        assert!(incr("10.1", "1e300")
            .unwrap()
            .starts_with("10000000000000000000089973240795591938705239442732907479382600823212656465961809"));
        let big = incr("25", "1e4000").unwrap();
        assert_eq!((big.len(), &big[..12]), (4000, "999999999999"));
    }

    #[test]
    fn non_finite_results_are_refused() {
        assert_eq!(incr("1e4932", "1e4932"), None);
        assert_eq!(incr("1", "inf"), None);
        assert_eq!(incr("inf", "-inf"), None);
        assert_eq!(add(parse(b"inf").unwrap(), parse(b"-inf").unwrap()), LongDouble::Nan);
        let max = "1.18973149535723176502e+4932";
        assert!(parse(max.as_bytes()).is_some());
        assert_eq!(incr(max, max), None);
    }

    #[test]
    fn parse_follows_strtold_and_redis() {
        for bad in [
            "", " 1", "1 ", "\u{b}1", "1e", "1e+", "-.", ".", "nan", "-nan", "abc", "1..2", "1\u{0}", "1e-5000",
            "1e-4960", "0x", "0x1p", "infin", "1e5000",
        ] {
            assert_eq!(parse(bad.as_bytes()), None, "{bad:?}");
        }
        for good in [
            ".5",
            "5.",
            "+.5",
            "+1",
            "-1",
            "1E5",
            "1E3",
            "1e+5",
            "0e-5000",
            "0e99999",
            "inf",
            "-Infinity",
            "0x1.8p1",
            "0x.8",
        ] {
            assert!(parse(good.as_bytes()).is_some(), "{good:?}");
        }
        assert_eq!(parse(b"0"), Some(LongDouble::ZERO));
        assert_eq!(format_human(parse(b"0x1.8p1").unwrap()), "3");
    }

    #[test]
    fn mantissa_is_64_bits() {
        assert_eq!(incr("9007199254740993", "0").as_deref(), Some("9007199254740993"));
        assert_eq!(incr("18446744073709551615", "0").as_deref(), Some("18446744073709551615"));
        // 2^64 + 1 needs 65 bits: ties to even gives 2^64.
        assert_eq!(incr("18446744073709551617", "0").as_deref(), Some("18446744073709551616"));
    }

    #[test]
    fn ties_round_to_even_when_printing() {
        // 2^-18 has 18 decimals ending in 5: %.17Lf rounds it to even.
        assert_eq!(format_human(parse(b"0.000003814697265625").unwrap()), "0.00000381469726562");
        assert_eq!(incr("0", "0x1p-18").as_deref(), Some("0.00000381469726562"));
    }
}
