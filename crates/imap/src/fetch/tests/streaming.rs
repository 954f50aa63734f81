//! Large messages stream through the writer in bounded pieces.

use base64::Engine;

use super::support::*;
use crate::fetch::literal::{CHUNK, MEMORY_BUDGET};
use crate::fetch::Opened;

/// A 5 MB single-part message of text lines.
fn five_megabytes() -> Vec<u8> {
    let mut raw = b"From: big@example.org\r\nSubject: big\r\n\r\n".to_vec();
    let line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n";
    while raw.len() < 5_000_000 {
        raw.extend_from_slice(line);
    }
    raw
}

#[tokio::test]
async fn five_megabyte_body_is_written_in_bounded_pieces() {
    let fx = Fixture::new().await;
    let raw = five_megabytes();
    let item = fx.append(&raw, &[], &[]).await;
    let req = request("(UID BODY.PEEK[] RFC822.SIZE)", Vec::new());
    let mut out = CountingWriter::default();
    fetch_into(&mut out, &fx.store, &item, &Opened::Nothing, &req, &plain())
        .await
        .unwrap();
    let head = format!("* 1 FETCH (UID 1 BODY[] {{{}}}\r\n", raw.len());
    let tail = format!(" RFC822.SIZE {})\r\n", raw.len());
    assert_eq!(out.total, (head.len() + raw.len() + tail.len()) as u64);
    assert!(out.head.starts_with(head.as_bytes()));
    assert!(out.tail.ends_with(tail.as_bytes()));
    assert!(out.largest <= CHUNK, "largest write {}", out.largest);
    assert!(out.writes >= (raw.len() / CHUNK) as u64);
}

/// Deterministic bytes of every value; NUL exactly at the multiples of 256.
fn attachment(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 256) as u8).collect()
}

fn with_attachment(data: &[u8]) -> Vec<u8> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    let mut raw = b"From: a@example.org\r\n\
Content-Type: multipart/mixed; boundary=Z\r\n\
\r\n\
--Z\r\n\
Content-Type: text/plain\r\n\
\r\n\
see attached\r\n\
--Z\r\n\
Content-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n"
        .to_vec();
    for line in encoded.as_bytes().chunks(76) {
        raw.extend_from_slice(line);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"--Z--\r\n");
    raw
}

#[tokio::test]
async fn binary_of_a_part_larger_than_the_memory_budget_is_decoded_in_a_second_pass() {
    let fx = Fixture::new().await;
    let data = attachment(2 * MEMORY_BUDGET + 5);
    let item = fx.append(&with_attachment(&data), &[], &[]).await;
    let out = fx
        .fetch(
            &item,
            "(BINARY.SIZE[2] BINARY.PEEK[2] BINARY.PEEK[2]<2000000.100>)",
            plain(),
        )
        .await
        .unwrap();
    let mut expected = format!(
        "* 1 FETCH (BINARY.SIZE[2] {} BINARY[2] ~{{{}}}\r\n",
        data.len(),
        data.len()
    )
    .into_bytes();
    expected.extend_from_slice(&data);
    // The window holds no NUL, but a part too large to keep is only known to contain NUL
    // somewhere, so its windows are literal8 too (which BINARY always allows, RFC 3516 §4.3).
    let window = &data[2_000_000..2_000_100];
    assert!(!window.contains(&0));
    expected.extend_from_slice(b" BINARY[2]<2000000> ~{100}\r\n");
    expected.extend_from_slice(window);
    expected.extend_from_slice(b")\r\n");
    let differs = out.iter().zip(&expected).position(|(a, b)| a != b);
    assert_eq!((out.len(), differs), (expected.len(), None));

    let mut counting = CountingWriter::default();
    let req = request("BINARY.PEEK[2]", Vec::new());
    let summary = fx.summary(&item).await;
    fetch_into(&mut counting, &fx.store, &item, &summary, &req, &plain())
        .await
        .unwrap();
    assert!(
        counting.largest <= CHUNK,
        "largest write {}",
        counting.largest
    );
}

#[tokio::test]
async fn small_binary_parts_are_decoded_once_and_kept() {
    let fx = Fixture::new().await;
    let data = attachment(100_000);
    let item = fx.append(&with_attachment(&data), &[], &[]).await;
    let out = fx
        .fetch(&item, "(BINARY.PEEK[2]<99800.50> BINARY.SIZE[2])", plain())
        .await
        .unwrap();
    let mut expected = b"* 1 FETCH (BINARY[2]<99800> ~{50}\r\n".to_vec();
    expected.extend_from_slice(&data[99_800..99_850]);
    expected.extend_from_slice(b" BINARY.SIZE[2] 100000)\r\n");
    assert_eq!(out, expected);
}
