//! Where the hub may send notifications.

use std::net::{Ipv4Addr, Ipv6Addr};

/// May the hub POST notifications to this URL? `https://` anywhere; plain `http://` only
/// to a loopback IP literal (127.0.0.0/8 or [::1]). Host names such as `localhost` are
/// refused for http: they resolve through DNS, which the subscriber may not control.
pub fn endpoint_allowed(url: &str) -> Result<(), String> {
    if url.is_empty() {
        return Err("the endpoint is empty".to_owned());
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the endpoint holds spaces or control characters".to_owned());
    }
    let lower = url.to_ascii_lowercase();
    let (https, rest) = if lower.starts_with("https://") {
        (true, &url["https://".len()..])
    } else if lower.starts_with("http://") {
        (false, &url["http://".len()..])
    } else {
        return Err(format!("endpoint {url} must be an https:// URL"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(
            "the endpoint may not hold credentials (user@host); send them in channel.header"
                .to_owned(),
        );
    }
    let (host, port) =
        split_host_port(authority).ok_or_else(|| format!("endpoint {url} has no valid host"))?;
    if let Some(port) = port {
        if port.is_empty()
            || !port.bytes().all(|b| b.is_ascii_digit())
            || port.parse::<u16>().is_err()
        {
            return Err(format!("endpoint {url} has an invalid port"));
        }
    }
    if host.is_empty() {
        return Err(format!("endpoint {url} has no host"));
    }
    if host.starts_with('[') && !is_ipv6_literal(host) {
        return Err(format!("endpoint {url} has an invalid IPv6 address"));
    }
    if https || is_loopback_literal(host) {
        Ok(())
    } else {
        Err(format!(
            "endpoint {url}: plain http:// is allowed only to a loopback address \
             (127.0.0.0/8 or [::1]); use https://"
        ))
    }
}

/// "host[:port]" or "[v6][:port]".
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        // Keep the brackets so that the host is recognisably an IPv6 literal.
        Some((&authority[..host.len() + 2], port))
    } else {
        match authority.split_once(':') {
            Some((host, port)) => Some((host, Some(port))),
            None => Some((authority, None)),
        }
    }
}

fn is_ipv6_literal(host: &str) -> bool {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .is_some_and(|h| h.parse::<Ipv6Addr>().is_ok())
}

fn is_loopback_literal(host: &str) -> bool {
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<Ipv6Addr>().is_ok_and(|a| a.is_loopback());
    }
    host.parse::<Ipv4Addr>().is_ok_and(|a| a.is_loopback())
}
