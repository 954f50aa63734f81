//! DKIM keys of hosted domains (ed25519 and RSA-2048, RFC 6376 / RFC 8463), sealed at rest, and
//! the DNS records a domain must publish.
#![forbid(unsafe_code)]
