//! Newtypes for identifiers. Each parses with a message that names what was expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value that is not a valid identifier of its kind; the message says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value:?}: {expected}")]
pub struct InvalidId {
    /// What kind of identifier was being parsed (`digest`, `build id`, ...).
    pub kind: &'static str,
    /// The offending input, truncated to a readable length.
    pub value: String,
    /// What a valid value looks like.
    pub expected: &'static str,
}

impl InvalidId {
    fn new(kind: &'static str, value: &str, expected: &'static str) -> Self {
        let mut value = value.to_owned();
        if value.len() > 80 {
            let mut cut = 80;
            while !value.is_char_boundary(cut) {
                cut -= 1;
            }
            value.truncate(cut);
            value.push('…');
        }
        InvalidId {
            kind,
            value,
            expected,
        }
    }
}

/// Implements Display, FromStr-driven serde and `as_str` for a `String` newtype.
macro_rules! string_newtype {
    ($name:ident, $check:expr) => {
        impl $name {
            /// The value as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                let check: fn(&str) -> Result<(), InvalidId> = $check;
                check(s)?;
                Ok($name(s.to_owned()))
            }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A git commit id: 40 lowercase hex digits (SHA-1 repositories).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommitId(String);
string_newtype!(CommitId, |s| {
    if s.len() == 40 && is_lower_hex(s) {
        Ok(())
    } else {
        Err(InvalidId::new(
            "commit id",
            s,
            "40 lowercase hexadecimal digits",
        ))
    }
});

/// A content digest in OCI form: `sha256:` and 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);
string_newtype!(Digest, |s| {
    match s.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && is_lower_hex(hex) => Ok(()),
        _ => Err(InvalidId::new(
            "digest",
            s,
            "`sha256:` followed by 64 lowercase hexadecimal digits",
        )),
    }
});

impl Digest {
    /// The 64 hex digits after `sha256:`.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        use sha2::Digest as _;
        Digest(format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(bytes))
        ))
    }
}

/// Characters allowed in a single path-safe name segment.
fn check_segment(
    kind: &'static str,
    s: &str,
    max: usize,
    expected: &'static str,
) -> Result<(), InvalidId> {
    let ok = !s.is_empty()
        && s.len() <= max
        && s != "."
        && s != ".."
        && !s.starts_with('.')
        && !s.ends_with(".lock")
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'));
    if ok {
        Ok(())
    } else {
        Err(InvalidId::new(kind, s, expected))
    }
}

/// A build id: 1 to 128 characters of `A-Z a-z 0-9 . _ - +`, not starting with a dot.
/// Build ids become directory names in the ledger, so they must be path-safe.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BuildId(String);
string_newtype!(BuildId, |s| check_segment(
    "build id",
    s,
    128,
    "1 to 128 characters of A-Z a-z 0-9 . _ - +, not starting with a dot"
));

/// The pipelines a project can use; in files, ledger records and job specs by name
/// (`check`, `gate`, `post-merge`, `periodic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PipelineKind {
    /// Every new patchset, untrusted.
    Check,
    /// After approval, trusted, speculative merge.
    Gate,
    /// After a merge, trusted, builds promotable artifacts.
    PostMerge,
    /// From `schedules.yaml`.
    Periodic,
}

impl PipelineKind {
    /// Every pipeline.
    pub const ALL: [PipelineKind; 4] = [
        PipelineKind::Check,
        PipelineKind::Gate,
        PipelineKind::PostMerge,
        PipelineKind::Periodic,
    ];

    /// The name used in files, ledger records and job specs (`post-merge` ...).
    pub fn as_str(self) -> &'static str {
        match self {
            PipelineKind::Check => "check",
            PipelineKind::Gate => "gate",
            PipelineKind::PostMerge => "post-merge",
            PipelineKind::Periodic => "periodic",
        }
    }

    /// The pipeline named `name`, if it is one.
    pub fn from_name(name: &str) -> Option<PipelineKind> {
        PipelineKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::str::FromStr for PipelineKind {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<PipelineKind, InvalidId> {
        PipelineKind::from_name(s)
            .ok_or_else(|| InvalidId::new("pipeline", s, "check, gate, post-merge or periodic"))
    }
}

impl std::fmt::Display for PipelineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An environment name such as `staging`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EnvironmentName(String);
string_newtype!(EnvironmentName, |s| check_segment(
    "environment name",
    s,
    64,
    "1 to 64 characters of A-Z a-z 0-9 . _ - +"
));

/// A freeze name (the file name of `freezes/<name>.yaml` without the extension).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FreezeName(String);
string_newtype!(FreezeName, |s| check_segment(
    "freeze name",
    s,
    128,
    "1 to 128 characters of A-Z a-z 0-9 . _ - +"
));

fn check_path(kind: &'static str, s: &str, expected: &'static str) -> Result<(), InvalidId> {
    if s.is_empty() || s.len() > 255 || s.ends_with(".git") {
        return Err(InvalidId::new(kind, s, expected));
    }
    for segment in s.split('/') {
        check_segment(kind, segment, 255, expected)
            .map_err(|_| InvalidId::new(kind, s, expected))?;
    }
    Ok(())
}

/// A Gerrit project path such as `mediawiki/extensions/Cite`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectName(String);
string_newtype!(ProjectName, |s| check_path(
    "project name",
    s,
    "slash-separated segments of A-Z a-z 0-9 . _ - +, none empty or starting with a dot, not ending in .git"
));

/// An image name inside a registry, such as `releng/php` (no registry host, no tag).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageName(String);
string_newtype!(ImageName, |s| {
    let expected =
        "slash-separated segments of lowercase a-z 0-9 . _ -, each starting with a letter or digit";
    let ok = !s.is_empty()
        && s.len() <= 255
        && s.split('/').all(|seg| {
            seg.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                && seg.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
                })
                && !seg.ends_with(".lock")
        });
    if ok {
        Ok(())
    } else {
        Err(InvalidId::new("image name", s, expected))
    }
});

/// A full git ref name such as `refs/heads/main` or `refs/changes/11/4711/3`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RefName(String);
string_newtype!(RefName, |s| {
    let expected =
        "a full ref name starting with refs/, without spaces, `..` or control characters";
    let ok = s.starts_with("refs/")
        && s.len() <= 1024
        && !s.contains("..")
        && !s.ends_with('/')
        && !s.contains("//")
        && s.bytes().all(|b| {
            b > b' ' && b != 0x7f && !matches!(b, b'~' | b'^' | b':' | b'?' | b'*' | b'[' | b'\\')
        });
    if ok {
        Ok(())
    } else {
        Err(InvalidId::new("ref name", s, expected))
    }
});

/// A Gerrit change number (always positive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct ChangeNumber(u32);

/// A patchset number within a change (always positive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct PatchsetNumber(u32);

macro_rules! positive_number {
    ($name:ident, $what:literal) => {
        impl $name {
            /// The number itself.
            pub fn get(self) -> u32 {
                self.0
            }
        }
        impl TryFrom<u64> for $name {
            type Error = InvalidId;
            fn try_from(n: u64) -> Result<Self, InvalidId> {
                match u32::try_from(n) {
                    Ok(v) if v > 0 && v <= i32::MAX as u32 => Ok($name(v)),
                    _ => Err(InvalidId::new(
                        $what,
                        &n.to_string(),
                        "a positive integer below 2^31",
                    )),
                }
            }
        }
        impl From<$name> for u64 {
            fn from(n: $name) -> u64 {
                u64::from(n.0)
            }
        }
        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                s.parse::<u64>()
                    .map_err(|_| InvalidId::new($what, s, "a positive integer below 2^31"))
                    .and_then($name::try_from)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}
positive_number!(ChangeNumber, "change number");
positive_number!(PatchsetNumber, "patchset number");

/// A point in time, read and written as RFC 3339 and kept in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(jiff::Timestamp);

impl Timestamp {
    /// The current time.
    pub fn now() -> Timestamp {
        Timestamp(jiff::Timestamp::now())
    }
    /// Seconds since the Unix epoch.
    pub fn as_second(self) -> i64 {
        self.0.as_second()
    }
    /// A timestamp from seconds since the Unix epoch.
    pub fn from_second(second: i64) -> Result<Timestamp, InvalidId> {
        jiff::Timestamp::from_second(second)
            .map(Timestamp)
            .map_err(|_| InvalidId::new("timestamp", &second.to_string(), "a representable time"))
    }
    /// (year, month, day, hour) in UTC, for sharding paths by time.
    pub fn utc_hour(self) -> (i16, i8, i8, i8) {
        let dt = self.0.to_zoned(jiff::tz::TimeZone::UTC).datetime();
        (dt.year(), dt.month(), dt.day(), dt.hour())
    }
    /// (month, day of month, hour, minute, day of week with Sunday 0) in UTC, for cron.
    pub fn utc_calendar(self) -> (u8, u8, u8, u8, u8) {
        let dt = self.0.to_zoned(jiff::tz::TimeZone::UTC).datetime();
        let weekday = dt.weekday().to_sunday_zero_offset();
        (
            dt.month() as u8,
            dt.day() as u8,
            dt.hour() as u8,
            dt.minute() as u8,
            weekday as u8,
        )
    }
    /// A compact, sortable, path-safe form: `20261122T023000Z`.
    pub fn compact(self) -> String {
        self.0.strftime("%Y%m%dT%H%M%SZ").to_string()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Timestamp {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, InvalidId> {
        // RFC 3339 demands an offset; jiff would also accept some looser forms, so check the
        // shape first: a date, `T` or `t`, a time, and `Z` or an offset.
        let b = s.as_bytes();
        let shaped = b.len() >= 20
            && b[4] == b'-'
            && b[7] == b'-'
            && (b[10] == b'T' || b[10] == b't')
            && (s.ends_with('Z') || s.ends_with('z') || {
                let tail = &b[b.len() - 6..];
                (tail[0] == b'+' || tail[0] == b'-') && tail[3] == b':'
            });
        let expected = "an RFC 3339 timestamp such as 2026-11-22T02:30:00Z";
        if !shaped {
            return Err(InvalidId::new("timestamp", s, expected));
        }
        s.parse::<jiff::Timestamp>()
            .map(Timestamp)
            .map_err(|_| InvalidId::new("timestamp", s, expected))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether a pipeline runs trusted (reviewed, merged) or untrusted (proposed) code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trust {
    /// Reviewed code: may use secrets, its outputs may be promoted.
    Trusted,
    /// Proposed code: no secrets, outputs can never be promoted.
    Untrusted,
}

impl Trust {
    /// The lowercase name used in files and trailers.
    pub fn as_str(self) -> &'static str {
        match self {
            Trust::Trusted => "trusted",
            Trust::Untrusted => "untrusted",
        }
    }
}

/// How a build or job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildStatus {
    /// Every job passed.
    Success,
    /// A job failed.
    Failure,
    /// seakeeper or the executor failed; the code was not judged.
    Error,
    /// Cancelled, for example superseded by a newer patchset.
    Cancelled,
    /// A job ran past its timeout and was killed.
    TimedOut,
    /// Of a job only: not run, because a job it needs did not succeed.
    Skipped,
}

impl BuildStatus {
    /// The name used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Success => "success",
            BuildStatus::Failure => "failure",
            BuildStatus::Error => "error",
            BuildStatus::Cancelled => "cancelled",
            BuildStatus::TimedOut => "timed_out",
            BuildStatus::Skipped => "skipped",
        }
    }
}

/// What an artifact is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactKind {
    /// An OCI image (manifest or index).
    Image,
    /// A file output of a job.
    File,
    /// A job log.
    Log,
}

impl ArtifactKind {
    /// The name used in files and policies.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Image => "image",
            ArtifactKind::File => "file",
            ArtifactKind::Log => "log",
        }
    }
}

/// Whether a freeze holds or has been lifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FreezeState {
    /// The freeze holds its scope.
    Active,
    /// The freeze was removed from the config repo.
    Lifted,
}

impl FreezeState {
    /// The name used in files and paths.
    pub fn as_str(self) -> &'static str {
        match self {
            FreezeState::Active => "active",
            FreezeState::Lifted => "lifted",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_checked() {
        let ok = format!("sha256:{}", "a".repeat(64));
        assert!(ok.parse::<Digest>().is_ok());
        assert!(
            format!("sha256:{}", "A".repeat(64))
                .parse::<Digest>()
                .is_err()
        );
        assert!("sha512:00".parse::<Digest>().is_err());
        let err = "md5:x".parse::<Digest>().unwrap_err().to_string();
        assert!(err.contains("sha256:"), "{err}");
    }

    #[test]
    fn names_are_path_safe() {
        assert!("mediawiki/extensions/Cite".parse::<ProjectName>().is_ok());
        assert!("../etc".parse::<ProjectName>().is_err());
        assert!("a//b".parse::<ProjectName>().is_err());
        assert!("foo.git".parse::<ProjectName>().is_err());
        assert!(".hidden".parse::<BuildId>().is_err());
        assert!("a/b".parse::<BuildId>().is_err());
        assert!("releng/php-fpm".parse::<ImageName>().is_ok());
        assert!("Releng/php".parse::<ImageName>().is_err());
    }

    #[test]
    fn timestamps_are_rfc3339_and_utc() {
        let t: Timestamp = "2026-11-22T04:30:00+02:00".parse().unwrap();
        assert_eq!(t.to_string(), "2026-11-22T02:30:00Z");
        assert_eq!(t.utc_hour(), (2026, 11, 22, 2));
        assert_eq!(t.compact(), "20261122T023000Z");
        assert!("2026-11-22".parse::<Timestamp>().is_err());
        assert!("2026-11-22T02:30:00".parse::<Timestamp>().is_err());
    }

    #[test]
    fn numbers_are_positive() {
        assert!(ChangeNumber::try_from(0).is_err());
        assert!(ChangeNumber::try_from(1u64 << 40).is_err());
        assert_eq!(ChangeNumber::try_from(4711).unwrap().get(), 4711);
    }
}

/// A duration written for people: `90s`, `30m`, `2h`, `1h30m` (or a number of seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Duration(u64);

impl Duration {
    /// From seconds.
    pub fn from_secs(secs: u64) -> Duration {
        Duration(secs)
    }
    /// In seconds.
    pub fn as_secs(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (h, m, s) = (self.0 / 3600, (self.0 / 60) % 60, self.0 % 60);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 || self.0 == 0 {
            write!(f, "{s}s")?;
        }
        Ok(())
    }
}

impl FromStr for Duration {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, InvalidId> {
        let expected = "a duration such as 90s, 30m, 2h or 1h30m";
        let bad = || InvalidId::new("duration", s, expected);
        if let Ok(n) = s.parse::<u64>() {
            return Ok(Duration(n));
        }
        let mut total: u64 = 0;
        let mut num = String::new();
        let mut any = false;
        for c in s.chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let unit = match c {
                'h' => 3600,
                'm' => 60,
                's' => 1,
                _ => return Err(bad()),
            };
            let n: u64 = num.parse().map_err(|_| bad())?;
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(bad)?;
            num.clear();
            any = true;
        }
        if !num.is_empty() || !any {
            return Err(bad());
        }
        Ok(Duration(total))
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(n) => Ok(Duration(n)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod duration_tests {
    use super::*;

    #[test]
    fn durations_parse_and_print() {
        assert_eq!("90s".parse::<Duration>().unwrap().as_secs(), 90);
        assert_eq!("1h30m".parse::<Duration>().unwrap().as_secs(), 5400);
        assert_eq!("600".parse::<Duration>().unwrap().as_secs(), 600);
        assert_eq!(Duration::from_secs(5400).to_string(), "1h30m");
        assert!("30x".parse::<Duration>().is_err());
        assert!("m".parse::<Duration>().is_err());
        assert!("30".parse::<Duration>().is_ok());
    }
}
