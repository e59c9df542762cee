//! Field numbers of `sluice.v1.Envelope` and `sluice.v1.EventBatch`
//! (`proto/sluice/v1/event.proto`), for the code that reads and writes their
//! wire format by hand: [`crate::EnvelopeView`] reading records in place,
//! [`crate::BorrowedEnvelope`], [`crate::EncodedEvents`] and
//! [`crate::encode_record`] writing them.
//! Their tests compare with what prost reads and writes, which pins these
//! numbers to the schema.

pub const EVENT_ID: u32 = 1;
pub const TYPE: u32 = 2;
pub const EVENT: u32 = 3;
pub const USER_ID: u32 = 4;
pub const ANONYMOUS_ID: u32 = 5;
pub const TIMESTAMP_US: u32 = 6;
pub const SENT_AT_US: u32 = 7;
pub const RECEIVED_AT_US: u32 = 8;
pub const PROPERTIES_JSON: u32 = 9;
pub const CONTEXT_JSON: u32 = 10;
pub const TRAITS_JSON: u32 = 11;
pub const NAME: u32 = 12;
pub const GROUP_ID: u32 = 13;
pub const PREVIOUS_ID: u32 = 14;
/// The last two fields, which every envelope of a request shares.
pub const SOURCE: u32 = 15;
pub const COLLECTOR: u32 = 16;

/// `EventBatch.events`.
pub const BATCH_EVENTS: u32 = 1;
