//! The 34 ssconf keys Ganeti knows (`validSsKeys` in Ganeti 3.0), and their file names.

use std::fmt;
use std::str::FromStr;

use super::SsconfError;

/// Ganeti's file-name prefix: key `cluster_name` lives in file `ssconf_cluster_name`.
pub const FILE_PREFIX: &str = "ssconf_";

macro_rules! ssconf_keys {
    ($($variant:ident => $name:literal,)*) => {
        /// An ssconf key. Keys outside Ganeti's list cannot be represented.
        #[allow(missing_docs)] // each variant is its Ganeti key, named in `as_str`
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum SsconfKey {
            $($variant,)*
        }

        impl SsconfKey {
            /// Every key, in Ganeti's (alphabetical) order.
            pub const ALL: &'static [SsconfKey] = &[$(SsconfKey::$variant,)*];

            /// The key as Ganeti spells it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(SsconfKey::$variant => $name,)*
                }
            }
        }
    };
}

ssconf_keys! {
    ClusterName => "cluster_name",
    ClusterTags => "cluster_tags",
    EnabledUserShutdown => "enabled_user_shutdown",
    FileStorageDir => "file_storage_dir",
    GlusterStorageDir => "gluster_storage_dir",
    HvparamsChroot => "hvparams_chroot",
    HvparamsFake => "hvparams_fake",
    HvparamsKvm => "hvparams_kvm",
    HvparamsLxc => "hvparams_lxc",
    HvparamsXenHvm => "hvparams_xen-hvm",
    HvparamsXenPvm => "hvparams_xen-pvm",
    HypervisorList => "hypervisor_list",
    InstanceList => "instance_list",
    MaintainNodeHealth => "maintain_node_health",
    MasterCandidates => "master_candidates",
    MasterCandidatesCerts => "master_candidates_certs",
    MasterCandidatesIps => "master_candidates_ips",
    MasterIp => "master_ip",
    MasterNetdev => "master_netdev",
    MasterNetmask => "master_netmask",
    MasterNode => "master_node",
    Networks => "networks",
    NodeList => "node_list",
    NodePrimaryIps => "node_primary_ips",
    NodeSecondaryIps => "node_secondary_ips",
    NodeVmCapable => "node_vm_capable",
    Nodegroups => "nodegroups",
    OfflineNodes => "offline_nodes",
    OnlineNodes => "online_nodes",
    PrimaryIpFamily => "primary_ip_family",
    ReleaseVersion => "release_version",
    SharedFileStorageDir => "shared_file_storage_dir",
    SshPorts => "ssh_ports",
    UidPool => "uid_pool",
}

impl SsconfKey {
    /// Whether the key holds one line (a name, an address, a number, a path); the others
    /// hold one item per line.
    pub const fn is_single_line(self) -> bool {
        matches!(
            self,
            Self::ClusterName
                | Self::EnabledUserShutdown
                | Self::FileStorageDir
                | Self::GlusterStorageDir
                | Self::MaintainNodeHealth
                | Self::MasterIp
                | Self::MasterNetdev
                | Self::MasterNetmask
                | Self::MasterNode
                | Self::PrimaryIpFamily
                | Self::ReleaseVersion
                | Self::SharedFileStorageDir
        )
    }

    /// The file name of the key: `ssconf_<key>`.
    pub fn file_name(self) -> String {
        format!("{FILE_PREFIX}{}", self.as_str())
    }

    /// The key whose file is named `file_name`, if it is an ssconf file name at all:
    /// `None` for names without the prefix, an error for `ssconf_<unknown>`.
    pub fn from_file_name(file_name: &str) -> Option<Result<Self, SsconfError>> {
        file_name.strip_prefix(FILE_PREFIX).map(str::parse)
    }
}

impl FromStr for SsconfKey {
    type Err = SsconfError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|key| key.as_str() == name)
            .ok_or_else(|| SsconfError::UnknownKey(name.to_owned()))
    }
}

impl fmt::Display for SsconfKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_are_ganetis_34_keys_in_order_and_each_round_trips() {
        assert_eq!(SsconfKey::ALL.len(), 34);
        let names: Vec<_> = SsconfKey::ALL.iter().map(|k| k.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        for key in SsconfKey::ALL {
            assert_eq!(key.as_str().parse::<SsconfKey>().unwrap(), *key);
            assert_eq!(
                SsconfKey::from_file_name(&key.file_name())
                    .unwrap()
                    .unwrap(),
                *key
            );
        }
        assert_eq!(
            SsconfKey::HvparamsXenHvm.file_name(),
            "ssconf_hvparams_xen-hvm"
        );
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let err = "bogus".parse::<SsconfKey>().unwrap_err();
        assert_eq!(err.to_string(), "unknown ssconf key 'bogus'");
        assert!(SsconfKey::from_file_name("ssconf_bogus").unwrap().is_err());
        assert!(SsconfKey::from_file_name("config.json").is_none());
        assert!("Cluster_Name".parse::<SsconfKey>().is_err());
    }
}
