//! The wire protocol: requests in (RESP multibulk and inline), replies out
//! (RESP2 or RESP3). Knows nothing about commands or storage.

mod output;
mod reply;
mod request;

pub use output::{OutputBuffer, OutputMark};
pub use reply::{encode_double, RandomPicks, RandomPicksBuilder, Reply, ReplyEncoder, ReplySink};
pub use request::{
    encode_request, parse_i64, parse_request, split_inline_args, ParseOutcome, ProtocolError, RequestLimits,
    RequestParser,
};
