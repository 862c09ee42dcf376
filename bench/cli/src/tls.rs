//! The TLS options both sides of a `tls:` endpoint take: which protocol versions to offer or
//! accept (`--tls-versions 1.2,1.3`). Plain data, so the servers and the load generator parse
//! them alike without sharing a TLS library through this crate.

use std::fmt;
use std::str::FromStr;

/// The TLS protocol versions a server accepts or a client offers. At least one is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TlsVersions {
    tls12: bool,
    tls13: bool,
}

impl TlsVersions {
    /// TLS 1.3 only: the default, as a new deployment would configure it.
    pub const TLS13: TlsVersions = TlsVersions {
        tls12: false,
        tls13: true,
    };
    /// TLS 1.2 and 1.3.
    pub const BOTH: TlsVersions = TlsVersions {
        tls12: true,
        tls13: true,
    };
    /// TLS 1.2 only.
    pub const TLS12: TlsVersions = TlsVersions {
        tls12: true,
        tls13: false,
    };

    /// Whether TLS 1.2 is among them.
    pub const fn tls12(self) -> bool {
        self.tls12
    }

    /// Whether TLS 1.3 is among them.
    pub const fn tls13(self) -> bool {
        self.tls13
    }
}

impl Default for TlsVersions {
    fn default() -> Self {
        Self::TLS13
    }
}

impl fmt::Display for TlsVersions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.tls12, self.tls13) {
            (true, true) => f.write_str("1.2,1.3"),
            (true, false) => f.write_str("1.2"),
            _ => f.write_str("1.3"),
        }
    }
}

impl FromStr for TlsVersions {
    type Err = String;

    /// A comma-separated list of `1.2` and `1.3`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut versions = TlsVersions {
            tls12: false,
            tls13: false,
        };
        // Spaces after a comma are allowed; any other character (a newline) is not.
        for part in text.split(',').map(|part| part.trim_matches(' ')) {
            match part {
                "1.2" => versions.tls12 = true,
                "1.3" => versions.tls13 = true,
                _ => {
                    return Err(format!(
                        "'{}' is not a TLS version (valid: 1.2, 1.3, comma-separated)",
                        part.escape_default()
                    ));
                }
            }
        }
        Ok(versions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_print_back() {
        for (text, versions) in [
            ("1.3", TlsVersions::TLS13),
            ("1.2", TlsVersions::TLS12),
            ("1.2,1.3", TlsVersions::BOTH),
        ] {
            assert_eq!(text.parse::<TlsVersions>().unwrap(), versions);
            assert_eq!(versions.to_string(), text);
        }
        assert_eq!(
            "1.3, 1.2".parse::<TlsVersions>().unwrap(),
            TlsVersions::BOTH
        );
        for bad in ["", "1.1", "1.3,", "tls1.3", "1.3\n"] {
            let err = bad.parse::<TlsVersions>().unwrap_err();
            assert!(err.contains("valid: 1.2, 1.3"), "{bad:?}: {err}");
            assert_eq!(err.lines().count(), 1);
        }
    }
}
