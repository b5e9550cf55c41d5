//! seakeeper: a Git-native CI/CD reconciler. Desired state lives in a reviewed config repo,
//! what happened lives as signed commits in a ledger repo.
//!
//! The module map (dependency direction as in DESIGN.md: `model` depends on nothing; clients
//! never on each other except `ledger` on `signing` and `git`; `cli` sits on top):

/// Plain types and newtypes: identifiers, digests, timestamps, ledger records. No I/O.
pub mod model;

/// The config repo at a commit -> a validated `Layout`, or every error with its position.
pub mod config;

/// The policy rules (promotion), pure.
pub mod policy;

/// The reconcile loop's pure half: World, Action, plan().
pub mod reconcile;

/// Gerrit: ref watcher, REST client, stream-events and webhook intake, one domain model.
pub mod gerrit;

/// OpenPGP keys and detached signatures (Sequoia), for ledger commits.
pub mod signing;

/// gix helpers: object ids, trees, durable packs, compare-and-swap ref updates.
pub mod git;

/// Running jobs: the Executor trait, the local sandbox (bubblewrap) and Kubernetes Jobs.
pub mod executor;

/// Artifacts: the OCI image-layout store and deterministic image assembly.
pub mod registry;

/// The signed, append-only ledger: writer, reader, verifier, trace.
pub mod ledger;

/// Carries out planned actions through the ledger and the clients, write-ahead.
pub mod apply;

/// The daemon: observe, plan, apply; `serve` and `reconcile --once`; status; replication.
pub mod daemon;

/// Durable writes (temporary file, fsync, rename).
pub mod store;

/// Prometheus metrics: every family, process-wide, and `render` for `/metrics`. A leaf like
/// `model`: every module may use it.
pub mod metrics;

/// The secrets file (credentials outside git, never printed).
pub mod secrets;

/// Migration: a Zuul v2 layout and Jenkins Job Builder files into a config repo, and the
/// comparison that keeps the two in sync.
pub mod import;
/// Notifications: IRC, email and Phabricator comments, routed by `notifications.yaml`.
pub mod notify;
/// The web server: status, builds, logs and live consoles, ledger commits, traces, changes,
/// `/metrics`, and the Gerrit webhook.
pub mod web;

/// Command-line subcommands: argument handling only, logic lives in the modules above.
pub mod cli;
