//! The bus protocol: frames and the messages they carry.
//!
//! # Format
//! A frame is a u32 big-endian length, then that many bytes: one kind byte
//! and the body. Raft frames carry JSON of [`RaftRequest`] / [`RaftReply`];
//! App frames carry the host's bytes untouched (pub/sub fan-out should not
//! pay for JSON arrays of numbers); an Error frame carries a UTF-8 reason.
//! A connection carries one request at a time: request frame, reply frame.

use std::io;

use openraft::error::InstallSnapshotError;
use openraft::error::RaftError;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::InstallSnapshotRequest;
use openraft::raft::InstallSnapshotResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use serde::Deserialize;
use serde::Serialize;
use tokio::io::AsyncRead;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWrite;
use tokio::io::AsyncWriteExt;

use super::Applied;
use super::BusNode;
use super::Machine;
use super::TypeConfig;

/// Kind byte of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Raft = 1,
    App = 2,
    Error = 3,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Kind> {
        match byte {
            1 => Some(Kind::Raft),
            2 => Some(Kind::App),
            3 => Some(Kind::Error),
            _ => None,
        }
    }
}

/// Frames longer than this are refused: a garbage length must not make us
/// allocate gigabytes. The whole configuration fits many times over.
pub(crate) const MAX_FRAME: usize = 64 << 20;

/// A request a node sends to another node's raft.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub(crate) enum RaftRequest<M: Machine> {
    AppendEntries(AppendEntriesRequest<TypeConfig<M>>),
    Vote(VoteRequest<u64>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig<M>>),
    /// Something only the leader can do, forwarded to it.
    Leader(LeaderOp<M>),
}

/// The answer to a [`RaftRequest`] of the same name.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub(crate) enum RaftReply<M: Machine> {
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    /// A write's response, or `Applied::Raft` for a membership change.
    Leader(Result<Applied<M::Response>, Refusal>),
}

/// An operation that must run on the leader.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub(crate) enum LeaderOp<M: Machine> {
    Write(M::Entry),
    AddLearner { id: u64, node: BusNode },
    Promote(u64),
    Remove(u64),
}

impl<M: Machine> Clone for LeaderOp<M> {
    fn clone(&self) -> Self {
        match self {
            LeaderOp::Write(entry) => LeaderOp::Write(entry.clone()),
            LeaderOp::AddLearner { id, node } => LeaderOp::AddLearner { id: *id, node: node.clone() },
            LeaderOp::Promote(id) => LeaderOp::Promote(*id),
            LeaderOp::Remove(id) => LeaderOp::Remove(*id),
        }
    }
}

/// Why a node did not carry out a [`LeaderOp`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Refusal {
    /// It is not the leader; the leader it knows of, if any. Nothing was done,
    /// so the op can be sent there.
    NotLeader(Option<(u64, BusNode)>),
    /// Nothing was done, but may be shortly (a membership change is still
    /// under way).
    Busy(String),
    /// The leader took the op but could not commit it in time (it may still
    /// commit).
    Uncommitted,
    /// A new learner was added but did not catch up in time.
    LearnerLagging { id: u64 },
    /// Raft on that node has stopped.
    Stopped(String),
    /// Refused for good (bad membership change, storage failure).
    Failed(String),
}

/// Writes one frame and flushes it.
pub(crate) async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, kind: Kind, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len() + 1)
        .ok()
        .filter(|&len| len as usize <= MAX_FRAME)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too long"))?;
    let mut frame = Vec::with_capacity(5 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.push(kind as u8);
    frame.extend_from_slice(body);
    writer.write_all(&frame).await?;
    writer.flush().await
}

/// Reads one frame. `Ok(None)` when the peer closed the connection between
/// frames; a bad length or kind is `InvalidData` (the caller drops the
/// connection: after garbage, frame boundaries are lost).
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> io::Result<Option<(Kind, Vec<u8>)>> {
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("bad frame length {len}")));
    }
    let kind = Kind::from_byte(reader.read_u8().await?)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad frame kind"))?;
    let mut body = vec![0u8; len - 1];
    reader.read_exact(&mut body).await?;
    Ok(Some((kind, body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_garbage_is_refused() {
        let mut buf = Vec::new();
        write_frame(&mut buf, Kind::App, b"hello").await.unwrap();
        write_frame(&mut buf, Kind::Raft, b"").await.unwrap();
        let mut reader = &buf[..];
        assert_eq!(read_frame(&mut reader).await.unwrap(), Some((Kind::App, b"hello".to_vec())));
        assert_eq!(read_frame(&mut reader).await.unwrap(), Some((Kind::Raft, Vec::new())));
        assert_eq!(read_frame(&mut reader).await.unwrap(), None);

        let too_long = ((MAX_FRAME + 1) as u32).to_be_bytes();
        assert!(read_frame(&mut &too_long[..]).await.is_err());
        assert!(read_frame(&mut &[0, 0, 0, 0][..]).await.is_err());
        assert!(read_frame(&mut &[0, 0, 0, 2, 9, 0][..]).await.is_err());
        // Truncated body.
        assert!(read_frame(&mut &[0, 0, 0, 9, 2, 1][..]).await.is_err());
    }
}
