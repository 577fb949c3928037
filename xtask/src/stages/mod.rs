//! Build stages of `cargo xtask build-image`: each maps pinned inputs to outputs.

pub mod disk;
pub mod rootfs;
