//! Strata: a Redis-protocol server that keeps strings and hashes in RocksDB
//! and lists, sets, sorted sets and streams in memory. See DESIGN.md.

pub mod blocking;
pub mod checkpoint_interval;
pub mod client;
pub mod cluster;
pub mod codec;
pub mod commands;
pub mod config;
pub mod connection;
pub mod cursor;
pub mod error;
pub mod glob;
pub mod keyspace;
pub mod loading;
pub mod long_double;
pub mod memory_usage;
pub mod metrics;
pub mod notify;
pub mod protocol;
pub mod pubsub;
pub mod rdb;
pub mod recovery;
pub mod replication;
pub mod server;
pub mod snapshot;
pub mod stats;
pub mod tracking;
