//! `cvm-image-spec`: the declarative description of one image (TOML).
