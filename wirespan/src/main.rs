//! The `wirespan` command line.
#![allow(
    unused_crate_dependencies,
    reason = "the binary sees the library's dependencies; the library build checks them"
)]

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use wirespan::agent::{self, Mode};

#[derive(Parser)]
#[command(
    name = "wirespan",
    version,
    about = "HTTP/1, HTTP/2 and gRPC spans from eBPF socket capture, exported over OTLP"
)]
struct Cli {
    /// The YAML configuration file (WIRESPAN_* environment variables override it).
    #[arg(long, short, global = true, env = "WIRESPAN_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Capture traffic and export spans until SIGINT/SIGTERM (needs root or CAP_BPF+CAP_PERFMON).
    Run,
    /// Capture raw probe records into a file for `wirespan replay`.
    Record {
        #[arg(long)]
        out: PathBuf,
    },
    /// Run the user-space pipeline on a recording (no root, no eBPF).
    Replay { file: PathBuf },
    /// Print a recording's records, one line each (payloads escaped, cut at 80 bytes).
    Dump { file: PathBuf },
    /// Find the TLS library functions (SSL_read, SSL_write, ...) in an
    /// executable or shared object, with or without symbols, as the agent
    /// would before hooking them, and say how each was named.
    LocateTls {
        file: PathBuf,
        /// Extra directories of debug files (build-id tree or debuglink names).
        #[arg(long = "debug-dir")]
        debug_dirs: Vec<PathBuf>,
        /// The agent's line format (what its locator process prints).
        #[arg(long)]
        machine: bool,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file (and the WIRESPAN_* environment).
    Check { file: PathBuf },
    /// Print the full default configuration, commented.
    Default,
}

/// `wirespan locate-tls`: for people, one line per function and how it was
/// named; with `--machine`, the lines the agent's locator reads (and exit 0
/// whatever the answer, which is in the lines).
fn locate_tls(file: &std::path::Path, debug_dirs: &[PathBuf], machine: bool) -> Result<()> {
    use capture::tls_locator::{encode_answer, locate_here, locate_options};
    let started = std::time::Instant::now();
    let result = locate_here(file, &locate_options(debug_dirs.to_vec()));
    if machine {
        print!("{}", encode_answer(&result));
        return Ok(());
    }
    let took = started.elapsed();
    match result {
        Ok(found) => {
            println!("{}: {} ({took:?})", file.display(), found.library);
            for f in &found.functions {
                println!(
                    "  {:<13} file offset {:#x} (vaddr {:#x}), named by {}{}{}",
                    f.name,
                    f.file_offset,
                    f.vaddr,
                    f.source,
                    if f.detail.is_empty() { "" } else { ": " },
                    f.detail
                );
            }
            Ok(())
        }
        Err(r) => Err(anyhow::anyhow!(
            "{}: nothing to hook ({}): {}",
            file.display(),
            r.reason,
            r.message
        )),
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr: stdout carries spans when no exporter is configured.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One readable message with its causes, not a backtrace.
            eprintln!("wirespan: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    if let Command::Config { command } = &cli.command {
        return match command {
            ConfigCommand::Default => {
                print!("{}", wirespan_config::default_yaml());
                Ok(())
            }
            ConfigCommand::Check { file } => {
                wirespan_config::load(Some(file))?;
                println!("{}: ok", file.display());
                Ok(())
            }
        };
    }
    if let Command::Dump { file } = &cli.command {
        return wirespan::dump::dump(file, &mut std::io::stdout().lock());
    }
    if let Command::LocateTls {
        file,
        debug_dirs,
        machine,
    } = &cli.command
    {
        return locate_tls(file, debug_dirs, *machine);
    }
    let config = wirespan_config::load(cli.config.as_deref())?;
    init_logging(&config.log.level);
    // One thread: the ring drain, the pipeline, the exporter's batching,
    // encoding and gRPC/HTTP client, and /metrics all run on it. With two
    // worker threads beside the drain loop, every handful of spans woke the
    // exporter on another core: 3,400–7,100 thread wake-ups per 10k requests,
    // about half the agent's CPU; on one thread 170–450, and 30–40 % less CPU
    // per request (BENCHMARKS.md, "Cost of watching (issue 15), session 4").
    // Nothing here blocks the thread for long: the pipeline is synchronous
    // and bounded, exports are async; only `export.stdout` writes block.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Run => agent::run(config, Mode::Spans).await,
            Command::Record { out } => agent::run(config, Mode::Record(out)).await,
            Command::Replay { file } => {
                let summary = agent::replay(config, &file).await?;
                tracing::info!(records = summary.records, "replay finished");
                Ok(())
            }
            Command::Config { .. } | Command::Dump { .. } | Command::LocateTls { .. } => {
                unreachable!("handled above")
            }
        }
    })
}
