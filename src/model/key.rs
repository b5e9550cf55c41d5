//! What a key may sign: the roles the config repo's `keys/<name>.yaml` gives a cert.

use serde::{Deserialize, Serialize};

/// A role a signing key holds. A ledger commit is accepted only when its signer holds every
/// role its records need (see [`KeyRole::for_path_kind`]); a key with no role signs nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyRole {
    /// May sign ledger commits at all: key rotations, freezes, expiries, indexes.
    Ledger,
    /// May record builds, their artifacts and their attestations, and sign attestations.
    Builder,
    /// May record promotions.
    Promoter,
}

impl KeyRole {
    /// Every role, in order.
    pub const ALL: [KeyRole; 3] = [KeyRole::Ledger, KeyRole::Builder, KeyRole::Promoter];

    /// The role's name as written in `keys/<name>.yaml`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyRole::Ledger => "ledger",
            KeyRole::Builder => "builder",
            KeyRole::Promoter => "promoter",
        }
    }
}

impl std::fmt::Display for KeyRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
