//! The pipeline: byte-bounded batch channels, acknowledgements, checkpoints,
//! routing and the wiring of sources, the processing stage and sinks.

pub mod acks;
pub mod channel;
pub mod checkpoint;
pub mod checkpoint_file;
pub mod processor;
pub mod router;
pub mod topology;
