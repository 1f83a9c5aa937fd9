// Activations (the values kernels pass between layers) stored as f32; kernels read them through
// f32(...) and store act(...), so that one source serves both storage types.
alias act = f32;
