// Enables f16 in the module (device feature SHADER_F16). First among a module's pieces: WGSL
// allows directives only before every declaration.
enable f16;
