//! Plain types and newtypes shared by every module: identifiers, digests, timestamps and the
//! ledger's record kinds.
//!
//! Values are parsed and checked once, at the edge (`FromStr` and serde), so that past the edge
//! nothing is a bare `String` that could be confused with another identifier. This module does
//! no I/O and depends on no other module of the crate.

mod freeze;
pub mod glob;
mod ids;
pub mod job;
mod key;
pub mod record;
pub mod secret;

pub use freeze::{FreezeScope, Held, glob_matches};
pub use ids::{
    ArtifactKind, BuildId, BuildStatus, ChangeNumber, CommitId, Digest, Duration, EnvironmentName,
    FreezeName, FreezeState, ImageName, InvalidId, PatchsetNumber, PipelineKind, ProjectName,
    RefName, Timestamp, Trust,
};
pub use job::{
    CacheSpec, FetchPlan, INPUTS_DIR, JobInputs, JobKey, JobSpec, JobState, OutputFile,
    RequiredSource,
};
pub use key::KeyRole;
pub use record::{
    Artifact, ArtifactRef, Attestation, BuildRequest, BuildResult, Freeze, JobResult, Promotion,
    Record, RecordKind,
};
