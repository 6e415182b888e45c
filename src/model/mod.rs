//! The model layer: ids, channel names, errors with their fault, and reason enums.
//! Imports nothing of the crate: every other layer may use it.

pub mod channel_name;
pub mod error;
pub mod event_id;
pub mod reasons;
