//! The pipeline: byte-bounded batch channels, acknowledgements, checkpoints,
//! routing and the wiring of sources, the processing stage and sinks.

pub mod acks;
pub mod channel;
pub mod checkpoint;
pub mod checkpoint_file;
pub mod checkpoint_recovery;
pub mod data_dir_lock;
pub mod processor;
pub mod router;
pub mod step_meter;
pub mod topology;
