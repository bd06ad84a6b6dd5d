//! `host:port` address checks, shared by the schema walk and the environment overrides.

use std::net::{Ipv4Addr, Ipv6Addr};

/// How an address is used, which decides which hosts make sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddressUse {
    /// Other nodes connect to it: it must name one reachable host.
    Connect,
    /// This node binds to it: wildcard hosts (`0.0.0.0`, `::`, `*`, empty) are allowed.
    Listen,
}

/// Checks one `host:port` (`[v6]:port` for IPv6). Returns why it is not valid.
pub(crate) fn check_host_port(address: &str, usage: AddressUse) -> Result<(), String> {
    let (host, port) = split_host_port(address)?;
    check_port(port)?;
    check_host(host, usage)
}

/// Checks PostgreSQL's `listen` form: one or more comma-separated hosts, the port after the
/// last one (`127.0.0.1,10.0.0.5:5432`), as Patroni accepts it.
pub(crate) fn check_listen_list(address: &str) -> Result<(), String> {
    let (hosts, port) = split_host_port(address)?;
    check_port(port)?;
    for host in hosts.split(',') {
        let host = host.trim();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        check_host(host, AddressUse::Listen)?;
    }
    Ok(())
}

/// The canonical form used to compare addresses (host names are case-insensitive).
pub(crate) fn comparable(address: &str) -> String {
    address.trim().to_ascii_lowercase()
}

fn split_host_port(address: &str) -> Result<(&str, &str), String> {
    if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("unclosed '[' around an IPv6 address")?;
        let port = after
            .strip_prefix(':')
            .ok_or("missing \":port\" after the host")?;
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(format!("\"{host}\" is not an IPv6 address"));
        }
        return Ok((host, port));
    }
    let (host, port) = address
        .rsplit_once(':')
        .ok_or("missing \":port\" after the host")?;
    if host.contains(':') && !host.contains(',') {
        return Err("write IPv6 addresses in brackets, e.g. [::1]:5432".to_string());
    }
    Ok((host, port))
}

fn check_port(port: &str) -> Result<(), String> {
    match port.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(()),
        _ => Err(format!("port \"{port}\" is not a number from 1 to 65535")),
    }
}

fn check_host(host: &str, usage: AddressUse) -> Result<(), String> {
    let wildcard = host.is_empty()
        || host == "*"
        || host == "0.0.0.0"
        || host.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_unspecified());
    if wildcard {
        return match usage {
            AddressUse::Listen => Ok(()),
            AddressUse::Connect => Err(format!(
                "\"{host}\" is a listen-only wildcard; other nodes need a host name or IP they can reach"
            )),
        };
    }
    if host.parse::<Ipv6Addr>().is_ok() {
        return Ok(());
    }
    if host.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return host
            .parse::<Ipv4Addr>()
            .map(|_| ())
            .map_err(|_| format!("\"{host}\" is not an IPv4 address"));
    }
    let valid_name = host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if valid_name {
        Ok(())
    } else {
        Err(format!("\"{host}\" is not a valid host name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_usual_forms() {
        for ok in [
            "127.0.0.1:2401",
            "node-1.example.com:8008",
            "[::1]:5432",
            "db_1:5432",
        ] {
            assert_eq!(check_host_port(ok, AddressUse::Connect), Ok(()), "{ok}");
        }
        for ok in ["0.0.0.0:8008", "*:8008", ":8008", "[::]:8008"] {
            assert_eq!(check_host_port(ok, AddressUse::Listen), Ok(()), "{ok}");
        }
        assert_eq!(check_listen_list("127.0.0.1,10.0.0.5:5432"), Ok(()));
        assert_eq!(check_listen_list("*:5432"), Ok(()));
    }

    #[test]
    fn rejects_bad_ports_and_hosts() {
        let bad = [
            "127.0.0.1:99999",
            "127.0.0.1:0",
            "127.0.0.1",
            "127.0.0.1:http",
            "::1:5432",
            "300.1.1.1:5432",
            "bad host:5432",
            "0.0.0.0:5432",
            "[::1:5432",
        ];
        for address in bad {
            assert!(
                check_host_port(address, AddressUse::Connect).is_err(),
                "{address}"
            );
        }
        assert!(check_listen_list("a,b").is_err());
    }
}
