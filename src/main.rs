//! The `hetconv` command-line tool.

mod cli;

use clap::Parser;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = cli::Cli::parse();
    match cli::run(args) {
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
