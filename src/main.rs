//! The `hetconv` command-line tool.

mod cli;

use clap::{CommandFactory, FromArgMatches};

/// Outside a desktop session (no valid `XDG_RUNTIME_DIR`), Mesa's implicit Vulkan layer
/// `VK_LAYER_MESA_device_select` tries to reach a Wayland compositor while it lists the GPUs, and
/// libwayland prints "error: XDG_RUNTIME_DIR is invalid or not set in the environment." once per
/// listing: not an error of ours, but it reads like one. The layer only reorders devices, which
/// hetconv does itself, so there it is switched off (`NODEVICE_SELECT=1`) unless the user chose a
/// device through it (`MESA_VK_DEVICE_SELECT`) or set `NODEVICE_SELECT` already.
fn quiet_mesa_device_select() {
    let set = |name: &str| std::env::var_os(name).is_some();
    let runtime_dir =
        std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|dir| std::path::Path::new(&dir).is_dir());
    if cfg!(target_os = "linux")
        && !runtime_dir
        && !set("WAYLAND_DISPLAY")
        && !set("MESA_VK_DEVICE_SELECT")
        && !set("NODEVICE_SELECT")
    {
        // SAFETY: the first statement of main, before any other thread exists.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}

fn main() {
    quiet_mesa_device_select();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let matches = cli::Cli::command().get_matches();
    let args = cli::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match cli::run(args, &cli::given_flags(&matches)) {
        Ok(()) => {}
        // Ctrl-C, SIGTERM or SIGHUP after the checkpoint was saved: the shell's code for SIGINT.
        Err(e @ hetconv::Error::Interrupted { .. }) => {
            eprintln!("{e}");
            std::process::exit(130);
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
