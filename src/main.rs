//! The `hetconv` command-line tool.

mod cli;

use clap::{CommandFactory, FromArgMatches};

fn main() {
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
