//! The app layer: start-up, reload (SIGHUP), drain (SIGTERM) and the background sweeps.
//! Imports every layer below it; nothing imports it but `main.rs`.

pub mod gateway;
pub mod restart_only;
