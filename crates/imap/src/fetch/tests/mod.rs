//! FETCH responses written for messages in a real store, compared byte for byte.

mod support;

mod decode;
mod envelope;
mod items;
mod sections;
mod streaming;
