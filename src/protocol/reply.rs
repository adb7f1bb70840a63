//! Replies are values; only the connection turns them into bytes, in RESP2
//! or RESP3 depending on what the client asked for with HELLO.

use bytes::{BufMut, Bytes, BytesMut};

/// One reply to a client.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`: a simple string with no CR or LF in it.
    Status(&'static str),
    /// A simple string built at run time (`+` in RESP2 and RESP3).
    StatusOwned(String),
    /// `-ERR ...`: the text includes the error code (`ERR`, `WRONGTYPE` ...).
    Error(String),
    Integer(i64),
    Bulk(Bytes),
    /// The null bulk string (`$-1`), RESP3 `_`.
    Nil,
    /// The null array (`*-1`), RESP3 `_`.
    NilArray,
    Array(Vec<Reply>),
    /// A map in RESP3; a flat array of key, value, ... in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// A set in RESP3; an array in RESP2.
    Set(Vec<Reply>),
    /// A double in RESP3; a bulk string in RESP2.
    Double(f64),
    /// A boolean in RESP3; the integer 1 or 0 in RESP2.
    Bool(bool),
    /// Verbatim text (`=` with a 3-letter format) in RESP3; bulk in RESP2.
    Verbatim(&'static str, Bytes),
    /// An out-of-band push (RESP3 `>`); an array in RESP2.
    Push(Vec<Reply>),
    /// Nothing is written: SHUTDOWN closes the connection instead.
    NoReply,
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::Status("OK")
    }

    pub fn bulk(data: impl Into<Bytes>) -> Reply {
        Reply::Bulk(data.into())
    }

    pub fn bulk_str(text: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(text.as_bytes()))
    }

    /// A bulk reply or nil.
    pub fn opt_bulk(data: Option<impl Into<Bytes>>) -> Reply {
        data.map_or(Reply::Nil, |d| Reply::Bulk(d.into()))
    }

    pub fn bulks<I: IntoIterator<Item = B>, B: Into<Bytes>>(items: I) -> Reply {
        Reply::Array(items.into_iter().map(|b| Reply::Bulk(b.into())).collect())
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
}

/// Formats a double the way Redis's `addReplyDouble` does: `inf`, `-inf`,
/// `nan`, otherwise `%.17g`.
pub fn encode_double(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if value.is_nan() {
        return "nan".into();
    }
    format_g17(value)
}

/// C's `%.17g`.
fn format_g17(value: f64) -> String {
    if value == 0.0 {
        return if value.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let sci = format!("{:.16e}", value);
    let (mantissa, exp) = sci.split_once('e').expect("exponent");
    let exp: i32 = exp.parse().expect("exponent digits");
    if !(-5..17).contains(&exp) {
        let mantissa = trim_fraction(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{}{:02}", mantissa, sign, exp.abs())
    } else {
        let decimals = (16 - exp).max(0) as usize;
        trim_fraction(&format!("{:.*}", decimals, value)).to_string()
    }
}

fn trim_fraction(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

/// Writes replies into an output buffer in the client's protocol version.
pub struct ReplyEncoder {
    pub resp3: bool,
}

impl ReplyEncoder {
    pub fn encode(&self, reply: &Reply, out: &mut BytesMut) {
        match reply {
            Reply::Status(text) => line(out, b'+', text.as_bytes()),
            Reply::StatusOwned(text) => line(out, b'+', text.as_bytes()),
            Reply::Error(text) => line(out, b'-', text.as_bytes()),
            Reply::Integer(n) => integer(out, b':', *n),
            Reply::Bulk(data) => bulk(out, data),
            Reply::Nil if self.resp3 => out.put_slice(b"_\r\n"),
            Reply::Nil => out.put_slice(b"$-1\r\n"),
            Reply::NilArray if self.resp3 => out.put_slice(b"_\r\n"),
            Reply::NilArray => out.put_slice(b"*-1\r\n"),
            Reply::Array(items) => self.aggregate(out, b'*', items),
            Reply::Set(items) => self.aggregate(out, if self.resp3 { b'~' } else { b'*' }, items),
            Reply::Push(items) => self.aggregate(out, if self.resp3 { b'>' } else { b'*' }, items),
            Reply::Map(pairs) => {
                if self.resp3 {
                    integer(out, b'%', pairs.len() as i64);
                } else {
                    integer(out, b'*', 2 * pairs.len() as i64);
                }
                for (key, value) in pairs {
                    self.encode(key, out);
                    self.encode(value, out);
                }
            }
            Reply::Double(value) => {
                let text = encode_double(*value);
                if self.resp3 {
                    line(out, b',', text.as_bytes());
                } else {
                    bulk(out, text.as_bytes());
                }
            }
            Reply::Bool(value) if self.resp3 => out.put_slice(if *value { b"#t\r\n" } else { b"#f\r\n" }),
            Reply::Bool(value) => integer(out, b':', *value as i64),
            Reply::Verbatim(format, text) if self.resp3 => {
                integer(out, b'=', (text.len() + 4) as i64);
                out.put_slice(format.as_bytes());
                out.put_u8(b':');
                out.put_slice(text);
                out.put_slice(b"\r\n");
            }
            Reply::Verbatim(_, text) => bulk(out, text),
            Reply::NoReply => {}
        }
    }

    fn aggregate(&self, out: &mut BytesMut, marker: u8, items: &[Reply]) {
        integer(out, marker, items.len() as i64);
        for item in items {
            self.encode(item, out);
        }
    }
}

fn line(out: &mut BytesMut, marker: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.put_u8(marker);
    out.put_slice(text);
    out.put_slice(b"\r\n");
}

fn integer(out: &mut BytesMut, marker: u8, value: i64) {
    let mut digits = itoa::Buffer::new();
    line(out, marker, digits.format(value).as_bytes());
}

fn bulk(out: &mut BytesMut, data: &[u8]) {
    integer(out, b'$', data.len() as i64);
    out.reserve(data.len() + 2);
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(reply: Reply, resp3: bool) -> Vec<u8> {
        let mut out = BytesMut::new();
        ReplyEncoder { resp3 }.encode(&reply, &mut out);
        out.to_vec()
    }

    #[test]
    fn resp2_and_resp3_shapes() {
        let map = Reply::Map(vec![(Reply::bulk_str("a"), Reply::Integer(1))]);
        assert_eq!(encode(map.clone(), false), b"*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(encode(map, true), b"%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(encode(Reply::Nil, false), b"$-1\r\n");
        assert_eq!(encode(Reply::NilArray, false), b"*-1\r\n");
        assert_eq!(encode(Reply::Nil, true), b"_\r\n");
        assert_eq!(encode(Reply::Double(1.5), false), b"$3\r\n1.5\r\n");
        assert_eq!(encode(Reply::Double(1.5), true), b",1.5\r\n");
        assert_eq!(encode(Reply::Bool(true), false), b":1\r\n");
        assert_eq!(encode(Reply::Verbatim("txt", Bytes::from_static(b"hi")), true), b"=6\r\ntxt:hi\r\n");
    }

    #[test]
    fn doubles_print_like_redis() {
        assert_eq!(encode_double(f64::INFINITY), "inf");
        assert_eq!(encode_double(f64::NEG_INFINITY), "-inf");
        assert_eq!(encode_double(1.0), "1");
        assert_eq!(encode_double(0.1), "0.10000000000000001");
        assert_eq!(encode_double(3.0e20), "3e+20");
        assert_eq!(encode_double(1.5e-7), "1.4999999999999999e-07");
        assert_eq!(encode_double(123456.789), "123456.789");
        assert_eq!(encode_double(-2.5), "-2.5");
    }
}
