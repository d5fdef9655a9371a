//! Rate limits and quotas of a key or a tenant, and IP allow-lists.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Limits on a key or a tenant; `None` means unlimited. Requests are limited by a token
/// bucket (refilled at `requests_per_minute / 60` per second, holding at most `burst`,
/// default `requests_per_minute`); LLM tokens (prompt + completion) per minute the same
/// way, and per calendar month (UTC) by a count.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_month: Option<u64>,
}

impl Limits {
    pub fn is_unlimited(&self) -> bool {
        *self == Limits::default()
    }

    /// A limit of zero would lock a key out silently: say so instead.
    pub fn validate(&self) -> Result<(), String> {
        if self.requests_per_minute == Some(0) || self.burst == Some(0) {
            return Err(
                "requests_per_minute and burst must be positive (leave them out for no limit)"
                    .into(),
            );
        }
        if self.tokens_per_minute == Some(0) || self.tokens_per_month == Some(0) {
            return Err("tokens_per_minute and tokens_per_month must be positive (leave them out for no limit)".into());
        }
        if self.burst.is_some() && self.requests_per_minute.is_none() {
            return Err("burst needs requests_per_minute".into());
        }
        Ok(())
    }
}

/// An address range of an allow-list: `203.0.113.0/24`, `2001:db8::/32`, or one address.
///
/// Kept on the `ipnet` crate's types, normalised once at parse time: an IPv4-mapped IPv6
/// entry (`::ffff:203.0.113.0/120`) becomes the IPv4 range it names (`203.0.113.0/24`), so
/// every comparison is between two ranges of one family and no prefix arithmetic is done
/// here on a number the caller wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet(ipnet::IpNet);

impl IpNet {
    pub fn parse(text: &str) -> Result<IpNet, String> {
        let trimmed = text.trim();
        let net = match trimmed.split_once('/') {
            Some(_) => trimmed
                .parse::<ipnet::IpNet>()
                .map_err(|_| bad_range(text))?,
            None => ipnet::IpNet::from(trimmed.parse::<IpAddr>().map_err(|_| bad_range(text))?),
        };
        match net {
            ipnet::IpNet::V6(v6) => match v6.addr().to_ipv4_mapped() {
                Some(v4) => {
                    let prefix = v6.prefix_len().checked_sub(96).ok_or_else(|| {
                        format!(
                            "{text:?}: an IPv4-mapped range needs a prefix length of 96-128 \
                             (write the IPv4 range instead, e.g. 203.0.113.0/24)"
                        )
                    })?;
                    let v4 = ipnet::Ipv4Net::new(v4, prefix).map_err(|_| bad_range(text))?;
                    Ok(IpNet(ipnet::IpNet::V4(v4)))
                }
                None => Ok(IpNet(net)),
            },
            v4 => Ok(IpNet(v4)),
        }
    }

    /// Whether `ip` is in the range; an IPv4-mapped client address counts as its IPv4
    /// form, and an address of the other family is never inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&canonical(ip))
    }
}

impl std::fmt::Display for IpNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

fn bad_range(text: &str) -> String {
    format!(
        "{text:?} is not an IP address or CIDR range (e.g. 10.0.0.0/8, 2001:db8::/32); \
         the prefix length is 0-32 for IPv4 and 0-128 for IPv6"
    )
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ranges() {
        let net = IpNet::parse("10.1.0.0/16").unwrap();
        assert!(net.contains(ip("10.1.200.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.0.9")));
        let one = IpNet::parse("127.0.0.1").unwrap();
        assert!(one.contains(ip("127.0.0.1")));
        assert!(!one.contains(ip("127.0.0.2")));
        let v6 = IpNet::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")));
        assert!(!v6.contains(ip("2001:db9::1")));
        for bad in [
            "10.0.0.0/33",
            "example.com",
            "10.0.0/8",
            "::1/129",
            "",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "10.0.0.0/300",
            "/8",
        ] {
            assert!(IpNet::parse(bad).is_err(), "{bad}");
        }
    }

    /// The bypass this type once had: a mapped entry compared as IPv4 with prefix 128.
    #[test]
    fn mapped_entries_become_their_ipv4_range() {
        let one = IpNet::parse("::ffff:203.0.113.5").unwrap();
        assert_eq!(one.to_string(), "203.0.113.5/32");
        assert!(one.contains(ip("203.0.113.5")));
        assert!(one.contains(ip("::ffff:203.0.113.5")));
        assert!(!one.contains(ip("203.0.113.6")));
        assert!(!one.contains(ip("8.8.8.8")));
        assert!(!one.contains(ip("::ffff:8.8.8.8")));

        let range = IpNet::parse("::ffff:203.0.113.0/120").unwrap();
        assert_eq!(range.to_string(), "203.0.113.0/24");
        assert!(range.contains(ip("203.0.113.77")));
        assert!(!range.contains(ip("203.0.114.1")));

        let all = IpNet::parse("::ffff:0.0.0.0/96").unwrap();
        assert_eq!(all.to_string(), "0.0.0.0/0");
        assert!(all.contains(ip("198.51.100.1")));
        assert!(
            !all.contains(ip("2001:db8::1")),
            "a mapped /96 is IPv4 only"
        );

        let err = IpNet::parse("::ffff:0.0.0.0/95").unwrap_err();
        assert!(
            err.contains("::ffff:0.0.0.0/95") && err.contains("96-128"),
            "{err}"
        );
        assert!(IpNet::parse("::ffff:1.2.3.4/129").is_err());
    }

    #[test]
    fn prefix_edges() {
        let every_v4 = IpNet::parse("0.0.0.0/0").unwrap();
        assert!(every_v4.contains(ip("8.8.8.8")));
        assert!(every_v4.contains(ip("::ffff:8.8.8.8")));
        assert!(!every_v4.contains(ip("2001:db8::1")));
        let every_v6 = IpNet::parse("::/0").unwrap();
        assert!(every_v6.contains(ip("2001:db8::1")));
        assert!(
            !every_v6.contains(ip("8.8.8.8")),
            "an IPv6 range never holds an IPv4 client"
        );
        assert!(!every_v6.contains(ip("::ffff:8.8.8.8")));

        let host = IpNet::parse("192.0.2.1/32").unwrap();
        assert!(host.contains(ip("192.0.2.1")));
        assert!(!host.contains(ip("192.0.2.0")));
        let host6 = IpNet::parse("2001:db8::1/128").unwrap();
        assert!(host6.contains(ip("2001:db8::1")));
        assert!(!host6.contains(ip("2001:db8::2")));

        // IPv6 entries never admit IPv4 clients, whatever their bits.
        for entry in ["::/96", "::1/128", "::c000:201/128", "64:ff9b::/96"] {
            let net = IpNet::parse(entry).unwrap();
            for client in ["192.0.2.1", "0.0.0.0", "255.255.255.255"] {
                assert!(!net.contains(ip(client)), "{entry} must not hold {client}");
            }
        }
        // Host bits past the prefix are ignored, as in every CIDR reader.
        assert!(IpNet::parse("10.1.2.3/8")
            .unwrap()
            .contains(ip("10.200.0.1")));
    }

    #[test]
    fn limits_must_be_positive() {
        assert!(Limits::default().validate().is_ok());
        assert!(Limits {
            requests_per_minute: Some(0),
            ..Limits::default()
        }
        .validate()
        .is_err());
        assert!(Limits {
            burst: Some(5),
            ..Limits::default()
        }
        .validate()
        .is_err());
        assert!(Limits {
            tokens_per_month: Some(1000),
            ..Limits::default()
        }
        .validate()
        .is_ok());
    }
}
