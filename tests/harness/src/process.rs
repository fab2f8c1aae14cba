//! The `distlog` binary as a child process.

use crate::{GUARD, HarnessError};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

/// The cargo profile [`distlog_bin`] builds with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// The profile of the calling executable's directory: `dev` for `target/debug`,
    /// `release` for `target/release`, a custom profile by its name (tests).
    Caller,
    /// `bench`: benchmarks live in `target/release` too, but their dependencies were built
    /// with the bench profile, which `--release` would rebuild.
    Bench,
}

/// The `distlog` binary: `DISTLOG_BIN` if set, else `cargo build -p distlog` is run once per
/// process (a no-op when it is up to date) into the target directory the calling executable
/// lives in (`<target>/<profile>/deps/`), and `<target>/<profile>/distlog` is returned. The
/// first call's answer, and `profile`, hold for the whole process.
pub fn distlog_bin(profile: Profile) -> Result<PathBuf, HarnessError> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        locate(profile).map_err(|e| match e {
            HarnessError::Binary(why) => why,
            other => other.to_string(),
        })
    })
    .clone()
    .map_err(HarnessError::Binary)
}

fn locate(profile: Profile) -> Result<PathBuf, HarnessError> {
    if let Some(bin) = std::env::var_os("DISTLOG_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let missing = || HarnessError::Binary("the caller is not in <target>/<profile>/deps".into());
    let exe = std::env::current_exe().map_err(HarnessError::io("locating this executable"))?;
    let profile_dir = exe.parent().and_then(Path::parent).ok_or_else(missing)?;
    let target_dir = profile_dir.parent().ok_or_else(missing)?;
    let dir_name = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(missing)?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--quiet", "-p", "distlog", "--bin", "distlog"])
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    match (profile, dir_name) {
        (Profile::Bench, _) => {
            build.args(["--profile", "bench"]);
        }
        (Profile::Caller, "debug") => {}
        (Profile::Caller, "release") => {
            build.arg("--release");
        }
        (Profile::Caller, other) => {
            build.args(["--profile", other]);
        }
    }
    let status = build
        .status()
        .map_err(HarnessError::io("running cargo build -p distlog"))?;
    if !status.success() {
        return Err(HarnessError::Binary(format!(
            "cargo build -p distlog failed: {status}"
        )));
    }
    let bin = profile_dir.join(format!("distlog{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        return Err(HarnessError::Binary(format!(
            "{} was not built",
            bin.display()
        )));
    }
    Ok(bin)
}

/// Runs `bin` with `args`, feeding it `stdin`, and collects its output.
pub fn run(bin: &Path, args: &[&str], stdin: &[u8]) -> Result<Output, HarnessError> {
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(HarnessError::io(format!("starting {}", bin.display())))?;
    let mut input = child
        .stdin
        .take()
        .ok_or_else(|| HarnessError::Task("no stdin pipe".into()))?;
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || input.write_all(&stdin));
    let out = child
        .wait_with_output()
        .map_err(HarnessError::io("waiting for distlog"))?;
    writer
        .join()
        .map_err(|_| HarnessError::Task("the stdin writer panicked".into()))?
        .map_err(HarnessError::io("writing distlog's stdin"))?;
    Ok(out)
}

/// A running `distlog serve --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0` with its Kafka
/// listener on `127.0.0.1:0` too, killed and reaped on drop if still running.
#[derive(Debug)]
pub struct Process {
    bin: PathBuf,
    child: Child,
    grpc: SocketAddr,
    metrics: SocketAddr,
    kafka: Option<SocketAddr>,
    log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Process {
    /// Starts `bin serve` over `data_dir` with text logs at `log_level` (it must let
    /// `distlog::serve` log at info: the listening lines) and `extra` arguments, and waits
    /// up to [`GUARD`] (a first start compiles the built-in plugins) for both listening
    /// lines. `RUST_LOG` is not passed on.
    pub fn start(
        bin: &Path,
        data_dir: &Path,
        log_level: &str,
        extra: &[&str],
    ) -> Result<Self, HarnessError> {
        let mut child = Command::new(bin)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
                "--set",
                "kafka.listen=127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--log-format", "text", "--log-level", log_level])
            .args(extra)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(HarnessError::io(format!(
                "starting {} serve",
                bin.display()
            )))?;
        let Some(stderr) = child.stderr.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HarnessError::Task("no stderr pipe".into()));
        };
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let reader = {
            let log = log.clone();
            // Ends at the child's exit (end of its stderr); until then keeps the log.
            std::thread::spawn(move || {
                let mut grpc = None;
                let mut metrics = None;
                let mut kafka = None;
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    // Logged before the gRPC line, when the listener is on.
                    if let Some(addr) = listening_addr(&line, "kafka listening on ") {
                        kafka = Some(addr);
                    }
                    if let Some(addr) = listening_addr(&line, "grpc listening on ") {
                        grpc = Some(addr);
                    }
                    if let Some(addr) = listening_addr(&line, "metrics listening on ") {
                        metrics = Some(addr);
                    }
                    if let (Some(g), Some(m)) = (grpc, metrics) {
                        let _ = tx.send((g, m, kafka.take()));
                        grpc = None;
                    }
                    if let Ok(mut log) = log.lock() {
                        log.push_str(&line);
                        log.push('\n');
                    }
                }
            })
        };
        match rx.recv_timeout(GUARD) {
            Ok((grpc, metrics, kafka)) => Ok(Self {
                bin: bin.to_owned(),
                child,
                grpc,
                metrics,
                kafka,
                log,
                reader: Some(reader),
            }),
            // Timed out, or the child exited (its stderr closed) before serving.
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = log.lock().map(|l| l.clone()).unwrap_or_default();
                Err(HarnessError::NotServing { log })
            }
        }
    }

    /// The Kafka listener's address (`None` when `extra` turned it off).
    pub fn kafka(&self) -> Option<SocketAddr> {
        self.kafka
    }

    /// The gRPC address.
    pub fn grpc(&self) -> SocketAddr {
        self.grpc
    }

    /// The metrics endpoint's address.
    pub fn metrics(&self) -> SocketAddr {
        self.metrics
    }

    /// The child's process id (for signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Runs a client subcommand against this broker (`--broker <grpc>` appended), feeding
    /// `stdin`.
    pub fn cli(&self, args: &[&str], stdin: &[u8]) -> Result<Output, HarnessError> {
        let broker = self.grpc.to_string();
        run(&self.bin, &[args, &["--broker", &broker]].concat(), stdin)
    }

    /// Like [`Process::cli`], and fails unless the command succeeded; returns its stdout.
    pub fn ok(&self, args: &[&str], stdin: &[u8]) -> Result<Vec<u8>, HarnessError> {
        let out = self.cli(args, stdin)?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(HarnessError::Command {
                args: args.iter().map(|&a| a.to_owned()).collect(),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
    }

    /// Sends SIGTERM and waits up to a minute for the process to exit; a broker that does
    /// not is killed and reported with its log.
    pub fn terminate(self) -> Result<ExitStatus, HarnessError> {
        Ok(self.terminate_logged()?.0)
    }

    /// [`Process::terminate`], also returning the whole log (read to the end of stderr).
    pub fn terminate_logged(mut self) -> Result<(ExitStatus, String), HarnessError> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .map_err(HarnessError::io("running kill -TERM"))?;
        if !status.success() {
            return Err(HarnessError::Task(format!("kill -TERM failed: {status}")));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .map_err(HarnessError::io("waiting for distlog serve"))?
            {
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return Ok((status, self.log()));
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                return Err(HarnessError::StillRunning { log: self.log() });
            }
            // A child's exit cannot be awaited with a deadline through `std::process`.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn listening_addr(line: &str, marker: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(marker)? + marker.len()..];
    rest.split_whitespace().next()?.parse().ok()
}
