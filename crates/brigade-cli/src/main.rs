//! `brigade`: the worker-pool pattern's use cases as real tools.
//!
//! Each subcommand is a thin layer over the `brigade` library: it turns its
//! input into jobs, gives the library a worker function, and prints outcomes
//! as they come. The run behaviour they share (workers, queue, retries,
//! timeout, rate, progress, summary, exit codes, Ctrl-C) is in `run.rs`.

mod demo;
mod exec;
mod fetch;
mod images;
mod interrupt;
mod load;
mod logs;
mod mail;
mod queue;
mod run;
mod units;

use clap::{Parser, Subcommand};

/// Run jobs with a crew of workers: a bounded queue, one outcome per job,
/// a summary at the end.
///
/// Exit codes: 0 every job succeeded, 1 some failed, 2 bad usage or input,
/// 130 interrupted. Ctrl-C once starts no new jobs and lets the running ones
/// finish; twice stops at once.
#[derive(Parser, Debug)]
#[command(name = "brigade", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    // Each subcommand's help is the doc comment of its Args struct.
    Demo(demo::Args),
    Exec(Box<exec::Args>),
    Fetch(Box<fetch::Args>),
    Images(images::Args),
    Load(load::Args),
    Logs(logs::Args),
    Mail(Box<mail::Args>),
    Queue(queue::Args),
}

fn main() {
    std::process::exit(real_main());
}

fn real_main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                run::exit::USAGE
            } else {
                run::exit::OK
            };
        }
    };
    if let Err(e) = interrupt::install() {
        eprintln!("brigade: cannot listen for Ctrl-C: {e}");
    }
    match cli.command {
        Command::Demo(a) => demo::main(a),
        Command::Exec(a) => exec::main(*a),
        Command::Fetch(a) => fetch::main(*a),
        Command::Images(a) => images::main(a),
        Command::Load(a) => load::main(a),
        Command::Logs(a) => logs::main(a),
        Command::Mail(a) => mail::main(*a),
        Command::Queue(a) => queue::main(a),
    }
}
