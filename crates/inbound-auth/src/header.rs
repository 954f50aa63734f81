//! The `Authentication-Results:` header field (RFC 8601): rendering ours, and recognising
//! fields that claim to be ours.

use postkeep_delivery::{AuthResult, HeaderField, SenderAuthentication, SpfIdentity};

/// Longest `reason=` text written; reasons come from resolver and verifier errors.
const REASON_MAX: usize = 120;

/// The complete field, CRLF-terminated, one method per folded line (RFC 8601 §2.2).
pub fn render(authserv_id: &str, auth: &SenderAuthentication) -> String {
    let mut methods = Vec::with_capacity(auth.dkim.len() + 3);
    methods.push(match &auth.spf.identity {
        SpfIdentity::MailFrom(address) => {
            format!(
                "spf={} smtp.mailfrom={}",
                auth.spf.result.as_str(),
                pvalue(address)
            )
        }
        SpfIdentity::Helo(name) => {
            format!(
                "spf={} smtp.helo={}",
                auth.spf.result.as_str(),
                pvalue(name)
            )
        }
    });
    if auth.dkim.is_empty() {
        methods.push("dkim=none".to_owned());
    }
    for dkim in &auth.dkim {
        let mut method = format!("dkim={}", dkim.result.as_str());
        push_reason(&mut method, dkim.reason.as_deref());
        if let Some(domain) = &dkim.domain {
            method.push_str(" header.d=");
            method.push_str(&pvalue(domain));
        }
        if let Some(selector) = &dkim.selector {
            method.push_str(" header.s=");
            method.push_str(&pvalue(selector));
        }
        methods.push(method);
    }
    let mut dmarc = format!("dmarc={}", auth.dmarc.result.as_str());
    if let Some(policy) = auth.dmarc.policy {
        // A comment: RFC 7489 §11.2 registers no property for the policy.
        dmarc.push_str(&format!(" (p={})", policy.as_str()));
    }
    if let Some(domain) = &auth.dmarc.from_domain {
        dmarc.push_str(" header.from=");
        dmarc.push_str(&pvalue(domain));
    }
    methods.push(dmarc);
    let mut arc = format!("arc={}", arc_keyword(auth.arc.result));
    push_reason(&mut arc, auth.arc.reason.as_deref());
    methods.push(arc);

    let mut field = format!("Authentication-Results: {}", value(authserv_id));
    for method in methods {
        field.push_str(";\r\n\t");
        field.push_str(&method);
    }
    field.push_str("\r\n");
    field
}

/// RFC 8617 §10.1 registers only none, pass and fail for `arc`: anything that did not verify
/// fails (the typed result keeps the difference).
fn arc_keyword(result: AuthResult) -> &'static str {
    match result {
        AuthResult::None => "none",
        AuthResult::Pass => "pass",
        _ => "fail",
    }
}

fn push_reason(method: &mut String, reason: Option<&str>) {
    if let Some(reason) = reason.filter(|r| !r.is_empty()) {
        let short: String = reason.chars().take(REASON_MAX).collect();
        method.push_str(" reason=");
        method.push_str(&quoted(&short));
    }
}

/// True for an `Authentication-Results:` field that names `authserv_id` as its author, which
/// RFC 8601 §5 says must not reach the user: only this server may write those. A field too
/// long to read whole is dropped as well, since it cannot be shown to be someone else's.
pub fn claims_authserv_id(field: &HeaderField<'_>, authserv_id: &str) -> bool {
    if !field.name.eq_ignore_ascii_case(b"authentication-results") {
        return false;
    }
    field.truncated
        || parse_authserv_id(field.value).is_some_and(|id| id.eq_ignore_ascii_case(authserv_id))
}

/// The authserv-id at the start of a field body (RFC 8601 §2.2: `[CFWS] authserv-id`), a
/// token or a quoted-string.
fn parse_authserv_id(value: &[u8]) -> Option<String> {
    let rest = skip_cfws(value)?;
    let id = match rest.split_first() {
        Some((b'"', quoted)) => unquote(quoted)?,
        _ => {
            let end = rest
                .iter()
                .position(|b| !is_token_byte(*b))
                .unwrap_or(rest.len());
            rest.get(..end)?.to_vec()
        }
    };
    String::from_utf8(id).ok().filter(|id| !id.is_empty())
}

/// Skips folding white space and (nested) comments; `None` for an unterminated comment.
fn skip_cfws(mut rest: &[u8]) -> Option<&[u8]> {
    loop {
        match rest.first() {
            Some(b' ' | b'\t' | b'\r' | b'\n') => rest = rest.get(1..)?,
            Some(b'(') => {
                let mut depth = 0usize;
                let mut at = 0usize;
                loop {
                    match rest.get(at)? {
                        b'\\' => at += 1,
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    at += 1;
                }
                rest = rest.get(at + 1..)?;
            }
            _ => return Some(rest),
        }
    }
}

/// The content of a quoted-string whose opening quote is already consumed.
fn unquote(quoted: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut bytes = quoted.iter();
    loop {
        match bytes.next()? {
            b'"' => return Some(out),
            b'\\' => out.push(*bytes.next()?),
            b => out.push(*b),
        }
    }
}

/// RFC 2045 §5.1 token characters.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b)
}

/// RFC 8601 `value`: a token when possible, else a quoted-string.
fn value(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(is_token_byte) {
        s.to_owned()
    } else {
        quoted(s)
    }
}

/// RFC 8601 `pvalue`: a domain, an address whose local part is a dot-atom, or a `value`.
fn pvalue(s: &str) -> String {
    let is_atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    let is_domain = |d: &str| {
        !d.is_empty()
            && d.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    };
    let plain = match s.rsplit_once('@') {
        Some((local, domain)) => {
            let dot_atom = local
                .split('.')
                .all(|atom| !atom.is_empty() && atom.chars().all(is_atext));
            (local.is_empty() || dot_atom) && is_domain(domain)
        }
        None => is_domain(s),
    };
    if plain {
        s.to_owned()
    } else {
        value(s)
    }
}

/// An RFC 5322 quoted-string; line breaks and other controls are dropped, so a hostile value
/// can never end the field.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use postkeep_delivery::{ArcCheck, DkimCheck, DmarcCheck, DmarcPolicy, SpfCheck};

    use super::*;

    fn passing() -> SenderAuthentication {
        SenderAuthentication {
            spf: SpfCheck {
                result: AuthResult::Pass,
                identity: SpfIdentity::MailFrom("sender@a.test".into()),
            },
            dkim: vec![DkimCheck {
                result: AuthResult::Pass,
                domain: Some("a.test".into()),
                selector: Some("sel1".into()),
                reason: None,
            }],
            arc: ArcCheck {
                result: AuthResult::None,
                reason: None,
            },
            dmarc: DmarcCheck {
                result: AuthResult::Pass,
                from_domain: Some("a.test".into()),
                policy: Some(DmarcPolicy::Reject),
            },
        }
    }

    #[test]
    fn passing_message_renders_every_method_in_rfc8601_syntax() {
        assert_eq!(
            render("mx.example.org", &passing()),
            "Authentication-Results: mx.example.org;\r\n\
             \tspf=pass smtp.mailfrom=sender@a.test;\r\n\
             \tdkim=pass header.d=a.test header.s=sel1;\r\n\
             \tdmarc=pass (p=reject) header.from=a.test;\r\n\
             \tarc=none\r\n"
        );
    }

    #[test]
    fn failures_carry_reasons_and_null_sender_reports_helo() {
        let mut auth = passing();
        auth.spf = SpfCheck {
            result: AuthResult::TempError,
            identity: SpfIdentity::Helo("client.test".into()),
        };
        auth.dkim = vec![
            DkimCheck {
                result: AuthResult::Fail,
                domain: Some("a.test".into()),
                selector: Some("s".into()),
                reason: Some("body hash \"mismatch\"\r\nX-Evil: 1".into()),
            },
            DkimCheck {
                result: AuthResult::Neutral,
                domain: None,
                selector: None,
                reason: Some("unparsable".into()),
            },
        ];
        auth.arc = ArcCheck {
            result: AuthResult::TempError,
            reason: Some("dns".into()),
        };
        auth.dmarc = DmarcCheck {
            result: AuthResult::None,
            from_domain: None,
            policy: None,
        };
        assert_eq!(
            render("mx.example.org", &auth),
            "Authentication-Results: mx.example.org;\r\n\
             \tspf=temperror smtp.helo=client.test;\r\n\
             \tdkim=fail reason=\"body hash \\\"mismatch\\\"X-Evil: 1\" header.d=a.test header.s=s;\r\n\
             \tdkim=neutral reason=\"unparsable\";\r\n\
             \tdmarc=none;\r\n\
             \tarc=fail reason=\"dns\"\r\n"
        );
    }

    #[test]
    fn no_signature_is_dkim_none() {
        let mut auth = passing();
        auth.dkim.clear();
        assert!(render("mx", &auth).contains(";\r\n\tdkim=none;\r\n"));
    }

    #[test]
    fn odd_addresses_are_quoted_not_injected() {
        assert_eq!(pvalue("sender@a.test"), "sender@a.test");
        assert_eq!(pvalue("first.last+tag@a.test"), "first.last+tag@a.test");
        assert_eq!(pvalue("a.test"), "a.test");
        assert_eq!(
            pvalue("\"odd local\"@a.test"),
            "\"\\\"odd local\\\"@a.test\""
        );
        assert_eq!(pvalue("x;dkim=pass@a.test"), "\"x;dkim=pass@a.test\"");
        assert_eq!(pvalue("[127.0.0.1]"), "\"[127.0.0.1]\"");
        assert_eq!(pvalue("a..b@a.test"), "\"a..b@a.test\"");
    }

    #[test]
    fn authserv_id_is_found_behind_comments_and_quotes() {
        for (value, id) in [
            (&b" mx.example.org; spf=pass"[..], Some("mx.example.org")),
            (b" MX.Example.org 1; none", Some("MX.Example.org")),
            (
                b"\r\n\t(a (nested) comment) mx.example.org;",
                Some("mx.example.org"),
            ),
            (b" \"mx.example.org\"; none", Some("mx.example.org")),
            (b" (unterminated mx.example.org;", None),
            (b" ; spf=pass", None),
            (b"", None),
        ] {
            assert_eq!(parse_authserv_id(value).as_deref(), id, "{value:?}");
        }
    }

    #[test]
    fn only_fields_claiming_our_authserv_id_are_forged() {
        let field = |name: &'static [u8], value: &'static [u8], truncated| HeaderField {
            name,
            value,
            truncated,
        };
        let ours = "mx.example.org";
        assert!(claims_authserv_id(
            &field(
                b"Authentication-Results",
                b" mx.example.org; dkim=pass",
                false
            ),
            ours
        ));
        assert!(claims_authserv_id(
            &field(
                b"authentication-results",
                b" (x) MX.EXAMPLE.ORG; none",
                false
            ),
            ours
        ));
        assert!(!claims_authserv_id(
            &field(
                b"Authentication-Results",
                b" relay.other.test; dkim=pass",
                false
            ),
            ours
        ));
        assert!(!claims_authserv_id(
            &field(
                b"Authentication-Results",
                b" mx.example.org.evil; none",
                false
            ),
            ours
        ));
        assert!(!claims_authserv_id(
            &field(
                b"ARC-Authentication-Results",
                b" i=1; mx.example.org; none",
                false
            ),
            ours
        ));
        assert!(claims_authserv_id(
            &field(b"Authentication-Results", b" (((((", true),
            ours
        ));
    }
}
