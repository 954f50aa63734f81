//! The IMAP grammar side of postkeep, sans I/O: a framer that splits the byte stream into
//! commands and literals (streaming APPEND's message instead of buffering it), a shim for the
//! extension syntax imap-codec does not parse yet, and modified UTF-7 mailbox names.
//!
//! imap-codec (pinned exactly, see docs/imap-plan.md §1.1) parses and serialises everything it
//! knows; the server in `postkeep-imap` never hand-parses a command.
//!
//! - [`framer`]: bytes in, [`Event`]s out ([`Framer`], [`FramerLimits`], [`Mode`]).
//! - [`shim`]: rewrites FETCH/STATUS/SEARCH/LIST/CREATE extension syntax and RFC 5182 `$`, and
//!   lifts what imap-codec cannot express into [`Ext`].
//! - [`ext`]: the types the shim fills in, carried by [`Parsed`].
//! - [`mutf7`]: modified UTF-7 (RFC 3501 §5.1.3).
//! - [`model`]: the stored envelope and part tree as imap-types values, and
//!   [`RenderedEnvelope`], the ENVELOPE rendered once at ingest for FETCH to write as it is.
#![forbid(unsafe_code)]

pub mod ext;
pub mod framer;
pub mod model;
pub mod mutf7;
pub mod shim;

pub use ext::{
    Ext, ExtSearchKey, FetchExt, ListExt, Parsed, SearchReturn, StatusExt, EXT_KEY_PREFIX,
};
pub use framer::{Event, Framer, FramerLimits, Mode};
pub use model::RenderedEnvelope;
pub use mutf7::Mutf7Error;
pub use shim::ShimError;
