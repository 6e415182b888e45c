//! The `ssegate` binary: arguments, config, logging, runtime, run.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use ssegate::{Config, Gateway};

const USAGE: &str = "usage: ssegate [--config PATH] [--check]

  --config PATH   the YAML configuration (default: gateway.yaml)
  --check         validate the configuration and exit (0 when valid)
  --help          this text";

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
            other => return usage_error(&format!("unknown argument '{other}'")),
        }
    }
    let config = match Config::from_file(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ssegate: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if check_only {
        println!("{}: valid", config_path.display());
        return ExitCode::SUCCESS;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

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
    runtime.block_on(async {
        let gateway = match Gateway::start(config).await {
            Ok(g) => g,
            Err(e) => {
                tracing::error!("cannot start: {e}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(config = %config_path.display(), "ssegate running");
        wait_for_signal().await;
        tracing::info!("stopping");
        drop(gateway);
        ExitCode::SUCCESS
    })
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("ssegate: {message}\n{USAGE}");
    ExitCode::from(2)
}

/// Waits for SIGINT or SIGTERM. (A graceful drain comes with its own issue.)
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
