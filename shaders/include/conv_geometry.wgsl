// Included before the conv family's shaders (see src/shaders.rs): the spatial kernel of a
// layer, as override constants so that every loop over taps has a constant trip count.
// A filter's spatial kernel is KS x KS (odd), zero-padded by PAD = KS / 2 on each side; with
// stride s, output pixel (y, x) reads its taps at input rows y * s - PAD .. y * s + PAD (columns
// alike) and its 1x1 taps at (y * s, x * s), the centre tap's position.

override KS: u32 = 3u; // spatial kernel side; 1 for a layer without a spatial part
override PAD: u32 = KS / 2u;
override TAPS: u32 = KS * KS;
