//! Image files as `predict` and the image-folder loader read them (PNG or JPEG by content,
//! decoded under size limits, centre-cropped, resized, split into planes): any bytes give the
//! planes or an error naming the file. The limits are smaller than the default 16,384-pixel
//! sides: a 400-byte JPEG header may promise 50 megapixels, whose decoding takes seconds under
//! AddressSanitizer and is work in proportion to the promise, not a fault. The same code runs
//! either way; only the sizes differ.
#![no_main]

use std::path::Path;

use hetconv::data::image_file::{self, DecodeLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let limits = DecodeLimits {
        max_side: 2048,
        max_bytes: 32 << 20,
    };
    if let Ok(image) = image_file::decode_bytes(bytes, Path::new("fuzz.png"), limits) {
        let square = image_file::centre_square(&image, 8);
        let _ = image_file::planes(&square, 1);
        let _ = image_file::planes(&square, 3);
    }
});
