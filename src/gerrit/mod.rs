//! Gerrit: the stream-events parser and the domain events seakeeper reacts to.
//!
//! Gerrit speaks two encodings (stream-events strings such as `"value":"2"`, REST integers) and
//! has changed some fields over the years (numbers sent as strings before 2.14, short branch
//! names in `refName` before 2.12). This module maps all of them to one domain model, so that
//! nothing above it knows Gerrit's quirks. It must not talk to the ledger, registries or
//! executors. (The ref watcher, REST client and stand-in follow in issue 4.)

pub mod events;

pub use events::{Account, Approval, DomainEvent, ParseError, parse_line};
