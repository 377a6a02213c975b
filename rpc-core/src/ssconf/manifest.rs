//! A generation's MANIFEST: the keys of its set and the configuration serial the set came
//! with, in one file, so that a reader gets both from the same generation.
//!
//! ```text
//! serial 42
//! cluster_name
//! master_node
//! ...
//! ```
//!
//! The serial line is ours; Ganeti never reads the manifest. A manifest without it (written
//! before serials existed) reads as serial 0, the oldest, so that any set the master sends
//! replaces it. Key names never contain a space, so the line cannot be taken for a key.

use std::path::Path;

use super::{Location, SsconfError, SsconfKey};

/// What starts the serial line.
const SERIAL_PREFIX: &str = "serial ";

/// The parsed manifest of one generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Manifest {
    /// The configuration serial of the set; 0 when the manifest names none.
    pub(super) serial: u64,
    /// The keys the generation holds, in file order.
    pub(super) keys: Vec<SsconfKey>,
}

impl Manifest {
    /// The text of a manifest for `keys` and `serial`.
    pub(super) fn encode<'a>(serial: u64, keys: impl IntoIterator<Item = &'a SsconfKey>) -> String {
        let mut text = format!("{SERIAL_PREFIX}{serial}\n");
        for key in keys {
            text.push_str(key.as_str());
            text.push('\n');
        }
        text
    }

    /// Parses `text`, read from `path`: every line a key, or the one serial line.
    pub(super) fn parse(path: &Path, text: &str) -> Result<Self, SsconfError> {
        let malformed = |index: usize, reason: String| SsconfError::Malformed {
            location: Location::File(path.to_owned()),
            line: index + 1,
            reason,
        };
        let mut serial = None;
        let mut keys = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if let Some(number) = line.strip_prefix(SERIAL_PREFIX) {
                if serial.is_some() {
                    return Err(malformed(index, "a second serial line".to_owned()));
                }
                let digits = !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit());
                let parsed = number.parse().ok().filter(|_| digits);
                serial = Some(parsed.ok_or_else(|| {
                    malformed(index, format!("'{number}' is not a serial number"))
                })?);
                continue;
            }
            let key = line
                .parse()
                .map_err(|_| malformed(index, format!("'{line}' is not an ssconf key")))?;
            keys.push(key);
        }
        Ok(Self {
            serial: serial.unwrap_or(0),
            keys,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, SsconfError> {
        Manifest::parse(Path::new("/state/.ssconf/gen-1-ab/MANIFEST"), text)
    }

    #[test]
    fn a_manifest_reads_back_its_serial_and_keys() {
        let keys = [SsconfKey::ClusterName, SsconfKey::NodeList];
        let text = Manifest::encode(42, &keys);
        assert_eq!(text, "serial 42\ncluster_name\nnode_list\n");
        assert_eq!(
            parse(&text).unwrap(),
            Manifest {
                serial: 42,
                keys: keys.to_vec()
            }
        );
    }

    #[test]
    fn a_manifest_without_a_serial_is_serial_zero() {
        let old = parse("cluster_name\nnode_list\n").unwrap();
        assert_eq!(old.serial, 0);
        assert_eq!(old.keys, [SsconfKey::ClusterName, SsconfKey::NodeList]);
        assert_eq!(parse("").unwrap().serial, 0);
    }

    #[test]
    fn a_bad_serial_line_is_an_error_naming_the_line() {
        for (text, line, reason) in [
            ("cluster_name\nserial x\n", 2, "'x' is not a serial number"),
            ("serial -1\n", 1, "'-1' is not a serial number"),
            ("serial +1\n", 1, "'+1' is not a serial number"),
            ("serial \n", 1, "'' is not a serial number"),
            ("serial 99999999999999999999\n", 1, "is not a serial number"),
            ("serial 1\nserial 2\n", 2, "a second serial line"),
            (
                "serial 1\nnot_a_key\n",
                2,
                "'not_a_key' is not an ssconf key",
            ),
        ] {
            let err = parse(text).unwrap_err();
            let message = err.to_string();
            assert!(
                message.contains(&format!("line {line}: ")) && message.contains(reason),
                "{text:?}: {message}"
            );
        }
    }
}
