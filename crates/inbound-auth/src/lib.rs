//! SPF, DKIM, DMARC and ARC verification of inbound mail (mail-auth) and the RFC 8601
//! Authentication-Results header that records it.
#![forbid(unsafe_code)]
