//! Where mail for a domain goes (RFC 5321 §5.1): its MX hosts by preference, the domain
//! itself when it has no MX (the implicit MX), nowhere for a null MX (RFC 7505).

use std::net::IpAddr;

use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::RData;
use postkeep_net::dns::{Resolver, TokioResolver};

use crate::envelope::Reply;

/// Most MX hosts tried in one attempt: enough for any sane domain, bounded for a hostile one.
const MAX_HOSTS: usize = 8;

/// One mail exchanger to try, with its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    pub addrs: Vec<IpAddr>,
}

/// The answer about a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Hosts in the order to try them.
    Hosts(Vec<Host>),
    /// No host can be used: a temporary reason (retry) or a permanent one (bounce).
    Unreachable(Reply),
}

/// The exchanger names from MX records `(preference, exchange)`, in the order to try them:
/// lowest preference first, DNS order among equals (RFC 5321 §5.1). `Err` when the domain
/// publishes only a null MX (RFC 7505 §3: a single MX of "."), which says it takes no mail.
/// A "." among real exchangers is ignored: it names no host.
pub fn order_mx(mut records: Vec<(u16, String)>) -> Result<Vec<String>, Reply> {
    let is_root = |name: &str| name.is_empty() || name == ".";
    if !records.is_empty() && records.iter().all(|(_, name)| is_root(name)) {
        // RFC 7505 §4.1: report a null MX with 556 5.1.10.
        return Err(Reply::local(
            556,
            "5.1.10",
            "the recipient's domain does not accept mail (null MX)",
        ));
    }
    records.retain(|(_, name)| !is_root(name));
    // A stable sort keeps DNS order among equal preferences.
    records.sort_by_key(|(preference, _)| *preference);
    let mut names: Vec<String> = Vec::with_capacity(records.len());
    for (_, name) in records {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names.truncate(MAX_HOSTS);
    Ok(names)
}

/// MX and address lookups through the `[dns]` resolver.
pub struct MxResolver {
    resolver: TokioResolver,
}

impl MxResolver {
    pub fn new(dns: &Resolver) -> Self {
        Self {
            resolver: dns.lookup().clone(),
        }
    }

    /// Where mail for `domain` goes now.
    pub async fn route(&self, domain: &str) -> Route {
        if let Some(literal) = address_literal(domain) {
            return match literal {
                Some(ip) => Route::Hosts(vec![Host {
                    name: format!("[{ip}]"),
                    addrs: vec![ip],
                }]),
                None => Route::Unreachable(Reply::local(
                    550,
                    "5.1.2",
                    "invalid address literal in the recipient's domain",
                )),
            };
        }
        let fqdn = format!("{}.", domain.trim_end_matches('.'));
        let names = match self.resolver.mx_lookup(fqdn.as_str()).await {
            Ok(lookup) => {
                let records = lookup
                    .answers()
                    .iter()
                    .filter_map(|record| match &record.data {
                        RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                        _ => None,
                    })
                    .collect();
                match order_mx(records) {
                    Ok(names) => names,
                    Err(null_mx) => return Route::Unreachable(null_mx),
                }
            }
            Err(e) if e.is_nx_domain() => {
                return Route::Unreachable(Reply::local(
                    550,
                    "5.1.2",
                    format!("the recipient's domain {domain} does not exist"),
                ))
            }
            // RFC 5321 §5.1: no MX at all: the domain itself is the implicit MX.
            Err(e) if e.is_no_records_found() => vec![domain.trim_end_matches('.').to_string()],
            Err(e) => return Route::Unreachable(dns_failure(domain, &e)),
        };
        self.hosts(domain, names).await
    }

    async fn hosts(&self, domain: &str, names: Vec<String>) -> Route {
        let mut hosts = Vec::with_capacity(names.len());
        let mut last_error = None;
        let mut all_missing = true;
        for name in names {
            match self.resolver.lookup_ip(format!("{name}.").as_str()).await {
                Ok(lookup) => {
                    let addrs: Vec<IpAddr> = lookup.iter().collect();
                    if !addrs.is_empty() {
                        hosts.push(Host { name, addrs });
                    }
                }
                Err(e) => {
                    all_missing &= e.is_no_records_found();
                    last_error = Some(e);
                }
            }
        }
        if !hosts.is_empty() {
            return Route::Hosts(hosts);
        }
        match last_error {
            Some(e) if !all_missing => Route::Unreachable(dns_failure(domain, &e)),
            // Every name answered authoritatively with no address: nothing will change soon.
            _ => Route::Unreachable(Reply::local(
                550,
                "5.4.4",
                format!("no address for any mail exchanger of {domain}"),
            )),
        }
    }
}

fn dns_failure(domain: &str, e: &NetError) -> Reply {
    // RFC 3463 X.4.3: directory server failure.
    Reply::local(451, "4.4.3", format!("DNS lookup for {domain} failed: {e}"))
}

/// `Some(parsed)` when `domain` is an RFC 5321 §4.1.3 address literal (`[192.0.2.1]`,
/// `[IPv6:2001:db8::1]`), `Some(None)` when it is a malformed one.
fn address_literal(domain: &str) -> Option<Option<IpAddr>> {
    let inner = domain.strip_prefix('[')?.strip_suffix(']');
    Some(inner.and_then(|inner| {
        let (v6, text) = match inner.get(..5) {
            Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => (true, inner.get(5..)?),
            _ => (false, inner),
        };
        let ip: IpAddr = text.parse().ok()?;
        (ip.is_ipv6() == v6).then_some(ip)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mx(records: &[(u16, &str)]) -> Result<Vec<String>, Reply> {
        order_mx(records.iter().map(|(p, n)| (*p, n.to_string())).collect())
    }

    #[test]
    fn exchangers_are_tried_lowest_preference_first() {
        assert_eq!(
            mx(&[
                (20, "b.example."),
                (10, "a.example."),
                (30, "c.example."),
                (10, "A2.example.")
            ])
            .unwrap(),
            ["a.example", "a2.example", "b.example", "c.example"]
        );
    }

    #[test]
    fn duplicate_exchangers_are_tried_once_and_the_list_is_bounded() {
        assert_eq!(
            mx(&[(10, "a.example."), (20, "a.example.")]).unwrap(),
            ["a.example"]
        );
        let many: Vec<(u16, String)> = (0..50).map(|i| (i, format!("h{i}.example."))).collect();
        assert_eq!(order_mx(many).unwrap().len(), MAX_HOSTS);
    }

    #[test]
    fn a_null_mx_refuses_mail_permanently() {
        let reply = mx(&[(0, ".")]).unwrap_err();
        assert_eq!((reply.code, reply.status.as_str()), (556, "5.1.10"));
        assert!(reply.is_permanent());
        // "." beside real exchangers is not a null MX: it is skipped.
        assert_eq!(mx(&[(0, "."), (10, "a.example.")]).unwrap(), ["a.example"]);
        assert!(mx(&[]).unwrap().is_empty());
    }

    #[test]
    fn address_literals_are_parsed_strictly() {
        assert_eq!(
            address_literal("[192.0.2.1]"),
            Some(Some("192.0.2.1".parse().unwrap()))
        );
        assert_eq!(
            address_literal("[IPv6:2001:db8::1]"),
            Some(Some("2001:db8::1".parse().unwrap()))
        );
        assert_eq!(address_literal("[2001:db8::1]"), Some(None));
        assert_eq!(address_literal("[IPv6:192.0.2.1]"), Some(None));
        assert_eq!(address_literal("[nonsense"), Some(None));
        assert_eq!(address_literal("example.org"), None);
    }
}
