//! The `strait` command: serve, check-config, cert, migrate, version.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use strait::config::Config;

/// mimalloc rather than glibc's allocator: on the Kafka-on-Kinesis produce path (many
/// short-lived strings and buffers, freed on other threads) glibc's malloc, free and
/// consolidation took about a fifth of strait's CPU (bench/kafka_on_kinesis.sh under perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Keeps this process off transparent huge pages. mimalloc's segments are 2 MiB-aligned, so
/// where the kernel backs them with huge pages a few bytes used make 2 MiB resident: under
/// 6,000 idle connections (bench/abuse.py) strait's RSS went from 77 MiB to 322 MiB.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and touches no memory of
        // ours; it sets a flag on the process's address space.
        let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if rc != 0 {
            eprintln!(
                "strait: could not turn transparent huge pages off: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

#[derive(Parser)]
#[command(
    name = "strait",
    version,
    about = "A Kinesis Data Streams and Kafka gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        #[arg(long, default_value = "config/strait.yaml")]
        config: PathBuf,
    },
    /// Validate a configuration file (with environment overrides) and print the result.
    CheckConfig {
        #[arg(long, default_value = "config/strait.yaml")]
        config: PathBuf,
    },
    /// Write a development CA (ca.pem) and a server certificate it signs (cert.pem, with the
    /// CA appended) and key (key.pem) for kinesis.tls. Clients trust ca.pem.
    Cert {
        #[arg(long)]
        out: PathBuf,
        /// Host names or IP addresses the certificate is for (localhost and loopback are added).
        #[arg(long, required = true)]
        host: Vec<String>,
    },
    /// Live migration from Kinesis: ask a running replica (its admin port) how it goes.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum MigrateAction {
    /// Each mirrored stream's state and lag.
    Status {
        #[arg(long, default_value = "config/strait.yaml")]
        config: PathBuf,
        /// The replica's admin URL; default: admin.listen from the configuration.
        #[arg(long)]
        admin: Option<String>,
        /// Print the status document (`{"streams": [...]}`) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Serve STREAM from the backend from now on: holds its writes while the mirror drains
    /// (refused while the mirror lags more than migration.max_cutover_lag_records).
    Cutover {
        #[arg(long, default_value = "config/strait.yaml")]
        config: PathBuf,
        #[arg(long)]
        admin: Option<String>,
        /// Give up (and leave the stream mirroring) after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        stream: String,
    },
    /// Set a Kafka consumer group's offsets on STREAM from a KCL application's checkpoints
    /// (its DynamoDB lease table), or with --reverse the lease table's checkpoints from the
    /// group's offsets. The group must have no running members.
    Checkpoints {
        #[arg(long, default_value = "config/strait.yaml")]
        config: PathBuf,
        #[arg(long)]
        admin: Option<String>,
        /// The KCL application's lease table (by default, its application name).
        #[arg(long)]
        lease_table: String,
        #[arg(long)]
        stream: String,
        #[arg(long)]
        group: String,
        /// DynamoDB's URL; default: the regional endpoint of migration.source.region.
        #[arg(long)]
        dynamodb_endpoint: Option<String>,
        /// From the group's offsets to the lease table.
        #[arg(long)]
        reverse: bool,
    },
    /// Serve a cut-over STREAM from its source again (not built yet: refused with the reason).
    Rollback {
        #[arg(long, default_value = "config/strait.yaml")]
        config: PathBuf,
        #[arg(long)]
        admin: Option<String>,
        stream: String,
    },
}

fn main() -> ExitCode {
    disable_transparent_huge_pages();
    let cli = Cli::parse();
    match cli.command {
        Command::Migrate { action } => match action {
            MigrateAction::Status {
                config,
                admin,
                json,
            } => strait::migrate::cli::status(&config, admin.as_deref(), json),
            MigrateAction::Cutover {
                config,
                admin,
                timeout,
                stream,
            } => strait::migrate::cli::action(
                &config,
                admin.as_deref(),
                &stream,
                "cutover",
                Some(timeout),
            ),
            MigrateAction::Checkpoints {
                config,
                admin,
                lease_table,
                stream,
                group,
                dynamodb_endpoint,
                reverse,
            } => strait::migrate::checkpoints_cli::checkpoints(
                &strait::migrate::checkpoints_cli::CheckpointsArgs {
                    config: &config,
                    admin: admin.as_deref(),
                    lease_table: &lease_table,
                    stream: &stream,
                    group: &group,
                    dynamodb_endpoint: dynamodb_endpoint.as_deref(),
                    reverse,
                },
            ),
            MigrateAction::Rollback {
                config,
                admin,
                stream,
            } => strait::migrate::cli::action(&config, admin.as_deref(), &stream, "rollback", None),
        },
        Command::Version => {
            println!("strait {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Cert { out, host } => match write_certificate(&out, &host) {
            Ok(()) => {
                println!(
                    "wrote {0}/ca.pem (trust this), {0}/cert.pem and {0}/key.pem",
                    out.display()
                );
                println!(
                    "use: STRAIT_KINESIS__TLS__CERT={0}/cert.pem STRAIT_KINESIS__TLS__KEY={0}/key.pem",
                    out.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("strait cert: {e}");
                ExitCode::FAILURE
            }
        },
        Command::CheckConfig { config: path } => {
            let printed = Config::load_with_overrides(Some(&path), std::env::vars())
                .map_err(|e| e.to_string())
                .and_then(|(c, overrides)| strait::config::effective_yaml(&c, &overrides));
            match printed {
                Ok(yaml) => {
                    // Standard output is the configuration alone, so it can be saved and served.
                    print!("{yaml}");
                    eprintln!("{}: ok", path.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Serve { config } => {
            let config = match Config::load(Some(&config), std::env::vars()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            if let Err(e) = strait::observe::logging::init(&config.log) {
                eprintln!("strait: {e}");
                return ExitCode::from(2);
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            match runtime.block_on(strait::run(config, shutdown_signal())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("strait: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn write_certificate(out: &std::path::Path, hosts: &[String]) -> Result<(), String> {
    let c = strait::kinesis::tls::dev_certificate(hosts)?;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let write = |name: &str, text: &str, private: bool| -> Result<(), String> {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        let _ = private;
        Ok(())
    };
    write("ca.pem", &c.ca_pem, false)?;
    write("cert.pem", &c.chain_pem, false)?;
    write("key.pem", &c.key_pem, true)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
