//! A connection's replies that are not sent yet, laid out as Redis lays out
//! a client's output: a small buffer that replies are encoded into, and a
//! list of older blocks behind it (CLIENT LIST's `obl`, `oll`, `omem`). A
//! `RandomPicks` reply waits in the list and is produced a chunk at a time
//! as the socket takes it.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

use super::reply::{RandomPicks, Reply, ReplyEncoder, ReplySink};

/// The buffer moves to the list once it holds this much (Redis's
/// PROTO_REPLY_CHUNK_BYTES).
const BLOCK_BYTES: usize = 16 * 1024;

/// How much of a `RandomPicks` reply is produced at a time.
const PRODUCE_BYTES: usize = 64 * 1024;

/// Most blocks handed to one vectored write.
const WRITE_SLICES: usize = 64;

/// Replies waiting for the socket, oldest first.
#[derive(Default)]
pub struct OutputBuffer {
    /// Older output, in order.
    list: VecDeque<Pending>,
    /// Bytes the list holds: its blocks, and the items of its replies still
    /// to be produced.
    list_bytes: usize,
    /// The newest output, after everything in the list.
    buf: BytesMut,
}

enum Pending {
    Block(Bytes),
    Picks(Box<RandomPicks>),
}

/// Where the next reply starts in an `OutputBuffer` (`OutputBuffer::truncate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputMark {
    list: usize,
    buf: usize,
}

impl Pending {
    fn memory(&self) -> usize {
        match self {
            Pending::Block(block) => block.len(),
            Pending::Picks(picks) => picks.memory(),
        }
    }
}

impl ReplySink for OutputBuffer {
    fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    fn random_picks(&mut self, picks: Box<RandomPicks>) {
        self.buf_to_list();
        self.push_back(Pending::Picks(picks));
    }
}

impl OutputBuffer {
    /// Encodes a reply after everything already waiting.
    pub fn push_reply(&mut self, encoder: ReplyEncoder, reply: &Reply) {
        encoder.encode(reply, self);
        if self.buf.len() >= BLOCK_BYTES {
            self.buf_to_list();
        }
    }

    /// Where the next reply starts.
    pub fn mark(&self) -> OutputMark {
        OutputMark { list: self.list.len(), buf: self.buf.len() }
    }

    /// Drops the replies pushed since `mark`, none of them written yet
    /// (the connection writes nothing of them before the log has their
    /// records: it refuses them when it has not).
    pub fn truncate(&mut self, mark: OutputMark) {
        if self.list.len() == mark.list {
            self.buf.truncate(mark.buf);
            return;
        }
        // The buffer as it was at the mark went to the list first, as
        // block `mark.list`: its bytes come back to the buffer.
        let kept = match self.list.get(mark.list) {
            Some(Pending::Block(block)) => block.slice(..mark.buf),
            _ => Bytes::new(),
        };
        while self.list.len() > mark.list {
            let dropped = self.list.pop_back().expect("longer than the mark");
            self.list_bytes -= dropped.memory();
        }
        self.buf.clear();
        self.buf.extend_from_slice(&kept);
    }

    /// Nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty() && self.buf.is_empty()
    }

    /// Memory the waiting replies hold.
    pub fn bytes(&self) -> usize {
        self.list_bytes + self.buf.len()
    }

    /// Bytes in the buffer (CLIENT LIST `obl`).
    pub fn buffer_len(&self) -> usize {
        self.buf.len()
    }

    /// The buffer's allocation.
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Blocks and replies in the list (CLIENT LIST `oll`).
    pub fn list_len(&self) -> usize {
        self.list.len()
    }

    /// Memory the list holds (CLIENT LIST `omem`; what the output buffer
    /// limits are checked against, as in Redis).
    pub fn list_bytes(&self) -> usize {
        self.list_bytes
    }

    /// Writes as much as the socket takes now, producing picked replies as
    /// it goes. Returns the bytes written; stops at the first write that
    /// would block.
    pub fn write_to(&mut self, socket: &tokio::net::TcpStream) -> std::io::Result<usize> {
        let mut written = 0;
        loop {
            self.produce_front();
            let attempt = if self.list.is_empty() {
                if self.buf.is_empty() {
                    return Ok(written);
                }
                socket.try_write(&self.buf).map(|n| (n, self.buf.len()))
            } else {
                let mut slices = [IoSlice::new(&[]); WRITE_SLICES];
                let mut count = 0;
                for pending in self.list.iter().take(WRITE_SLICES) {
                    let Pending::Block(block) = pending else { break };
                    slices[count] = IoSlice::new(block);
                    count += 1;
                }
                if count == self.list.len() && count < WRITE_SLICES && !self.buf.is_empty() {
                    slices[count] = IoSlice::new(&self.buf);
                    count += 1;
                }
                let offered = slices[..count].iter().map(|slice| slice.len()).sum();
                socket.try_write_vectored(&slices[..count]).map(|n| (n, offered))
            };
            let (n, offered) = match attempt {
                Ok(done) => done,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(written),
                Err(e) => return Err(e),
            };
            self.consume(n);
            written += n;
            if n < offered {
                return Ok(written);
            }
        }
    }

    /// Drops `n` written bytes from the front.
    fn consume(&mut self, mut n: usize) {
        while let Some(Pending::Block(block)) = self.list.front_mut() {
            let taken = n.min(block.len());
            block.advance(taken);
            self.list_bytes -= taken;
            n -= taken;
            if !block.is_empty() {
                return;
            }
            self.list.pop_front();
        }
        if n == self.buf.len() {
            self.buf.clear();
        } else {
            self.buf.advance(n);
        }
    }

    /// When the list starts with a picked reply, produces its next chunk as
    /// a block in front of it (and drops it once it is whole).
    fn produce_front(&mut self) {
        while let Some(Pending::Picks(picks)) = self.list.front_mut() {
            let mut chunk = BytesMut::with_capacity(PRODUCE_BYTES + BLOCK_BYTES);
            if !picks.produce(&mut chunk, PRODUCE_BYTES) {
                let done = self.list.pop_front().expect("the front was a reply");
                self.list_bytes -= done.memory();
            }
            if !chunk.is_empty() {
                self.list_bytes += chunk.len();
                self.list.push_front(Pending::Block(chunk.freeze()));
            }
        }
    }

    fn buf_to_list(&mut self) {
        if !self.buf.is_empty() {
            let block = self.buf.split().freeze();
            self.push_back(Pending::Block(block));
        }
    }

    fn push_back(&mut self, pending: Pending) {
        self.list_bytes += pending.memory();
        self.list.push_back(pending);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoder() -> ReplyEncoder {
        ReplyEncoder { resp3: false }
    }

    /// Takes everything out as a socket would, `take` bytes at a time.
    fn drain(output: &mut OutputBuffer, take: usize) -> Vec<u8> {
        let mut sent = Vec::new();
        while !output.is_empty() {
            output.produce_front();
            let front: Vec<u8> = match output.list.front() {
                Some(Pending::Block(block)) => block.to_vec(),
                Some(Pending::Picks(_)) => unreachable!("produced"),
                None => output.buf.to_vec(),
            };
            let n = take.min(front.len());
            sent.extend_from_slice(&front[..n]);
            output.consume(n);
        }
        sent
    }

    #[test]
    fn replies_go_out_in_order_and_big_ones_wait_in_the_list() {
        let mut output = OutputBuffer::default();
        let big = Reply::bulk(vec![b'v'; 100_000]);
        output.push_reply(encoder(), &Reply::Status("OK"));
        assert_eq!((output.buffer_len(), output.list_len(), output.list_bytes()), (5, 0, 0));
        output.push_reply(encoder(), &big);
        assert_eq!(output.buffer_len(), 0);
        assert_eq!(output.list_len(), 1);
        assert_eq!(output.list_bytes(), 5 + 9 + 100_000 + 2);
        output.push_reply(encoder(), &Reply::Integer(7));
        let mut expected = BytesMut::new();
        for reply in [&Reply::Status("OK"), &big, &Reply::Integer(7)] {
            encoder().encode(reply, &mut expected);
        }
        assert_eq!(drain(&mut output, 3000), expected);
        assert_eq!((output.bytes(), output.list_len()), (0, 0));
    }

    #[test]
    fn random_picks_are_produced_as_they_are_sent_in_bounded_memory() {
        let mut builder = RandomPicks::builder(false);
        for member in ["a", "bb", "ccc"] {
            builder.push(&[Reply::bulk_str(member)]);
        }
        let picks = 1_000_000u64;
        let reply = builder.finish(picks, picks);
        let mut output = OutputBuffer::default();
        output.push_reply(encoder(), &Reply::Status("OK"));
        output.push_reply(encoder(), &Reply::Array(vec![Reply::Integer(1), reply]));
        output.push_reply(encoder(), &Reply::Integer(2));
        let mut sent = Vec::new();
        let mut most = 0;
        while !output.is_empty() {
            most = most.max(output.bytes());
            sent.extend(drain_one(&mut output));
        }
        assert!(most < 200_000, "{most} bytes held");
        let text = String::from_utf8(sent).unwrap();
        let rest = text.strip_prefix("+OK\r\n*2\r\n:1\r\n*1000000\r\n").unwrap();
        let rest = rest.strip_suffix(":2\r\n").unwrap();
        let items: Vec<&str> = rest.split("\r\n").filter(|line| !line.starts_with('$') && !line.is_empty()).collect();
        assert_eq!(items.len(), picks as usize);
        assert!(items.iter().all(|item| ["a", "bb", "ccc"].contains(item)));
        // Every item is picked, about as often as the others.
        for member in ["a", "bb", "ccc"] {
            let count = items.iter().filter(|item| **item == member).count();
            assert!(count > 300_000, "{member}: {count}");
        }
    }

    /// Takes one block (or the buffer) out.
    fn drain_one(output: &mut OutputBuffer) -> Vec<u8> {
        output.produce_front();
        let front = match output.list.front() {
            Some(Pending::Block(block)) => block.to_vec(),
            _ => output.buf.to_vec(),
        };
        output.consume(front.len());
        front
    }

    #[test]
    fn truncating_to_a_mark_drops_exactly_the_replies_after_it() {
        let bulk = |n: usize| Reply::Bulk(Bytes::from(vec![b'x'; n]));
        for (before, after) in [(10, 10), (10, 40_000), (20_000, 10), (20_000, 40_000), (0, 40_000)] {
            let mut output = OutputBuffer::default();
            let mut expected = OutputBuffer::default();
            for reply in [bulk(before), Reply::Integer(7)] {
                output.push_reply(encoder(), &reply);
                expected.push_reply(encoder(), &reply);
            }
            let mark = output.mark();
            for _ in 0..3 {
                output.push_reply(encoder(), &bulk(after));
            }
            output.truncate(mark);
            assert_eq!(output.mark(), mark, "{before} then {after}");
            output.push_reply(encoder(), &Reply::Error("ERR refused".into()));
            expected.push_reply(encoder(), &Reply::Error("ERR refused".into()));
            assert_eq!(drain(&mut output, 1000), drain(&mut expected, 1000), "{before} then {after}");
        }
    }
}
