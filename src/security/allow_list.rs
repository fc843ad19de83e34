//! Allow-lists of client addresses (SeaweedFS's `-whiteList` and `[guard] white_list`): IP
//! addresses and CIDR networks, comma-separated. An empty list lets everyone in.

use std::net::IpAddr;

use super::limits::ALLOW_LIST_ENTRIES_MAX;

/// One network: an address and how many leading bits of it must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Network {
    address: IpAddr,
    prefix_bits: u8,
}

impl Network {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_matches(
                u128::from(u32::from(net)) << 96,
                u128::from(u32::from(ip)) << 96,
                self.prefix_bits,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_matches(u128::from(net), u128::from(ip), self.prefix_bits)
            }
            _ => false,
        }
    }
}

fn prefix_matches(net: u128, ip: u128, bits: u8) -> bool {
    if bits == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - u32::from(bits));
    net & mask == ip & mask
}

/// Addresses and networks allowed; empty: everyone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    networks: Vec<Network>,
    /// The entries as written, for messages.
    text: Vec<String>,
}

impl AllowList {
    #[cfg(test)]
    /// Parse `a,b/24,...` (IPv4 or IPv6 addresses, CIDR networks); blanks are skipped. An
    /// error names the entry.
    pub fn parse(text: &str) -> Result<AllowList, String> {
        let mut list = AllowList::default();
        list.extend(text)?;
        Ok(list)
    }

    /// Add the entries of `text` (the flag's and the file's lists are joined, as in SeaweedFS).
    pub fn extend(&mut self, text: &str) -> Result<(), String> {
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let network = parse_entry(entry)?;
            if self.networks.len() >= ALLOW_LIST_ENTRIES_MAX {
                return Err(format!("more than {ALLOW_LIST_ENTRIES_MAX} entries"));
            }
            self.networks.push(network);
            self.text.push(entry.to_string());
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// Is `ip` allowed? (IPv4-mapped IPv6 addresses are taken as IPv4.)
    pub fn allows(&self, ip: IpAddr) -> bool {
        if self.networks.is_empty() {
            return true;
        }
        let ip = ip.to_canonical();
        self.networks.iter().any(|network| network.contains(ip))
    }

    /// Ok when `peer` is allowed; otherwise the refusal's text naming it.
    pub fn check(&self, peer: Option<IpAddr>, what: &str) -> Result<(), String> {
        match peer {
            Some(ip) if self.allows(ip) => Ok(()),
            None if self.is_empty() => Ok(()),
            _ => {
                let who = peer.map_or_else(|| "an unknown address".into(), |ip| ip.to_string());
                Err(format!(
                    "{what} are taken only from the allow-list (--white-list, [guard] white_list); {who} is not on it"
                ))
            }
        }
    }

    pub fn entries(&self) -> &[String] {
        &self.text
    }
}

fn parse_entry(entry: &str) -> Result<Network, String> {
    let bad = |why: &str| format!("allow-list entry {entry:?}: {why}");
    let (address, prefix) = match entry.split_once('/') {
        Some((address, bits)) => (address, Some(bits)),
        None => (entry, None),
    };
    let address: IpAddr = address
        .parse()
        .map_err(|_| bad("not an IP address or a CIDR network (host names are not taken)"))?;
    let address = address.to_canonical();
    let width = if address.is_ipv4() { 32 } else { 128 };
    let prefix_bits = match prefix {
        None => width,
        Some(bits) => bits
            .parse::<u8>()
            .ok()
            .filter(|bits| *bits <= width)
            .ok_or_else(|| bad(&format!("the prefix length must be 0 to {width}")))?,
    };
    Ok(Network {
        address,
        prefix_bits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    // Proves addresses and networks (IPv4, IPv6, mapped IPv4) are matched by prefix, that an
    // empty list lets everyone in, and that a bad entry is an error naming it.
    #[test]
    fn addresses_and_networks() {
        let list = AllowList::parse("10.0.0.0/8, 192.168.1.7,::1,fd00::/16").unwrap();
        assert!(list.allows(ip("10.200.3.4")));
        assert!(list.allows(ip("192.168.1.7")));
        assert!(!list.allows(ip("192.168.1.8")));
        assert!(list.allows(ip("::1")));
        assert!(list.allows(ip("fd00:1::5")));
        assert!(!list.allows(ip("fe80::1")));
        assert!(list.allows(ip("::ffff:10.1.1.1")));
        assert!(!list.allows(ip("11.0.0.1")));
        assert!(AllowList::parse("").unwrap().allows(ip("8.8.8.8")));
        assert!(AllowList::parse("0.0.0.0/0").unwrap().allows(ip("8.8.8.8")));
        let error = AllowList::parse("10.0.0.1,example.com").unwrap_err();
        assert!(error.contains("\"example.com\""), "{error}");
        assert!(AllowList::parse("10.0.0.0/33").is_err());
        let refusal = list.check(Some(ip("11.0.0.1")), "writes").unwrap_err();
        assert!(refusal.contains("11.0.0.1"), "{refusal}");
        assert!(list.check(None, "writes").is_err());
    }
}
