//! The record format shared by segments, journals and the catalog and reference files:
//! `[u32 payload length][u32 crc32 of payload][payload]`, little-endian, payload in bincode.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::{Candidate, ReferenceData};

/// Bytes before a record's payload: its length and its checksum.
pub const HEADER_LEN: usize = 8;

/// One journaled operation; segments hold the journal of the run that wrote them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Op {
    /// Insert or replace an opportunity.
    Upsert(Box<Candidate>),
    /// Remove an opportunity.
    Delete(String),
    /// Replace the reference data at commit.
    Reference(ReferenceData),
    /// Free-form resume state of the run in progress.
    Checkpoint {
        /// The checkpoint's name.
        key: String,
        /// Its value.
        value: String,
    },
}

/// Frames a payload as a record.
pub fn encode_record(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Encodes an operation's payload.
pub fn encode_op(op: &Op) -> Result<Vec<u8>, String> {
    bincode::serde::encode_to_vec(op, bincode::config::standard()).map_err(|e| e.to_string())
}

/// Decodes an operation's payload.
pub fn decode_op(payload: &[u8]) -> Result<Op, String> {
    bincode::serde::decode_from_slice(payload, bincode::config::standard())
        .map(|(op, _)| op)
        .map_err(|e| e.to_string())
}

/// The payload of the record at `start` whose payload is expected to be `len` bytes long,
/// after checking its header and checksum.
pub fn record_payload(bytes: &[u8], start: usize, len: usize) -> Result<&[u8], String> {
    let header = bytes
        .get(start..start + HEADER_LEN)
        .ok_or("record header is truncated")?;
    let stored_len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if stored_len != len {
        return Err(format!(
            "record length {stored_len} where {len} was expected"
        ));
    }
    let payload = bytes
        .get(start + HEADER_LEN..start + HEADER_LEN + len)
        .ok_or("record payload is truncated")?;
    if crc32fast::hash(payload) != crc {
        return Err("record checksum does not match".into());
    }
    Ok(payload)
}

/// Reads the record at `start` of a journal: `Some((payload, next_start))`, or `None` where
/// the journal ends or its tail was torn by a crash.
pub fn next_record(bytes: &[u8], start: usize) -> Option<(&[u8], usize)> {
    let header = bytes.get(start..start + HEADER_LEN)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let payload = record_payload(bytes, start, len).ok()?;
    Some((payload, start + HEADER_LEN + len))
}

/// A stable content fingerprint of an encoded candidate (the first 8 bytes of its SHA-256).
pub fn fingerprint(payload: &[u8]) -> u64 {
    let digest = Sha256::digest(payload);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}
