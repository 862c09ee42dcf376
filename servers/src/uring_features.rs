//! [`UringFeatures`]: which io_uring techniques the `io-uring` model uses, one switch each, so
//! that a benchmark can show what each step buys (`echo-server --uring-features LIST`). Every
//! other model ignores them.
//!
//! With a feature off the model does the plain thing instead:
//!
//! | feature | on | off |
//! |---|---|---|
//! | `multishot-accept` | one `AcceptMulti` per ring, re-armed only when it ends | a one-shot `Accept` submitted again after each connection |
//! | `multishot-recv` | one `RecvMulti` per connection into a provided buffer ring shared by the ring's connections | a one-shot `Recv` into the connection's own buffer, submitted again after each echo |
//! | `batch` | one `io_uring_enter` per loop turn submits everything the turn queued | an `io_uring_enter` right after each operation is queued |
//! | `defer-taskrun` | `IORING_SETUP_SINGLE_ISSUER \| IORING_SETUP_DEFER_TASKRUN`: completions are run only when the loop enters the kernel to wait | `IORING_SETUP_COOP_TASKRUN` only |
//! | `fixed-files` | connections accepted straight into the ring's registered file table, operations name them by slot (`types::Fixed`) | plain descriptors (`types::Fd`) |

use std::fmt;
use std::str::FromStr;

/// One io_uring technique of the `io-uring` model ([`UringFeatures`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UringFeature {
    /// Multishot accept (`IORING_ACCEPT_MULTISHOT`).
    MultishotAccept,
    /// Multishot receive into a provided buffer ring (`IORING_RECV_MULTISHOT`,
    /// `IORING_REGISTER_PBUF_RING`).
    MultishotRecv,
    /// One `io_uring_enter` per loop turn for everything queued.
    Batch,
    /// `IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN` (where the kernel has them).
    DeferTaskrun,
    /// A registered file table: accepted connections are direct descriptors.
    FixedFiles,
}

impl UringFeature {
    /// Every feature, in the order of the benchmark's cumulative ablation.
    pub const ALL: [UringFeature; 5] = [
        UringFeature::MultishotAccept,
        UringFeature::MultishotRecv,
        UringFeature::Batch,
        UringFeature::DeferTaskrun,
        UringFeature::FixedFiles,
    ];

    /// The name `--uring-features` takes.
    pub const fn name(self) -> &'static str {
        match self {
            UringFeature::MultishotAccept => "multishot-accept",
            UringFeature::MultishotRecv => "multishot-recv",
            UringFeature::Batch => "batch",
            UringFeature::DeferTaskrun => "defer-taskrun",
            UringFeature::FixedFiles => "fixed-files",
        }
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for UringFeature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of [`UringFeature`]s; the default is every one ([`UringFeatures::ALL`]).
///
/// Reads from and prints as `--uring-features` spells it: names separated by commas, or `all`,
/// or `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UringFeatures {
    bits: u8,
}

impl UringFeatures {
    /// Every technique: io_uring at its best.
    pub const ALL: UringFeatures = UringFeatures { bits: 0b1_1111 };
    /// None: one-shot operations, plain descriptors, an `io_uring_enter` per operation.
    pub const NONE: UringFeatures = UringFeatures { bits: 0 };

    /// Whether `feature` is on.
    pub const fn has(self, feature: UringFeature) -> bool {
        self.bits & feature.bit() != 0
    }

    /// This set with `feature` on.
    pub const fn with(self, feature: UringFeature) -> Self {
        Self {
            bits: self.bits | feature.bit(),
        }
    }

    /// This set with `feature` off.
    pub const fn without(self, feature: UringFeature) -> Self {
        Self {
            bits: self.bits & !feature.bit(),
        }
    }

    /// The features that are on, in [`UringFeature::ALL`]'s order.
    pub fn iter(self) -> impl Iterator<Item = UringFeature> {
        UringFeature::ALL.into_iter().filter(move |&f| self.has(f))
    }
}

impl Default for UringFeatures {
    fn default() -> Self {
        Self::ALL
    }
}

impl fmt::Display for UringFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::ALL => f.write_str("all"),
            Self::NONE => f.write_str("none"),
            set => {
                let names: Vec<&str> = set.iter().map(UringFeature::name).collect();
                f.write_str(&names.join(","))
            }
        }
    }
}

/// Why a `--uring-features` list did not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadUringFeatures(String);

impl fmt::Display for BadUringFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = UringFeature::ALL.iter().map(|f| f.name()).collect();
        write!(
            f,
            "{} (a comma-separated list of {}; or all, or none)",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for BadUringFeatures {}

impl FromStr for UringFeatures {
    type Err = BadUringFeatures;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "all" => return Ok(Self::ALL),
            "none" => return Ok(Self::NONE),
            "" => return Err(BadUringFeatures("an empty list".into())),
            _ => {}
        }
        let mut set = Self::NONE;
        for name in s.split(',').map(str::trim) {
            let feature = match name {
                "all" | "none" => {
                    return Err(BadUringFeatures(format!(
                        "'{name}' stands alone, not in a list"
                    )));
                }
                "" => return Err(BadUringFeatures(format!("an empty name in '{s}'"))),
                _ => UringFeature::ALL
                    .into_iter()
                    .find(|f| f.name() == name)
                    .ok_or_else(|| {
                        BadUringFeatures(format!("'{name}' is not an io_uring feature"))
                    })?,
            };
            if set.has(feature) {
                return Err(BadUringFeatures(format!("'{name}' is listed twice")));
            }
            set = set.with(feature);
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_set_reads_back_from_what_it_prints() {
        for bits in 0..32u8 {
            let set = UringFeatures { bits };
            assert_eq!(set.to_string().parse::<UringFeatures>(), Ok(set), "{set}");
        }
        assert_eq!(UringFeatures::default(), UringFeatures::ALL);
        assert_eq!(
            "multishot-accept, batch".parse::<UringFeatures>(),
            Ok(UringFeatures::NONE
                .with(UringFeature::MultishotAccept)
                .with(UringFeature::Batch))
        );
        assert_eq!(
            UringFeature::ALL
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(",")
                .parse::<UringFeatures>(),
            Ok(UringFeatures::ALL)
        );
    }

    #[test]
    fn a_bad_list_says_what_is_wrong_and_what_is_valid() {
        for (input, says) in [
            ("", "empty"),
            ("batch,,fixed-files", "empty name"),
            ("multishot", "'multishot' is not"),
            ("all,batch", "stands alone"),
            ("batch,batch", "twice"),
        ] {
            let err = input.parse::<UringFeatures>().unwrap_err().to_string();
            assert!(err.contains(says), "{input:?}: {err}");
            assert!(
                err.contains("defer-taskrun") && err.contains("none"),
                "{err}"
            );
        }
    }
}
