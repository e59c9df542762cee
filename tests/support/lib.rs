//! What the end-to-end tests and the freshness benchmark share: the stage
//! binaries, stage processes, the AWS-emulated pipeline, the events and
//! their senders, and reading the warehouse back.

pub mod binaries;
pub mod events;
pub mod pipeline;
pub mod sender;
pub mod single_machine;
pub mod stage;
pub mod trace;
pub mod warehouse;
