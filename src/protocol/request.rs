//! Request parser: RESP multibulk (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) and inline
//! commands (`PING\r\n`, as typed by hand or sent by redis-benchmark's
//! PING_INLINE), zero-copy: arguments are slices of the read buffer.
//!
//! Limits and error texts follow Redis's `processMultibulkBuffer` and
//! `processInlineBuffer` (networking.c) so clients see the same errors.

use bytes::{Buf, Bytes, BytesMut};

/// Longest inline request or header line Redis accepts (PROTO_INLINE_MAX_SIZE).
pub const INLINE_MAX: usize = 64 * 1024;

/// Most arguments a client that must still authenticate may send in one
/// request, as in Redis.
const UNAUTHENTICATED_MAX_ARGS: i64 = 10;

/// Longest argument a client that must still authenticate may send.
const UNAUTHENTICATED_MAX_BULK: usize = 16 * 1024;

/// Configurable limits on one request.
#[derive(Clone, Copy, Debug)]
pub struct RequestLimits {
    /// `proto-max-bulk-len`: the largest bulk string a client may send.
    pub max_bulk_len: i64,
    /// A password is set and the client has not authenticated yet (Redis's
    /// `authRequired`): it may only send small requests.
    pub auth_required: bool,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits { max_bulk_len: 512 * 1024 * 1024, auth_required: false }
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
    /// The request is not complete: nothing new can be parsed before the
    /// buffer holds at least this many bytes.
    Incomplete { need: usize },
}

/// Parses requests from the front of a connection's read buffer, keeping
/// its progress through a request that is not complete yet (Redis's
/// `multibulklen` and `bulklen`): a request arriving in pieces is read once,
/// not again from its first byte on every read. The buffer is consumed only
/// when a request is whole, so its arguments are slices of one frame.
#[derive(Debug, Default)]
pub struct RequestParser {
    /// Arguments of the multibulk request in progress still to be read; 0
    /// when no multibulk request is in progress.
    remaining: usize,
    /// Where in the buffer the next header line or argument starts.
    pos: usize,
    /// The length of the argument at `pos` once its `$` line is read.
    bulk_len: Option<usize>,
    /// The arguments read so far, as ranges of the buffer.
    spans: Vec<(usize, usize)>,
    /// Their bytes.
    spans_bytes: usize,
    /// The buffer holds no newline from the current line's start up to
    /// here: a long line arriving in pieces is searched once.
    searched: usize,
    /// The buffer length below which nothing new can be parsed.
    need: usize,
    /// Bytes looked at, to test that parsing is linear.
    #[cfg(test)]
    examined: usize,
}

/// Parse one request from the front of `buf` with a fresh parser (for a
/// buffer that is not read into again).
pub fn parse_request(buf: &mut BytesMut, limits: &RequestLimits) -> Result<ParseOutcome, ProtocolError> {
    RequestParser::default().parse(buf, limits)
}

impl RequestParser {
    /// Parses the next request from the front of `buf`, going on from where
    /// the last call stopped: between calls, bytes may only be appended to
    /// `buf`. After an error the parser must not be used again.
    pub fn parse(&mut self, buf: &mut BytesMut, limits: &RequestLimits) -> Result<ParseOutcome, ProtocolError> {
        if buf.len() < self.need {
            return Ok(ParseOutcome::Incomplete { need: self.need });
        }
        let outcome = if self.remaining > 0 || buf.first() == Some(&b'*') {
            self.parse_multibulk(buf, limits)
        } else {
            self.parse_inline(buf)
        };
        match outcome {
            Ok(ParseOutcome::Incomplete { need }) => self.need = need,
            _ => self.need = 0,
        }
        outcome
    }

    /// The bytes of the arguments read so far of an incomplete request
    /// (CLIENT LIST's `argv-mem`).
    pub fn partial_args_bytes(&self) -> usize {
        self.spans_bytes
    }

    /// Reads a header line (`*3`, `$5`) whose number starts at `start`.
    /// Returns the number and the index after the line; None when the line
    /// is not complete yet.
    fn header_line(
        &mut self,
        buf: &[u8],
        start: usize,
        too_big: &str,
    ) -> Result<Option<(Option<i64>, usize)>, ProtocolError> {
        let line = match digits_line(buf, start) {
            Some((value, next)) => {
                #[cfg(test)]
                {
                    self.examined += next - start;
                }
                Some((Some(value), next))
            }
            None => {
                let from = self.searched.max(start);
                #[cfg(test)]
                {
                    self.examined += (buf.len() - start).min(DIGITS_LINE_MAX + 2) + buf.len() - from;
                }
                header_line_general(buf, start, from, too_big)?
            }
        };
        self.searched = if line.is_some() { 0 } else { buf.len() };
        Ok(line)
    }

    fn parse_multibulk(&mut self, buf: &mut BytesMut, limits: &RequestLimits) -> Result<ParseOutcome, ProtocolError> {
        if self.remaining == 0 {
            let Some((count, pos)) = self.header_line(buf, 1, "too big mbulk count string")? else {
                return Ok(ParseOutcome::Incomplete { need: buf.len() + 1 });
            };
            let count = match count {
                Some(n) if n <= i32::MAX as i64 => n,
                _ => return Err(ProtocolError("invalid multibulk length".into())),
            };
            if count > UNAUTHENTICATED_MAX_ARGS && limits.auth_required {
                return Err(ProtocolError("unauthenticated multibulk length".into()));
            }
            if count <= 0 {
                buf.advance(pos);
                return Ok(ParseOutcome::Request(Vec::new()));
            }
            self.remaining = count as usize;
            self.pos = pos;
            self.spans.clear();
            self.spans.reserve(self.remaining.min(1024));
        }
        while self.remaining > 0 {
            let len = match self.bulk_len {
                Some(len) => len,
                None => {
                    let pos = self.pos;
                    match buf.get(pos) {
                        None => return Ok(ParseOutcome::Incomplete { need: pos + 1 }),
                        Some(b'$') => {}
                        Some(&other) => return Err(ProtocolError(format!("expected '$', got '{}'", other as char))),
                    }
                    let Some((len, data)) = self.header_line(buf, pos + 1, "too big bulk count string")? else {
                        return Ok(ParseOutcome::Incomplete { need: buf.len() + 1 });
                    };
                    let len = match len {
                        Some(n) if n >= 0 && n <= limits.max_bulk_len => n as usize,
                        _ => return Err(ProtocolError("invalid bulk length".into())),
                    };
                    if len > UNAUTHENTICATED_MAX_BULK && limits.auth_required {
                        return Err(ProtocolError("unauthenticated bulk length".into()));
                    }
                    self.pos = data;
                    self.bulk_len = Some(len);
                    len
                }
            };
            // Like Redis, the two bytes after the data are skipped unchecked.
            let end = self.pos + len + 2;
            if end > buf.len() {
                return Ok(ParseOutcome::Incomplete { need: end });
            }
            self.spans.push((self.pos, self.pos + len));
            self.spans_bytes += len;
            self.pos = end;
            self.bulk_len = None;
            self.remaining -= 1;
        }
        let frame = buf.split_to(self.pos).freeze();
        self.pos = 0;
        self.spans_bytes = 0;
        Ok(ParseOutcome::Request(self.spans.drain(..).map(|(s, e)| frame.slice(s..e)).collect()))
    }

    fn parse_inline(&mut self, buf: &mut BytesMut) -> Result<ParseOutcome, ProtocolError> {
        #[cfg(test)]
        {
            self.examined += buf.len() - self.searched;
        }
        let Some(newline) = memchr(b'\n', &buf[self.searched..]).map(|at| at + self.searched) else {
            if buf.len() > INLINE_MAX {
                return Err(ProtocolError("too big inline request".into()));
            }
            self.searched = buf.len();
            return Ok(ParseOutcome::Incomplete { need: buf.len() + 1 });
        };
        self.searched = 0;
        let line_end = if newline > 0 && buf[newline - 1] == b'\r' { newline - 1 } else { newline };
        let args =
            split_inline_args(&buf[..line_end]).ok_or_else(|| ProtocolError("unbalanced quotes in request".into()))?;
        buf.advance(newline + 1);
        Ok(ParseOutcome::Request(args.into_iter().map(Bytes::from).collect()))
    }
}

/// Finds the line's `\n` at or after `from` (the bytes from `start` to
/// `from` hold none); returns the index of the `\r` before it, or of the
/// `\n` when the line ends in a bare one.
fn find_crlf(buf: &[u8], start: usize, from: usize) -> Option<usize> {
    let newline = memchr(b'\n', &buf[from..])? + from;
    // Redis looks for '\r' and requires the '\n' after it; a line ending in
    // a bare '\n' is handled by looking one byte back.
    if newline > start && buf[newline - 1] == b'\r' {
        Some(newline - 1)
    } else {
        Some(newline)
    }
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

/// The most digits `digits_line` reads: any such number fits in an i64.
const DIGITS_LINE_MAX: usize = 18;

/// What clients send, `\d+\r\n` without a leading zero, read in one pass
/// from `start`: the number and the index after the line. None for any
/// other line, or one not complete yet.
fn digits_line(buf: &[u8], start: usize) -> Option<(i64, usize)> {
    let digits = buf[start..].iter().take(DIGITS_LINE_MAX).take_while(|b| b.is_ascii_digit()).count();
    let end = start + digits;
    if digits > 0 && (buf[start] != b'0' || digits == 1) && buf.get(end..end + 2) == Some(b"\r\n") {
        let value = buf[start..end].iter().fold(0i64, |value, &b| value * 10 + i64::from(b - b'0'));
        return Some((value, end + 2));
    }
    None
}

/// A header line of any form, found by its end (searched for from `from`),
/// then parsed as Redis's `string2ll` does. `Ok(None)` when the line is not
/// complete yet.
fn header_line_general(
    buf: &[u8],
    start: usize,
    from: usize,
    too_big: &str,
) -> Result<Option<(Option<i64>, usize)>, ProtocolError> {
    let Some(cr) = find_crlf(buf, start, from) else {
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

/// Appends `args` as a RESP multibulk request, as clients send commands
/// (a replica's handshake, a master's stream to a Redis replica, tools).
pub fn encode_request<A: AsRef<[u8]>>(args: &[A], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        let arg = arg.as_ref();
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
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
                    RequestParser::default().header_line(buf, 1, "too big").map_err(|e| e.0),
                    header_line_general(buf, 1, 1, "too big").map_err(|e| e.0),
                    "{:?}",
                    String::from_utf8_lossy(buf)
                );
            }
        }
    }

    /// Feeds `wire` to one parser `piece` bytes at a time, as reads would
    /// bring it; returns the requests and the bytes the parser looked at.
    fn parse_in_pieces(wire: &[u8], piece: usize, limits: &RequestLimits) -> (Vec<Vec<Bytes>>, usize) {
        let mut parser = RequestParser::default();
        let mut buf = BytesMut::new();
        let mut requests = Vec::new();
        for chunk in wire.chunks(piece) {
            buf.extend_from_slice(chunk);
            while let ParseOutcome::Request(args) = parser.parse(&mut buf, limits).unwrap() {
                requests.push(args);
            }
        }
        assert!(buf.is_empty());
        (requests, parser.examined)
    }

    #[test]
    fn a_request_arriving_one_argument_at_a_time_is_read_once() {
        const ARGS: usize = 1_000_000;
        let mut wire = format!("*{ARGS}\r\n").into_bytes();
        for i in 0..ARGS {
            let arg = (i % 1000).to_string();
            wire.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
        }
        let one_argument = wire.len() / ARGS;
        let (requests, examined) = parse_in_pieces(&wire, one_argument, &RequestLimits::default());
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].len(), ARGS);
        assert_eq!(&requests[0][123_456][..], b"456");
        // Each header line is looked at about once, whatever the pieces:
        // never the whole request again on every read.
        assert!(examined <= 5 * wire.len(), "{examined} bytes examined for a request of {}", wire.len());
    }

    #[test]
    fn long_lines_arriving_byte_by_byte_are_searched_once() {
        let mut inline = vec![b'x'; 60_000];
        inline.extend_from_slice(b" y\r\n");
        let (requests, examined) = parse_in_pieces(&inline, 1, &RequestLimits::default());
        assert_eq!(requests, vec![vec![Bytes::from(vec![b'x'; 60_000]), Bytes::from_static(b"y")]]);
        assert!(examined <= 2 * inline.len(), "{examined} bytes examined for {}", inline.len());

        // A header line that does not end: refused once it is too long.
        let mut header = b"*1\r\n$".to_vec();
        header.extend(std::iter::repeat_n(b'1', INLINE_MAX + 1));
        let mut parser = RequestParser::default();
        let mut buf = BytesMut::new();
        let mut outcome = Ok(ParseOutcome::Incomplete { need: 0 });
        for &byte in &header {
            buf.extend_from_slice(&[byte]);
            outcome = parser.parse(&mut buf, &RequestLimits::default());
            if outcome.is_err() {
                break;
            }
        }
        assert_eq!(outcome.unwrap_err().to_string(), "Protocol error: too big bulk count string");
        assert!(parser.examined <= 30 * header.len(), "{} bytes examined for {}", parser.examined, header.len());
    }

    #[test]
    fn unauthenticated_clients_send_small_requests_only() {
        let limits = RequestLimits { auth_required: true, ..RequestLimits::default() };
        let parse = |input: &[u8]| RequestParser::default().parse(&mut BytesMut::from(input), &limits);
        let err = |input: &[u8]| parse(input).unwrap_err().to_string();
        assert_eq!(err(b"*11\r\n"), "Protocol error: unauthenticated multibulk length");
        assert!(parse(b"*10\r\n").is_ok());
        assert_eq!(err(b"*1\r\n$16385\r\n"), "Protocol error: unauthenticated bulk length");
        assert!(parse(b"*1\r\n$16384\r\n").is_ok());
        // Redis checks the count first: a bad one is still invalid.
        assert_eq!(err(b"*3000000000\r\n"), "Protocol error: invalid multibulk length");
        assert_eq!(err(b"*1\r\n$-1\r\n"), "Protocol error: invalid bulk length");
        let authenticated = RequestLimits::default();
        let mut big = BytesMut::from(&b"*11\r\n$16385\r\n"[..]);
        assert!(RequestParser::default().parse(&mut big, &authenticated).is_ok());
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
