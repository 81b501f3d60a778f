//! The `leader` command: run a server, a local cluster, or talk to one. See `leader --help`.

mod cli;

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    std::process::exit(cli::main(args));
}
