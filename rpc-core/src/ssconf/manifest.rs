//! A generation's MANIFEST: the keys of its set and the version (master epoch and
//! configuration serial) the set came with, in one file, so that a reader gets both from
//! the same generation.
//!
//! ```text
//! epoch 2
//! serial 42
//! cluster_name
//! master_node
//! ...
//! ```
//!
//! The version lines are ours; Ganeti never reads the manifest. A manifest without them
//! (written before serials or epochs existed) reads as 0, the oldest, so that any set the
//! master sends replaces it. Key names never contain a space, so the lines cannot be taken
//! for keys.

use std::path::Path;

use super::{Location, SsconfError, SsconfKey, SsconfVersion};

/// What starts the serial line.
const SERIAL_PREFIX: &str = "serial ";
/// What starts the epoch line.
const EPOCH_PREFIX: &str = "epoch ";

/// The parsed manifest of one generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Manifest {
    /// The version of the set; 0 for what the manifest does not name.
    pub(super) version: SsconfVersion,
    /// The keys the generation holds, in file order.
    pub(super) keys: Vec<SsconfKey>,
}

impl Manifest {
    /// The text of a manifest for `keys` and `version`.
    pub(super) fn encode<'a>(
        version: SsconfVersion,
        keys: impl IntoIterator<Item = &'a SsconfKey>,
    ) -> String {
        let mut text = format!(
            "{EPOCH_PREFIX}{}\n{SERIAL_PREFIX}{}\n",
            version.epoch, version.serial
        );
        for key in keys {
            text.push_str(key.as_str());
            text.push('\n');
        }
        text
    }

    /// Parses `text`, read from `path`: every line a key, or one of the version lines (each
    /// at most once).
    pub(super) fn parse(path: &Path, text: &str) -> Result<Self, SsconfError> {
        let malformed = |index: usize, reason: String| SsconfError::Malformed {
            location: Location::File(path.to_owned()),
            line: index + 1,
            reason,
        };
        let mut serial = None;
        let mut epoch = None;
        let mut keys = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let numbered = [
                (SERIAL_PREFIX, "a", "serial", &mut serial),
                (EPOCH_PREFIX, "an", "epoch", &mut epoch),
            ]
            .into_iter()
            .find_map(|(prefix, article, noun, slot)| {
                line.strip_prefix(prefix).map(|n| (n, article, noun, slot))
            });
            if let Some((number, article, noun, slot)) = numbered {
                if slot.is_some() {
                    return Err(malformed(index, format!("a second {noun} line")));
                }
                let digits = !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit());
                let parsed = number.parse().ok().filter(|_| digits);
                *slot = Some(parsed.ok_or_else(|| {
                    malformed(index, format!("'{number}' is not {article} {noun} number"))
                })?);
                continue;
            }
            let key = line
                .parse()
                .map_err(|_| malformed(index, format!("'{line}' is not an ssconf key")))?;
            keys.push(key);
        }
        Ok(Self {
            version: SsconfVersion::new(epoch.unwrap_or(0), serial.unwrap_or(0)),
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
        let text = Manifest::encode(SsconfVersion::new(3, 42), &keys);
        assert_eq!(text, "epoch 3\nserial 42\ncluster_name\nnode_list\n");
        assert_eq!(
            parse(&text).unwrap(),
            Manifest {
                version: SsconfVersion::new(3, 42),
                keys: keys.to_vec()
            }
        );
    }

    #[test]
    fn a_manifest_without_a_version_is_version_zero() {
        let old = parse("cluster_name\nnode_list\n").unwrap();
        assert_eq!(old.version, SsconfVersion::default());
        assert_eq!(old.keys, [SsconfKey::ClusterName, SsconfKey::NodeList]);
        assert_eq!(parse("").unwrap().version, SsconfVersion::default());
        // Written between serials and epochs: epoch 0.
        assert_eq!(
            parse("serial 9\ncluster_name\n").unwrap().version,
            SsconfVersion::new(0, 9)
        );
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
            ("epoch 1\nepoch 1\n", 2, "a second epoch line"),
            ("epoch x\n", 1, "'x' is not an epoch number"),
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
