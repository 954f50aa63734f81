//! The streaming transformations BINARY and HEADER.FIELDS use give the same output however
//! their input is cut.

use crate::fetch::decode::Transform;

fn run(mut transform: Transform, input: &[u8], piece: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in input.chunks(piece) {
        transform.feed(chunk, &mut out);
    }
    transform.finish(&mut out);
    out
}

/// The output of `transform` over `input` fed whole, after checking every piece size agrees.
fn decode(transform: Transform, input: &[u8]) -> Vec<u8> {
    let whole = run(transform.clone(), input, input.len().max(1));
    for piece in 1..input.len() {
        assert_eq!(
            run(transform.clone(), input, piece),
            whole,
            "pieces of {piece} octets"
        );
    }
    whole
}

fn base64() -> Transform {
    Transform::for_encoding("BASE64").expect("base64 is known")
}

fn qp() -> Transform {
    Transform::for_encoding("QUOTED-PRINTABLE").expect("quoted-printable is known")
}

fn fields(names: &[&str], exclude: bool) -> Transform {
    Transform::fields(
        names.iter().map(|n| n.as_bytes().to_vec()).collect(),
        exclude,
    )
}

/// The decoders' own edge cases are tested in `postkeep_message::transfer`; this checks the
/// leniency BINARY chose: stray bytes are skipped, not the end of the data.
#[test]
fn binary_base64_skips_stray_bytes() {
    assert_eq!(
        decode(base64(), b"SGVs\r\nbG8s\r\n IHdv*cmxk"),
        b"Hello, world"
    );
}

#[test]
fn quoted_printable_is_decoded() {
    assert_eq!(decode(qp(), b"K=E4se=\r\n mort"), b"K\xe4se mort");
}

#[test]
fn identity_encodings_pass_through_and_others_are_unknown() {
    for encoding in ["7BIT", "8BIT", "BINARY"] {
        let transform = Transform::for_encoding(encoding).expect("identity");
        assert_eq!(decode(transform, b"a=\r\n\x00b"), b"a=\r\n\x00b");
    }
    for encoding in ["X-UUENCODE", "UUENCODE", "base64", ""] {
        assert!(Transform::for_encoding(encoding).is_none(), "{encoding}");
    }
}

const HEADER: &[u8] =
    b"Subject: a\r\n b\r\nTo : t@x\r\nNoColon\r\n\rodd: y\r\nfrom: f\r\n\r\nbody: no\r\n";

#[test]
fn field_filter_keeps_continuations_and_the_blank_line() {
    assert_eq!(
        decode(fields(&["SUBJECT", "to", "From"], false), HEADER),
        b"Subject: a\r\n b\r\nTo : t@x\r\nfrom: f\r\n\r\n"
    );
    assert_eq!(
        decode(fields(&["SUBJECT", "to", "From"], true), HEADER),
        b"NoColon\r\n\rodd: y\r\n\r\n"
    );
}

#[test]
fn field_filter_handles_orphan_continuations_and_a_missing_blank_line() {
    // A continuation before any field belongs to no listed field.
    assert_eq!(decode(fields(&["a"], false), b" lead\r\nA: 1"), b"A: 1");
    assert_eq!(decode(fields(&["a"], true), b" lead\r\nA: 1"), b" lead\r\n");
    // A header cut inside a field name is decided at the end.
    assert_eq!(decode(fields(&["partial"], false), b"Partial"), b"Partial");
}
