//! The event envelope every Sluice stage carries, and its encodings: JSON
//! from clients into envelopes, envelopes into aggregated stream records,
//! stream records into raw archive objects, and load manifests into queue
//! messages.

mod archive;
mod batch;
mod borrowed;
pub mod demo;
mod error;
mod json;
mod limits;
mod manifest;
mod record;
mod tag;
pub mod time;
mod view;

pub mod proto {
    //! Types generated from `proto/sluice/v1`.
    tonic::include_proto!("sluice.v1");
}

pub use archive::{
    ArchiveWriter, MAX_ARCHIVE_DECODED_BYTES, decode_archive, decode_archive_header,
};
pub use batch::{EncodedEvents, EncodedMeta};
pub use borrowed::BorrowedEnvelope;
pub use error::EventError;
pub use json::{
    EventJson, IngestContext, ScannedBatch, envelope_from_json, scan_batch, scan_event_array,
};
pub use limits::Limits;
pub use manifest::{decode_manifest, encode_manifest};
pub use record::{
    MAX_DECODED_RECORD_BYTES, decode_record, encode_record, encoded_len_in_batch, record_batch,
    record_from_batch,
};
pub use view::{EnvelopeView, envelope_views};
