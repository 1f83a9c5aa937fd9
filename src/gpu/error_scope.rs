//! wgpu error scopes around a piece of hetconv's own work (native builds): what wgpu reports
//! while it runs (validation, out of memory, internal: a driver that fails to compile a shader)
//! becomes that work's error, never a call to the device's uncaptured-error handler, which on
//! an application's own device ([`crate::Context::from_device`]) is the application's and by
//! default panics. Scopes are per thread: work another thread submits meanwhile on the same
//! device is outside them.

/// The three scopes, validation innermost.
pub(crate) struct ErrorScopes([wgpu::ErrorScopeGuard; 3]);

impl ErrorScopes {
    pub(crate) fn push(device: &wgpu::Device) -> Self {
        Self(
            [
                wgpu::ErrorFilter::Internal,
                wgpu::ErrorFilter::OutOfMemory,
                wgpu::ErrorFilter::Validation,
            ]
            .map(|filter| device.push_error_scope(filter)),
        )
    }

    /// Pops every scope (innermost first) and returns the first error one caught.
    pub(crate) fn pop(self) -> Option<wgpu::Error> {
        let caught: Vec<Option<wgpu::Error>> = self
            .0
            .into_iter()
            .rev()
            .map(|scope| pollster::block_on(scope.pop()))
            .collect();
        caught.into_iter().flatten().next()
    }
}
