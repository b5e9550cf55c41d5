//! Artifacts: the OCI image-layout store (the embedded default) and declarative, deterministic
//! image assembly. (Copying by digest between registries, attestations and promotion follow in
//! issue 6.)

pub mod assemble;
pub mod layout;

pub use assemble::{AssembleError, ImageSpec, assemble};
pub use layout::{Descriptor, OciLayout, StoreError};
