//! IDX images and labels (MNIST, Fashion-MNIST), gzipped or not: any bytes give the parsed file
//! or an error naming the byte offset. The first byte picks images, labels, or a pair of both
//! (split where the second byte says), so one corpus covers the three entry points.
#![no_main]

use hetconv::data::{DatasetKind, idx};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&pick, bytes)) = input.split_first() else {
        return;
    };
    match pick % 3 {
        0 => {
            let _ = idx::parse_images(bytes, "fuzz-images-idx3-ubyte");
        }
        1 => {
            let _ = idx::parse_labels(bytes, "fuzz-labels-idx1-ubyte", 10);
        }
        _ => {
            let Some((&split, rest)) = bytes.split_first() else {
                return;
            };
            let at = (usize::from(split) * rest.len() / 255).min(rest.len());
            let (images, labels) = rest.split_at(at);
            let _ = idx::parse_pair(
                images,
                "fuzz-images-idx3-ubyte",
                labels,
                "fuzz-labels-idx1-ubyte",
                DatasetKind::FashionMnist,
            );
        }
    }
});
