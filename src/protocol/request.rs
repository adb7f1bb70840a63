//! Request parser: RESP multibulk (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) and inline
//! commands (`PING\r\n`, as typed by hand or sent by redis-benchmark's
//! PING_INLINE), zero-copy: arguments are slices of the read buffer.
//!
//! Limits and error texts follow Redis's `processMultibulkBuffer` and
//! `processInlineBuffer` (networking.c) so clients see the same errors.

use bytes::{Buf, Bytes, BytesMut};

/// Longest inline request or header line Redis accepts (PROTO_INLINE_MAX_SIZE).
pub const INLINE_MAX: usize = 64 * 1024;

/// Configurable limits on one request.
#[derive(Clone, Copy, Debug)]
pub struct RequestLimits {
    /// `proto-max-bulk-len`: the largest bulk string a client may send.
    pub max_bulk_len: i64,
    /// Unauthenticated clients may only send small requests, as in Redis.
    pub authenticated: bool,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits { max_bulk_len: 512 * 1024 * 1024, authenticated: true }
    }
}

/// A malformed request. The connection answers `-ERR Protocol error: <msg>`
/// and closes, as Redis does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub String);

/// What the parser found at the start of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum ParseOutcome {
    /// A whole request; its bytes were consumed. An empty argument list is a
    /// blank inline line or `*0`, which Redis silently skips.
    Request(Vec<Bytes>),
    /// The request is not complete: wait until the buffer holds at least this
    /// many bytes before trying again (so a large value is not rescanned).
    Incomplete { need: usize },
}

/// Parse one request from the front of `buf`.
pub fn parse_request(buf: &mut BytesMut, limits: &RequestLimits) -> Result<ParseOutcome, ProtocolError> {
    if buf.first() == Some(&b'*') {
        parse_multibulk(buf, limits)
    } else {
        parse_inline(buf)
    }
}

/// Finds `\r\n` from `from`; returns the index of `\r`.
fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let newline = memchr(b'\n', &buf[from..])? + from;
    // Redis looks for '\r' and requires the '\n' after it; a line ending in
    // a bare '\n' is handled by looking one byte back.
    if newline > from && buf[newline - 1] == b'\r' {
        Some(newline - 1)
    } else {
        Some(newline)
    }
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

/// Parses a header line such as `*3` or `$5` starting at `start` (the byte
/// after the type marker). Returns the number and the index after `\r\n`,
/// `Ok(None)` when the line is not complete yet.
fn header_line(buf: &[u8], start: usize, too_big: &str) -> Result<Option<(Option<i64>, usize)>, ProtocolError> {
    // What clients send, `\d+\r\n` without a leading zero, read in one
    // pass: three of these per short command went through the search for
    // the line's end and a second pass over its digits.
    let digits = buf[start..].iter().take(18).take_while(|b| b.is_ascii_digit()).count();
    let end = start + digits;
    if digits > 0 && (buf[start] != b'0' || digits == 1) && buf.get(end..end + 2) == Some(b"\r\n") {
        let value = buf[start..end].iter().fold(0i64, |value, &b| value * 10 + i64::from(b - b'0'));
        return Ok(Some((Some(value), end + 2)));
    }
    header_line_general(buf, start, too_big)
}

/// `header_line` for any line: found by its end, then parsed as Redis's
/// `string2ll` does.
fn header_line_general(buf: &[u8], start: usize, too_big: &str) -> Result<Option<(Option<i64>, usize)>, ProtocolError> {
    let Some(cr) = find_crlf(buf, start) else {
        if buf.len() - start > INLINE_MAX {
            return Err(ProtocolError(too_big.to_string()));
        }
        return Ok(None);
    };
    if cr - start > INLINE_MAX {
        return Err(ProtocolError(too_big.to_string()));
    }
    // A line that ends in a bare '\n' has no '\r' to skip.
    let next = if buf[cr] == b'\r' { cr + 2 } else { cr + 1 };
    if next > buf.len() {
        return Ok(None);
    }
    Ok(Some((parse_i64(&buf[start..cr]), next)))
}

/// Redis's `string2ll`: optional '-', digits, no leading zeros or '+', no
/// spaces, fits in i64.
pub fn parse_i64(digits: &[u8]) -> Option<i64> {
    let (negative, rest) = match digits {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, digits),
    };
    if rest.is_empty() || rest.len() > 20 || (rest[0] == b'0' && (rest.len() > 1 || negative)) {
        return if digits == b"0" { Some(0) } else { None };
    }
    let mut value: u64 = 0;
    for &b in rest {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add((b - b'0') as u64)?;
    }
    if negative {
        if value > i64::MAX as u64 + 1 {
            None
        } else {
            Some((value as i64).wrapping_neg())
        }
    } else {
        i64::try_from(value).ok()
    }
}

fn parse_multibulk(buf: &mut BytesMut, limits: &RequestLimits) -> Result<ParseOutcome, ProtocolError> {
    let Some((count, mut pos)) = header_line(buf, 1, "too big mbulk count string")? else {
        return Ok(ParseOutcome::Incomplete { need: buf.len() + 1 });
    };
    let count = match count {
        Some(n) if n <= i32::MAX as i64 => n,
        _ => return Err(ProtocolError("invalid multibulk length".into())),
    };
    if count > 1024 * 1024 && !limits.authenticated {
        return Err(ProtocolError("unauthenticated multibulk length".into()));
    }
    if count <= 0 {
        buf.advance(pos);
        return Ok(ParseOutcome::Request(Vec::new()));
    }
    // Positions first; the buffer is split only when the request is whole.
    let mut spans = Vec::with_capacity(count.min(1024) as usize);
    for _ in 0..count {
        match buf.get(pos) {
            None => return Ok(ParseOutcome::Incomplete { need: pos + 1 }),
            Some(b'$') => {}
            Some(&other) => return Err(ProtocolError(format!("expected '$', got '{}'", other as char))),
        }
        let Some((len, data)) = header_line(buf, pos + 1, "too big bulk count string")? else {
            return Ok(ParseOutcome::Incomplete { need: buf.len() + 1 });
        };
        let len = match len {
            Some(n) if n >= 0 && n <= limits.max_bulk_len => n as usize,
            _ => return Err(ProtocolError("invalid bulk length".into())),
        };
        if len > 16384 && !limits.authenticated {
            return Err(ProtocolError("unauthenticated bulk length".into()));
        }
        // Like Redis, the two bytes after the data are skipped unchecked.
        let end = data + len + 2;
        if end > buf.len() {
            return Ok(ParseOutcome::Incomplete { need: end });
        }
        spans.push((data, data + len));
        pos = end;
    }
    let frame = buf.split_to(pos).freeze();
    Ok(ParseOutcome::Request(spans.into_iter().map(|(s, e)| frame.slice(s..e)).collect()))
}

fn parse_inline(buf: &mut BytesMut) -> Result<ParseOutcome, ProtocolError> {
    let Some(newline) = memchr(b'\n', buf) else {
        if buf.len() > INLINE_MAX {
            return Err(ProtocolError("too big inline request".into()));
        }
        return Ok(ParseOutcome::Incomplete { need: buf.len() + 1 });
    };
    let line_end = if newline > 0 && buf[newline - 1] == b'\r' { newline - 1 } else { newline };
    let args =
        split_inline_args(&buf[..line_end]).ok_or_else(|| ProtocolError("unbalanced quotes in request".into()))?;
    buf.advance(newline + 1);
    Ok(ParseOutcome::Request(args.into_iter().map(Bytes::from).collect()))
}

/// Redis's `sdssplitargs`: whitespace-separated words, "double quotes" with
/// \n \r \t \b \a \\ \" and \xHH escapes, 'single quotes' with \' only. A
/// closing quote must be followed by a space or the end of the line.
pub fn split_inline_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= line.len() {
            return Some(args);
        }
        let mut current = Vec::new();
        let mut in_double = false;
        let mut in_single = false;
        loop {
            if in_double {
                let c = *line.get(i)?;
                if c == b'\\' && i + 3 < line.len() && line[i + 1] == b'x' {
                    let hex = |b: u8| (b as char).to_digit(16);
                    if let (Some(h), Some(l)) = (hex(line[i + 2]), hex(line[i + 3])) {
                        current.push((h * 16 + l) as u8);
                        i += 4;
                        continue;
                    }
                }
                if c == b'\\' && i + 1 < line.len() {
                    current.push(match line[i + 1] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                    i += 2;
                } else if c == b'"' {
                    // The closing quote must be followed by a space or the end.
                    if i + 1 < line.len() && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    current.push(c);
                    i += 1;
                }
            } else if in_single {
                let c = *line.get(i)?;
                if c == b'\\' && i + 1 < line.len() && line[i + 1] == b'\'' {
                    current.push(b'\'');
                    i += 2;
                } else if c == b'\'' {
                    if i + 1 < line.len() && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    current.push(c);
                    i += 1;
                }
            } else {
                match line.get(i) {
                    None => break,
                    Some(c) if c.is_ascii_whitespace() => break,
                    Some(b'"') => in_double = true,
                    Some(b'\'') => in_single = true,
                    Some(&c) => current.push(c),
                }
                i += 1;
            }
        }
        args.push(current);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &[u8]) -> Result<ParseOutcome, ProtocolError> {
        parse_request(&mut BytesMut::from(input), &RequestLimits::default())
    }

    fn args(words: &[&str]) -> ParseOutcome {
        ParseOutcome::Request(words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())).collect())
    }

    #[test]
    fn multibulk_and_inline() {
        assert_eq!(parse(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n").unwrap(), args(&["GET", "k"]));
        assert_eq!(parse(b"PING\r\n").unwrap(), args(&["PING"]));
        assert_eq!(parse(b"set a \"b c\\x41\"\n").unwrap(), args(&["set", "a", "b cA"]));
        assert_eq!(parse(b"\r\n").unwrap(), ParseOutcome::Request(vec![]));
        assert_eq!(parse(b"*0\r\n").unwrap(), ParseOutcome::Request(vec![]));
        assert_eq!(parse(b"*-1\r\n").unwrap(), ParseOutcome::Request(vec![]));
    }

    #[test]
    fn incomplete_requests_wait() {
        assert!(matches!(parse(b"*2\r\n$3\r\nGET\r\n$1\r\n").unwrap(), ParseOutcome::Incomplete { .. }));
        assert_eq!(parse(b"*1\r\n$5\r\nab").unwrap(), ParseOutcome::Incomplete { need: 4 + 4 + 7 });
        assert!(matches!(parse(b"PIN").unwrap(), ParseOutcome::Incomplete { .. }));
    }

    #[test]
    fn errors_match_redis() {
        let err = |input: &[u8]| parse(input).unwrap_err().to_string();
        assert_eq!(err(b"*x\r\n"), "Protocol error: invalid multibulk length");
        assert_eq!(err(b"*3000000000\r\n"), "Protocol error: invalid multibulk length");
        assert_eq!(err(b"*1\r\n+foo\r\n"), "Protocol error: expected '$', got '+'");
        assert_eq!(err(b"*1\r\n$-1\r\n"), "Protocol error: invalid bulk length");
        assert_eq!(err(b"*1\r\n$536870913\r\n"), "Protocol error: invalid bulk length");
        assert_eq!(err(b"set \"a\r\n"), "Protocol error: unbalanced quotes in request");
        assert_eq!(err(b"set \"a\"b\r\n"), "Protocol error: unbalanced quotes in request");
        assert_eq!(err(&vec![b'a'; INLINE_MAX + 1]), "Protocol error: too big inline request");
        let mut long_count = b"*".to_vec();
        long_count.extend(vec![b'1'; INLINE_MAX + 1]);
        assert_eq!(err(&long_count), "Protocol error: too big mbulk count string");
    }

    #[test]
    fn header_lines_read_in_one_pass_as_the_general_parser_reads_them() {
        let mut lines: Vec<Vec<u8>> = Vec::new();
        for body in [
            "0",
            "1",
            "9",
            "10",
            "42",
            "01",
            "00",
            "-1",
            "-0",
            "+1",
            " 1",
            "1 ",
            "1a",
            "",
            "-",
            "99999999999999999",
            "999999999999999999",
            "9999999999999999999",
            "9223372036854775807",
            "9223372036854775808",
            "123456789012345678901",
        ] {
            for end in ["\r\n", "\n", "\r", "", "\r\nrest", "\rx"] {
                lines.push(format!("*{body}{end}").into_bytes());
            }
        }
        for line in &lines {
            for cut in 1..=line.len() {
                let buf = &line[..cut];
                assert_eq!(
                    header_line(buf, 1, "too big").map_err(|e| e.0),
                    header_line_general(buf, 1, "too big").map_err(|e| e.0),
                    "{:?}",
                    String::from_utf8_lossy(buf)
                );
            }
        }
    }

    #[test]
    fn integers_parse_like_string2ll() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        for bad in [&b""[..], b"-", b"+1", b"01", b"-0", b" 1", b"1 ", b"1a"] {
            assert_eq!(parse_i64(bad), None, "{:?}", bad);
        }
    }
}
