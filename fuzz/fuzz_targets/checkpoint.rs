//! Safetensors checkpoints, hetconv's and PyTorch's (whose network is inferred from the
//! tensor shapes): any bytes give a checkpoint or an error, never a panic, hang or huge
//! allocation.
#![no_main]

use hetconv::checkpoint::Checkpoint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(checkpoint) = Checkpoint::from_bytes(bytes, "fuzz.safetensors") {
        let _ = checkpoint.first_non_finite();
        let _ = checkpoint.class_names();
        let _ = checkpoint.step();
    }
});
