//! The kinds of damage a verifier can find in a chain (shared by the chain rules and the journal walk).

use serde::Serialize;

/// Kind of damage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Damage {
    /// `ANCHOR` is missing or unreadable.
    MissingAnchor,
    /// The journal has no segment.
    Empty,
    /// A segment's header is not `ALJ\x01` + version 1.
    BadHeader,
    /// A record is cut short (truncation or a torn write).
    Torn,
    /// A record's length field is impossible.
    BadLength,
    /// A record's stored hash does not match its contents.
    HashMismatch,
    /// A record's sequence number is not the next one.
    SequenceGap,
    /// A record's `prev_hash` is not the previous record's hash.
    BrokenLink,
    /// A payload does not decode.
    BadPayload,
    /// A segment does not start with its `SegmentStart`, or segments are out of order.
    BadSegmentStart,
    /// The genesis key is not the trusted key.
    UntrustedKey,
    /// A checkpoint's epoch or head does not match the chain.
    BadCheckpoint,
    /// A checkpoint's signature does not verify under the epoch's key.
    BadSignature,
    /// The journal ends before the record `HEAD` says is durable.
    Truncated,
    /// The record at `HEAD`'s sequence number has another hash.
    HeadMismatch,
    /// The key ladder (`LADDER`) is damaged, or does not lead to the keys the checkpoints commit to.
    BadLadder,
    /// A trusted key was given, but the journal's start was deleted by retention and no key ladder leads
    /// from a genesis key to the retained start's key, so the trusted key cannot be checked.
    UntracedKey,
}
