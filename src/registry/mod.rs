//! Artifacts: the OCI image-layout store (the embedded default), declarative deterministic image
//! assembly, a registry client and copy by digest between registries and layouts.
//! (Attestations, promotion policy and retention follow in issue 6.)

pub mod assemble;
pub mod copy;
pub mod cosign;
pub mod distribution;
mod layers;
pub mod layout;
pub mod pull;
pub mod selfimage;
pub mod unpack;

pub use assemble::{AssembleError, ImageSpec, assemble};
pub use layout::{Descriptor, OciLayout, StoreError};
