//! Replies are values; only the connection turns them into bytes, in RESP2
//! or RESP3 depending on what the client asked for with HELLO.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One reply to a client.
#[derive(Debug, Clone)]
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
    /// A reply already encoded, the same in RESP2 and RESP3 (see
    /// `bulk_array`).
    Encoded(Bytes),
    /// An array of items picked at random, produced as the client reads
    /// it (see `RandomPicks`; boxed, as it is large and rare).
    RandomPicks(Box<RandomPicks>),
    /// Nothing is written: SHUTDOWN closes the connection instead.
    NoReply,
    /// Replies one after another: SUBSCRIBE answers once per channel.
    Several(Vec<Reply>),
}

/// Replies are equal when a client sees the same bytes from them, in
/// RESP2 and in RESP3: an `Encoded` reply equals the value it was built
/// from.
impl PartialEq for Reply {
    fn eq(&self, other: &Reply) -> bool {
        [false, true].into_iter().all(|resp3| {
            let encoder = ReplyEncoder { resp3 };
            let (mut ours, mut theirs) = (BytesMut::new(), BytesMut::new());
            encoder.encode(self, &mut ours);
            encoder.encode(other, &mut theirs);
            ours == theirs
        })
    }
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

    /// An array of `len` bulk strings, encoded as it is built: a long
    /// reply (LRANGE) costs one buffer instead of a `Bytes` and a `Reply`
    /// per item, which were a quarter of LRANGE's profile.
    pub fn bulk_array<'a>(len: usize, items: impl IntoIterator<Item = &'a [u8]>) -> Reply {
        let mut out = BytesMut::new();
        integer(&mut out, b'*', len as i64);
        let mut count = 0;
        for item in items {
            bulk(&mut out, item);
            count += 1;
        }
        debug_assert_eq!(count, len, "the array's length is its items' count");
        Reply::Encoded(out.freeze())
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
    // A whole number of at most 17 digits prints exactly, as an integer:
    // most scores are, and going through `format!` twice was a tenth of
    // ZPOPMIN's CPU.
    if value.fract() == 0.0 && value.abs() < 1e17 {
        return itoa::Buffer::new().format(value as i64).to_string();
    }
    format_g17_general(value)
}

fn format_g17_general(value: f64) -> String {
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

/// An array reply of `picks` items, each chosen at random (repeats
/// allowed) from a fixed list of encoded items: SRANDMEMBER, ZRANDMEMBER
/// and HRANDFIELD with a negative count. A connection produces it as the
/// socket takes it, so `SRANDMEMBER s -100000000000` holds the key's items
/// and one chunk, never the whole reply. The items are encoded when the
/// command runs, in the client's protocol then.
#[derive(Clone)]
pub struct RandomPicks {
    /// The items, one after another; item `i` ends at `ends[i]`.
    items: Bytes,
    ends: Arc<[usize]>,
    /// The array's header (`*N\r\n`), until it is produced.
    header: Option<u64>,
    picks_left: u64,
    rng: StdRng,
}

impl std::fmt::Debug for RandomPicks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RandomPicks").field("items", &self.ends.len()).field("picks_left", &self.picks_left).finish()
    }
}

/// Collects the items a `RandomPicks` reply picks from.
pub struct RandomPicksBuilder {
    encoder: ReplyEncoder,
    items: BytesMut,
    ends: Vec<usize>,
}

impl RandomPicksBuilder {
    /// Adds one item, made of `parts` one after another (a member and its
    /// score in RESP2 are one item of two array elements).
    pub fn push(&mut self, parts: &[Reply]) {
        for part in parts {
            self.encoder.encode(part, &mut self.items);
        }
        self.ends.push(self.items.len());
    }

    /// The reply: an array of `len` elements made of `picks` items. There
    /// must be at least one item to pick from.
    pub fn finish(self, len: u64, picks: u64) -> Reply {
        assert!(!self.ends.is_empty() || picks == 0, "picks need items to pick from");
        Reply::RandomPicks(Box::new(RandomPicks {
            items: self.items.freeze(),
            ends: self.ends.into(),
            header: Some(len),
            picks_left: picks,
            rng: StdRng::from_rng(&mut rand::rng()),
        }))
    }
}

impl RandomPicks {
    /// Collects items encoded for a client speaking RESP3 or RESP2.
    pub fn builder(resp3: bool) -> RandomPicksBuilder {
        RandomPicksBuilder { encoder: ReplyEncoder { resp3 }, items: BytesMut::new(), ends: Vec::new() }
    }

    /// Whether `picks` picks from `items` items are better produced as the
    /// client reads them than built whole: more picks than items (the
    /// items are copied once and the picks are never all held), and more
    /// than a short reply's worth.
    pub fn worth_streaming(picks: u64, items: u64) -> bool {
        picks > 1024 && picks > items
    }

    /// The memory it holds: its items (bounded by the key they came from).
    pub fn memory(&self) -> usize {
        self.items.len() + self.ends.len() * std::mem::size_of::<usize>()
    }

    /// Appends what is left of the reply to `out` until `out` holds at
    /// least `upto` bytes; false once the whole reply is produced.
    pub fn produce(&mut self, out: &mut BytesMut, upto: usize) -> bool {
        if let Some(len) = self.header.take() {
            integer(out, b'*', len as i64);
        }
        while self.picks_left > 0 && out.len() < upto {
            let pick = self.rng.random_range(0..self.ends.len());
            let start = if pick == 0 { 0 } else { self.ends[pick - 1] };
            out.put_slice(&self.items[start..self.ends[pick]]);
            self.picks_left -= 1;
        }
        self.picks_left > 0
    }
}

/// Where replies are encoded: a plain buffer, or a connection's output,
/// which keeps a `RandomPicks` to produce as the socket drains.
pub trait ReplySink {
    /// The buffer encoded bytes go to.
    fn buffer(&mut self) -> &mut BytesMut;
    /// A reply to produce after what is in the buffer so far.
    fn random_picks(&mut self, picks: Box<RandomPicks>);
}

/// A plain buffer produces a `RandomPicks` reply whole.
impl ReplySink for BytesMut {
    fn buffer(&mut self) -> &mut BytesMut {
        self
    }

    fn random_picks(&mut self, mut picks: Box<RandomPicks>) {
        while picks.produce(self, usize::MAX) {}
    }
}

/// Writes replies into an output buffer in the client's protocol version.
#[derive(Clone, Copy)]
pub struct ReplyEncoder {
    pub resp3: bool,
}

impl ReplyEncoder {
    pub fn encode(&self, reply: &Reply, sink: &mut impl ReplySink) {
        let out = sink.buffer();
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
            Reply::Array(items) => self.aggregate(sink, b'*', items),
            Reply::Set(items) => self.aggregate(sink, if self.resp3 { b'~' } else { b'*' }, items),
            Reply::Push(items) => self.aggregate(sink, if self.resp3 { b'>' } else { b'*' }, items),
            Reply::Map(pairs) => {
                if self.resp3 {
                    integer(out, b'%', pairs.len() as i64);
                } else {
                    integer(out, b'*', 2 * pairs.len() as i64);
                }
                for (key, value) in pairs {
                    self.encode(key, sink);
                    self.encode(value, sink);
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
            Reply::Encoded(bytes) => out.put_slice(bytes),
            Reply::RandomPicks(picks) => sink.random_picks(picks.clone()),
            Reply::NoReply => {}
            Reply::Several(replies) => replies.iter().for_each(|reply| self.encode(reply, sink)),
        }
    }

    fn aggregate(&self, sink: &mut impl ReplySink, marker: u8, items: &[Reply]) {
        integer(sink.buffer(), marker, items.len() as i64);
        for item in items {
            self.encode(item, sink);
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
    fn an_encoded_bulk_array_is_the_array_it_encodes() {
        let items: [&[u8]; 3] = [b"a", b"", b"\r\n\x00"];
        let encoded = Reply::bulk_array(items.len(), items);
        assert!(matches!(encoded, Reply::Encoded(_)));
        assert_eq!(encode(encoded.clone(), false), b"*3\r\n$1\r\na\r\n$0\r\n\r\n$3\r\n\r\n\x00\r\n");
        assert_eq!(encode(encoded.clone(), true), encode(encoded.clone(), false));
        assert_eq!(encoded, Reply::bulks(items.map(Bytes::copy_from_slice)));
        assert_ne!(encoded, Reply::bulks(items[..2].iter().map(|i| Bytes::copy_from_slice(i))));
        // A set encodes as an array in RESP2 only: not the same reply.
        assert_ne!(encoded, Reply::Set(items.iter().map(|i| Reply::bulk(Bytes::copy_from_slice(i))).collect()));
        assert_eq!(Reply::bulk_array(0, []), Reply::Array(Vec::new()));
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
        // Whole numbers take a shortcut that must print what `%.17g` does.
        let mut whole: Vec<f64> = vec![1e16, 1e17 - 16.0, 9_007_199_254_740_993.0, 123.0, 1e15 + 1.0];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..10_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            whole.push((seed >> (seed % 64)) as f64 % 1e17);
        }
        for value in whole.iter().flat_map(|v| [*v, -*v]).filter(|v| *v != 0.0) {
            assert_eq!(encode_double(value), format_g17_general(value), "{value}");
        }
        assert_eq!(encode_double(1e17), "1e+17");
        assert_eq!(encode_double(-0.0), "-0");
    }
}
