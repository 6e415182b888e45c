//! The `ssegate` binary: arguments, config, logging, runtime, run.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ssegate::config::LogFormat;
use ssegate::{Config, Gateway};

const USAGE: &str = "usage: ssegate [--config PATH] [--check]

  --config PATH   the YAML configuration (default: gateway.yaml)
  --check         validate the configuration and exit (0 when valid)
  --version       the version, and exit
  --help          this text";

/// This build's version (from `Cargo.toml`).
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn main() -> ExitCode {
    let mut config_path = PathBuf::from("gateway.yaml");
    let mut check_only = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" | "-c" => match args.next() {
                Some(p) => config_path = PathBuf::from(p),
                None => return usage_error("--config needs a path"),
            },
            "--check" => check_only = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "--version" | "-V" => {
                println!("ssegate {VERSION}");
                return ExitCode::SUCCESS;
            }
            other => return usage_error(&format!("unknown argument '{other}'")),
        }
    }
    let config = match load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ssegate: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if check_only {
        // Everything start-up checks before it binds, on the same code.
        if let Err(e) = Gateway::check(&config) {
            eprintln!(
                "ssegate: invalid configuration: {}: {e}",
                config_path.display()
            );
            return ExitCode::from(2);
        }
        println!("{}: valid", config_path.display());
        return ExitCode::SUCCESS;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match config.log.format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ssegate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (soft_before, soft_after) = ssegate::app::gateway::raise_open_files_limit();
    let (_, hard) = ssegate::app::gateway::open_files_limit();
    tracing::info!(soft_before, soft_after, hard, "open-files limit");
    runtime.block_on(run(config, config_path))
}

/// Runs until SIGTERM or SIGINT, then drains; SIGHUP reloads the config file.
async fn run(config: Config, config_path: PathBuf) -> ExitCode {
    use tokio::signal::unix::{signal, SignalKind};
    let gateway = match Gateway::start(config).await {
        Ok(g) => g,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (mut term, mut int, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(t), Ok(i), Ok(h)) => (t, i, h),
        _ => {
            tracing::error!("cannot install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(version = %VERSION, config = %config_path.display(), "ssegate running");
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                match load(&config_path)
                    .and_then(|c| gateway.reload(c).map_err(|e| e.to_string()))
                {
                    Ok(()) => {}
                    Err(e) => tracing::error!("reload refused, keeping the running config: {e}"),
                }
            }
        }
    }
    tracing::info!("signal received: draining (a second signal exits at once)");
    tokio::select! {
        left = gateway.shutdown() => {
            if left > 0 {
                tracing::warn!(left, "drain period over with connections still open");
            }
            ExitCode::SUCCESS
        }
        _ = term.recv() => second_signal(),
        _ = int.recv() => second_signal(),
    }
}

/// Reads, parses and validates the config file, each key's secret resolved from the
/// environment as start-up resolves it; errors name the file.
fn load(path: &Path) -> Result<Config, String> {
    Config::from_file_with(path, &ssegate::policy::secrets::resolved_secret)
        .map_err(|e| e.to_string())
}

fn second_signal() -> ExitCode {
    tracing::warn!("second signal: exiting now");
    ExitCode::from(130)
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("ssegate: {message}\n{USAGE}");
    ExitCode::from(2)
}
