//! The behaviour every implementation of a backend trait must show, written
//! once against the traits and run against both the local and the AWS
//! (moto) implementations.

pub mod object_store;
pub mod queue;
pub mod stream;
