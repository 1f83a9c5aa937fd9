// Included before the conv family's shaders (see src/shaders.rs): the spatial kernel of a
// layer, as override constants so that every loop over taps has a constant trip count, and the
// channels of the 1x1 part.
// A filter's spatial kernel is KS x KS (odd), zero-padded by PAD = KS / 2 on each side; with
// stride s, output pixel (y, x) reads its taps at input rows y * s - PAD .. y * s + PAD (columns
// alike) and its 1x1 taps at (y * s, x * s), the centre tap's position.

override KS: u32 = 3u; // spatial kernel side; 1 for a layer without a spatial part
override PAD: u32 = KS / 2u;
override TAPS: u32 = KS * KS;

// The channels a filter of group g reads with 1x1 taps alone, among `count` channels in blocks
// of `block` per group: every one, or with `skip` all but g's own block (HetConv's masked 1x1
// part; or, in the weight gradient, a block whose 1x1 taps the 3x3 pass takes).
// `outside_channel` is the j-th of them; `outside_index` is channel c's index j among them (c
// outside g's block when skipped); `outside_count` is how many there are.
fn outside_channel(j: u32, g: u32, block: u32, skip: bool) -> u32 {
    return select(j, j + block, skip && j >= g * block);
}

fn outside_index(c: u32, g: u32, block: u32, skip: bool) -> u32 {
    return select(c, c - block, skip && c >= g * block);
}

fn outside_count(count: u32, block: u32, skip: bool) -> u32 {
    return select(count, count - block, skip);
}
