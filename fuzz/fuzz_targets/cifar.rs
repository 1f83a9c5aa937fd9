//! CIFAR-10 binary batches: any bytes give a data set or an error naming the record.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = hetconv::data::cifar::parse(bytes, "fuzz.bin");
});
