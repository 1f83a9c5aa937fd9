// An f32 that is neither infinite nor NaN (not every exponent bit set).
fn is_finite(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

