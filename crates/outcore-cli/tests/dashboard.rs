//! The live dashboard and the report: the endpoints over real sockets, the refusals, and the
//! page in a real browser (Debian's Chromium; playwright-core for the live page).
//!
//! Browser tests need `chromium` (and for the live page `node` with playwright-core, found
//! through `OUTCORE_PLAYWRIGHT`, the `node_modules` directory holding it). Without them they
//! say loudly that they skip, and fail when `OUTCORE_REQUIRE_BROWSER=1` (as CI sets).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_large-svd");

/// A `large-svd` serving a dashboard, killed when dropped.
struct Served {
    child: Child,
    url: String,
    /// host:port to connect to.
    addr: String,
    token: Option<String>,
    /// Keeps the reader of stderr sending.
    _stderr: mpsc::Receiver<String>,
}

impl Served {
    /// Starts `large-svd args` and waits for the URL it prints.
    fn start(args: &[&str]) -> Self {
        let mut command = Command::new(BIN);
        command.args(args);
        Self::spawn(command)
    }

    /// A small TSQR (2,000 x 5) served with `dashboard` flags, lingering two minutes.
    fn small(dashboard: &[&str]) -> Self {
        let mut args = vec!["tsqr", "--rows", "2000", "--cols", "5", "--dashboard-linger", "120"];
        args.extend(dashboard);
        Self::start(&args)
    }

    /// Starts `command` (a `large-svd`, or ranks of one) and waits for the URL it prints.
    fn spawn(mut command: Command) -> Self {
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start large-svd");
        let (send, lines) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = send.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = loop {
            let line = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("a dashboard URL");
            if let Some(url) = line.strip_prefix("dashboard: http://") {
                break format!("http://{url}");
            }
        };
        let rest = url.trim_start_matches("http://");
        let (hostport, query) = rest.split_once('/').unwrap_or((rest, ""));
        let port = hostport.rsplit(':').next().expect("port").to_string();
        let token = query.split_once("token=").map(|(_, t)| t.to_string());
        Self { child, url, addr: format!("127.0.0.1:{port}"), token, _stderr: lines }
    }

    /// GET `path` (with the token, if any): status code and body.
    fn get(&self, path: &str) -> (u16, String) {
        let path = match &self.token {
            Some(t) => format!("{path}?token={t}"),
            None => path.to_string(),
        };
        request(&self.addr, "GET", &path)
    }

    fn state(&self) -> Value {
        let (code, body) = self.get("/api/state.json");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).expect("state.json parses")
    }

    /// The state once the command's runs finished.
    fn finished_state(&self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let state = self.state();
            if state["status"] == "finished" {
                return state;
            }
            assert!(state["status"] != "failed", "{state}");
            assert!(Instant::now() < deadline, "the run did not finish: {state}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Ctrl-C ends the linger at once; what the command printed on stdout.
    fn interrupt(mut self) -> String {
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().expect("wait").is_none() {
            assert!(Instant::now() < deadline, "Ctrl-C did not end the linger");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stdout()
    }

    /// Ctrl-C on `mpirun` ends every rank within a second of the SIGTERM `mpirun` sends ten
    /// seconds later (see `mpirun::patient_launcher`), before the SIGKILL that follows (with
    /// Open MPI's default step of one second, too): ranks waiting out rank 0's linger inside
    /// `MPI_Finalize` took two seconds, and were killed. What the job printed.
    #[cfg(feature = "mpi")]
    fn interrupt_ranks(mut self) -> String {
        let ranks = mpirun::children(self.child.id());
        assert!(!ranks.is_empty(), "no ranks under the launcher");
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        let sent = Instant::now();
        while !ranks.iter().all(|&rank| mpirun::exited(rank)) {
            assert!(sent.elapsed() < Duration::from_secs(11), "a rank outlived mpirun's SIGTERM by a second");
            std::thread::sleep(Duration::from_millis(10));
        }
        self.child.wait().expect("wait");
        self.stdout()
    }

    /// What the command printed on stdout, once it ended.
    fn stdout(mut self) -> String {
        let mut out = String::new();
        self.child.stdout.take().expect("stdout").read_to_string(&mut out).expect("stdout");
        out
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn request(addr: &str, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    // One write: a server that answers (503) and closes after the first piece would reset the rest.
    let head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).expect("send");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read");
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("a status");
    (code, body.to_string())
}

/// Sends `head` (a whole request head) to `addr`: the status code, headers and body.
fn raw_request(addr: &str, head: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    stream.write_all(head.as_bytes()).expect("send");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("an answer within 30 s");
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("a status");
    (code, head.to_string(), body.to_string())
}

/// Reads the event stream until the run finished: every message's state.
fn events_until_finished(addr: &str) -> Vec<Value> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    stream.write_all(format!("GET /api/events HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).expect("send");
    let mut messages = Vec::new();
    for line in BufReader::new(stream).lines() {
        let line = line.expect("an event within a minute");
        if let Some(data) = line.strip_prefix("data: ") {
            let state: Value = serde_json::from_str(data).expect("an event parses");
            let done = state["status"] == "finished";
            messages.push(state);
            if done {
                break;
            }
        }
    }
    messages
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{v} is not a count"))
}

#[test]
fn the_dashboard_streams_the_run_and_serves_state_metrics_and_trace() {
    let served = Served::start(&[
        "tsqr",
        "--rows",
        "1500000",
        "--chunk-rows",
        "2000",
        "--memory-limit",
        "64MiB",
        "--json",
        "--dashboard",
        "127.0.0.1:0",
        "--dashboard-linger",
        "120",
    ]);
    assert!(served.url.starts_with("http://127.0.0.1:") && served.token.is_none(), "{}", served.url);
    let messages = events_until_finished(&served.addr);
    // The numbers move: several pushes, progress never backwards, some while running.
    let done: Vec<u64> = messages.iter().map(|m| u(&m["tasks"]["done"])).collect();
    assert!(messages.len() >= 3, "{done:?}");
    assert!(done.windows(2).all(|w| w[0] <= w[1]), "{done:?}");
    assert!(messages.iter().any(|m| m["status"] == "running" && u(&m["tasks"]["done"]) < u(&m["tasks"]["total"])));
    // Each message brings the tasks after the last one's: together, every task once.
    let mut next = 0;
    for m in &messages {
        assert_eq!(u(&m["stream"]["from"]), next, "task stream deltas");
        next += m["stream"]["tasks"].as_array().expect("tasks").len() as u64;
    }
    let last = messages.last().expect("a message");
    assert_eq!(next, u(&last["tasks"]["done"]));

    let state = served.finished_state();
    let total = u(&state["tasks"]["total"]);
    assert!(total > 50, "{state}");
    assert_eq!(u(&state["tasks"]["done"]), total);
    let by_stage: u64 = state["stages"].as_array().expect("stages").iter().map(|s| u(&s["done"])).sum();
    assert_eq!(by_stage, total);
    let names: Vec<&str> = state["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["panel QR", "R reduction", "SVD of R"]);
    assert_eq!(state["stages"][1]["after"], serde_json::json!([0]));
    let worker = &state["workers"][0];
    assert_eq!(u(&worker["limit"]), 64 << 20);
    assert!(u(&worker["process"]) > 0, "{worker}");
    assert_eq!(worker["thresholds"]["pause"], 0.8);
    // Samples: seconds, process, managed, ...; the pool held chunks during the run.
    let timeline = state["timeline"].as_array().expect("timeline");
    assert!(timeline.iter().any(|p| u(&p[2]) > 0 && u(&p[1]) >= u(&p[2])), "{timeline:?}");
    // The roofline's counts: the panels read the matrix once; their QRs and the tree's do at
    // least one Householder QR's flops of the whole, and the tree adds little (2,000-row panels,
    // n = 100). The roof was measured, the CPU time counted.
    let (m, n) = (1_500_000u64, 100u64);
    let work = &state["work"];
    assert_eq!(u(&work["read"]), 8 * m * n, "{work}");
    let householder = 2 * m * n * n - 2 * n * n * n / 3;
    assert!((householder..householder + householder / 10).contains(&u(&work["flops"])), "{work} {householder}");
    assert!(work["roofs"]["gemm"].as_f64().unwrap() > 1e8, "{work}");
    assert!(work["cpu"].as_f64().unwrap() > 0.0, "{work}");

    let (code, metrics) = served.get("/metrics");
    assert_eq!(code, 200);
    assert!(metrics.contains(&format!("\noutcore_tasks_done_total {total}\n")), "{metrics}");
    assert!(metrics.contains(&format!("\noutcore_tasks {total}\n")), "{metrics}");
    assert!(metrics.contains("outcore_memory_limit_bytes 67108864"), "{metrics}");
    assert!(metrics.contains("outcore_stage_tasks_done_total{stage=\"panel QR\"}"), "{metrics}");
    assert!(metrics.contains(&format!("\noutcore_input_bytes_total {}\n", 8 * m * n)), "{metrics}");
    // Counters end in _total, and a sum over memory_bytes adds parts, not the whole again.
    for line in metrics.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split_whitespace().nth(2).unwrap();
        assert_eq!(line.ends_with(" counter"), name.ends_with("_total"), "{line}");
    }
    assert!(
        metrics.contains("outcore_process_memory_bytes ") && !metrics.contains("category=\"process\""),
        "{metrics}"
    );
    let (code, trace) = served.get("/trace.json");
    assert_eq!(code, 200);
    let trace: Value = serde_json::from_str(&trace).expect("trace parses");
    let slices = trace["traceEvents"].as_array().unwrap().iter().filter(|e| e["ph"] == "X").count();
    assert_eq!(slices as u64, total);
    let (code, page) = served.get("/");
    assert_eq!(code, 200);
    assert!(
        page.contains("api/events") && !page.contains("\"/api") && !page.contains("src=\"http"),
        "relative URLs only"
    );
    assert_eq!(served.get("/nothing-here").0, 404);
    assert_eq!(request(&served.addr, "POST", "/api/state.json").0, 405);
    // What rank 0 asks of another rank: the newest tasks after a cursor, without samples.
    let (code, part) = request(&served.addr, "GET", "/api/state.json?from=3&tasks=5&timeline=0");
    assert_eq!(code, 200);
    let part: Value = serde_json::from_str(&part).expect("a state");
    assert_eq!(part["stream"]["tasks"].as_array().unwrap().len(), 5);
    assert_eq!(u(&part["stream"]["from"]), total - 5);
    assert_eq!(part["timeline"], serde_json::json!([]));
    // Live pages are capped at six, leaving room for requests; a closed page gives its place
    // back.
    let stream = |addr: &str| {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.write_all(format!("GET /api/events HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).expect("send");
        let mut first = [0u8; 12];
        s.read_exact(&mut first).expect("served");
        (s, String::from_utf8_lossy(&first).into_owned())
    };
    // The page read above is closed, but the server learns it only at its next write (a
    // keep-alive within seconds): until then it holds a place.
    let deadline = Instant::now() + Duration::from_secs(20);
    let held = loop {
        let mut held = Vec::new();
        let refused = loop {
            let (s, status) = stream(&served.addr);
            if status != "HTTP/1.1 200" || held.len() > 6 {
                break status;
            }
            held.push(s);
        };
        if held.len() == 6 {
            assert_eq!(refused, "HTTP/1.1 503");
            break held;
        }
        assert!(held.len() < 6 && Instant::now() < deadline, "{} live pages served at once", held.len());
        drop(held);
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(request(&served.addr, "GET", "/api/state.json").0, 200, "requests keep their room");
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(20);
    while stream(&served.addr).1 != "HTTP/1.1 200" {
        assert!(Instant::now() < deadline, "closed connections kept their places");
        std::thread::sleep(Duration::from_millis(100));
    }

    let stdout = served.interrupt();
    let summary: Value = serde_json::from_str(&stdout).expect("the summary");
    assert_eq!(u(&summary["tasks"]), total);
    assert!(u(&summary["memory"]["dashboard_bytes"]) >= 1 << 20, "the dashboard's memory, counted");
}

/// `args` fail with exit code `code` (2: refused when parsed) naming each of `words`.
fn fails_with(code: i32, args: &[String], words: &[&str]) {
    let out = Command::new(BIN).args(args).output().expect("run large-svd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?} should fail: {stderr}");
    for w in words {
        assert!(stderr.contains(w), "{args:?}: {stderr:?} lacks {w:?}");
    }
}

#[test]
fn bad_dashboard_options_are_refused_before_any_work() {
    let run = ["tsqr", "--rows", "1000", "--cols", "5"];
    let with = |extra: &[&str]| -> Vec<String> { run.iter().chain(extra).map(|s| s.to_string()).collect() };
    fails_with(1, &with(&["--dashboard", "0.0.0.0:8787"]), &["--dashboard-allow-remote", "127.0.0.1"]);
    fails_with(1, &with(&["--dashboard", "not-an-address"]), &["--dashboard", "HOST:PORT"]);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = taken.local_addr().expect("addr").to_string();
    fails_with(1, &with(&["--dashboard", &addr]), &["in use", "--dashboard 127.0.0.1:0"]);
    fails_with(2, &with(&["--report", "run.txt"]), &["--report", ".html"]);
    fails_with(1, &with(&["--report", "/no/such/dir/run.html"]), &["--report", "does not exist"]);
    fails_with(2, &with(&["--dashboard", "127.0.0.1:0", "--dashboard-linger=-1"]), &["--dashboard-linger"]);
    // The allow and linger flags mean nothing without a dashboard: clap refuses them (exit 2).
    let out = Command::new(BIN).args(with(&["--dashboard-allow-remote"])).output().expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_dashboard_other_machines_reach_needs_its_token() {
    let served = Served::small(&["--dashboard", "0.0.0.0:0", "--dashboard-allow-remote"]);
    let token = served.token.clone().expect("a token in the URL");
    assert_eq!(token.len(), 32, "{}", served.url);
    assert_eq!(request(&served.addr, "GET", "/api/state.json").0, 403);
    assert_eq!(request(&served.addr, "GET", "/api/state.json?token=wrong").0, 403);
    assert_eq!(served.get("/api/state.json").0, 200);
    assert_eq!(served.get("/").0, 200);
}

#[test]
fn slow_idle_and_tokenless_clients_cannot_lock_out_the_token_holder() {
    let served = Served::small(&["--dashboard", "0.0.0.0:0", "--dashboard-allow-remote"]);
    // Eight clients sending their request a byte at a time, without the token, and a hundred
    // that connect and send nothing: each used to hold one of the eight serving slots.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let slow: Vec<_> = (0..8)
        .map(|_| {
            let (addr, stop) = (served.addr.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(&addr).expect("connect");
                for byte in b"GET /api/events HTTP/1.1\r\nHost: x\r\n".iter().cycle() {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) || stream.write_all(&[*byte]).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(300));
                }
            })
        })
        .collect();
    let idle: Vec<TcpStream> = (0..100).map(|_| TcpStream::connect(&served.addr).expect("connect")).collect();
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..3 {
        let (code, body) = served.get("/api/state.json");
        assert_eq!(code, 200, "the token holder was kept out: {body}");
        let (code, _) = request(&served.addr, "GET", "/api/state.json");
        assert_eq!(code, 403, "no token, no state");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(idle);
    for thread in slow {
        thread.join().expect("a slow client");
    }
}

#[test]
fn a_loopback_dashboard_answers_only_loopback_names_and_allowed_proxies() {
    let served = Served::small(&["--dashboard", "127.0.0.1:0", "--dashboard-allow-host", "Hub.Example"]);
    let port = served.addr.rsplit(':').next().expect("a port").to_string();
    let get = |host: &str| {
        raw_request(&served.addr, &format!("GET /api/state.json HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"))
    };
    // A page of another site whose name was rebound to 127.0.0.1 sends its own name.
    let (code, _, body) = get(&format!("evil.example:{port}"));
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("--dashboard-allow-host"), "{body}");
    for host in
        [format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("[::1]:{port}"), "hub.example".into()]
    {
        let (code, head, body) = get(&host);
        assert_eq!(code, 200, "{host}: {body}");
        assert!(head.contains("Content-Type: application/json; charset=utf-8"), "{head}");
    }
    // Health checks use HEAD: the head of the answer, no body.
    let (code, head, body) =
        raw_request(&served.addr, &format!("HEAD / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"));
    assert_eq!((code, body.as_str()), (200, ""), "{head}");
    assert!(head.contains("text/html; charset=utf-8"), "{head}");
    let (code, _, _) =
        raw_request(&served.addr, &format!("POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n"));
    assert_eq!(code, 405);
}

/// The state inlined in a report.
fn report_state(path: &Path) -> Value {
    let html = std::fs::read_to_string(path).expect("the report");
    let start = html.find("const REPORT = ").expect("inlined state") + "const REPORT = ".len();
    let end = start + html[start..].find(";\nconst query").expect("end of the state");
    serde_json::from_str(&html[start..end]).expect("the inlined state parses")
}

#[test]
fn the_report_is_one_offline_file_even_for_a_failed_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("run.html");
    // A run that spills (a target of 1% of 64 MiB), so that the report has peaks to show.
    let spilling = ["--memory-limit", "64MiB", "--thresholds", "target=0.01"];
    let out = Command::new(BIN)
        .args(["tsqr", "--rows", "30000", "--chunk-rows", "1000", "--json", "--report"])
        .arg(&path)
        .args(spilling)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).expect("summary");
    let html = std::fs::read_to_string(&path).expect("report");
    // Nothing to fetch: no scripts, styles or images from elsewhere, no server to ask.
    for outside in ["src=", "<link rel=\"stylesheet\"", "https://", "@import"] {
        assert!(!html.contains(outside), "the report refers to {outside}");
    }
    let state = report_state(&path);
    assert_eq!(state["status"], "finished");
    assert_eq!(state["tasks"]["done"], summary["tasks"]);
    assert_eq!(state["stream"]["tasks"].as_array().unwrap().len() as u64, u(&summary["tasks"]));
    // The end's values and the peaks: nothing is left in spill files, but the run spilled.
    let worker = &state["workers"][0];
    assert_eq!(u(&worker["spilled"]), 0, "{worker}");
    assert!(u(&worker["peak_spilled"]) > 0 && u(&worker["spills"]) > 0, "{worker}");
    assert!(u(&worker["peak_process"]) >= u(&worker["process"]), "{worker}");

    // A command that fails still leaves its report, marked failed.
    let failed = dir.path().join("failed.html");
    let input = dir.path().join("a.zarr");
    let made = Command::new(BIN)
        .args(["generate", "--rows", "20000", "--cols", "10", "--chunk-rows", "1000", "--output"])
        .arg(&input)
        .output()
        .expect("generate");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let out = Command::new(BIN)
        .args(["tsqr", "--input"])
        .arg(&input)
        .arg("--report")
        .arg(&failed)
        .env("OUTCORE_INJECT_FAULTS", "input:read=5,persistent")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let state = report_state(&failed);
    assert_eq!(state["status"], "failed");
}

// ---- In a real browser ----

/// Debian's Chromium, or a loud skip (a failure under `OUTCORE_REQUIRE_BROWSER=1`).
fn chromium() -> Option<PathBuf> {
    let found = ["/usr/bin/chromium", "/usr/lib/chromium/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("OUTCORE_REQUIRE_BROWSER").is_none(),
            "OUTCORE_REQUIRE_BROWSER is set but Chromium is not installed (apt install chromium)"
        );
        eprintln!("SKIPPED: no Chromium (apt install chromium); the dashboard was not checked in a browser");
    }
    found
}

/// The DOM of `url` after its script ran, in headless Chromium.
fn dump_dom(chromium: &Path, url: &str) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let out = Command::new(chromium)
        .args(CHROMIUM_FLAGS)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--virtual-time-budget=3000", "--dump-dom", url])
        .stderr(Stdio::null())
        .output()
        .expect("run chromium");
    assert!(out.status.success(), "chromium failed on {url}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
];

/// The `data-value` of the element with `id` in a dumped DOM.
fn shown(dom: &str, id: &str) -> String {
    let at = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in the page"));
    let tag = &dom[dom[..at].rfind('<').expect("a tag")..];
    let tag = &tag[..tag.find('>').expect("a tag")];
    let value = tag.split("data-value=\"").nth(1).unwrap_or_else(|| panic!("#{id} shows no value: {tag}"));
    value[..value.find('"').expect("a quote")].to_string()
}

#[test]
fn chromium_renders_the_served_page_and_the_offline_report_with_the_runs_numbers() {
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("run.html");
    let report_arg = report.to_str().expect("utf-8 path");
    let served = Served::start(&[
        "tsqr",
        "--rows",
        "100000",
        "--chunk-rows",
        "2000",
        "--dashboard",
        "127.0.0.1:0",
        "--dashboard-linger",
        "120",
        "--report",
        report_arg,
        "--memory-limit",
        "64MiB",
        "--thresholds",
        "target=0.01",
    ]);
    let state = served.finished_state();
    let done = u(&state["tasks"]["done"]).to_string();
    let dom = dump_dom(&chromium, &format!("{}?snapshot=1", served.url));
    assert_eq!(shown(&dom, "tasks-done"), done);
    assert_eq!(shown(&dom, "status"), "finished");
    assert!(dom.contains("data-field=\"process\""), "the workers table");
    assert!(dom.contains("id=\"stage-2\""), "three stages' progress");
    drop(served);
    // The report, from a file, with no server.
    let dom = dump_dom(&chromium, &format!("file://{}", report.display()));
    assert_eq!(shown(&dom, "tasks-done"), done);
    assert_eq!(shown(&dom, "status"), "finished");
    // The run spilled and ended with nothing in spill files: the workers table says both.
    let cell = dom
        .match_indices("data-field=\"spilled\"")
        .map(|(at, _)| &dom[dom[..at].rfind('<').expect("a tag")..])
        .find(|tag| tag.starts_with("<td"))
        .expect("the workers table's spilled cell");
    let cell = &cell[..cell.find("</td>").expect("the cell's end")];
    assert!(cell.contains(">0 B (peak ") && u(&state["workers"][0]["peak_spilled"]) > 0, "{cell}");
}

/// Chromium and playwright-core (`OUTCORE_PLAYWRIGHT`), or a loud skip (a failure under
/// `OUTCORE_REQUIRE_BROWSER=1`).
fn playwright() -> Option<(PathBuf, std::ffi::OsString)> {
    let chromium = chromium()?;
    let Some(modules) = std::env::var_os("OUTCORE_PLAYWRIGHT") else {
        assert!(
            std::env::var_os("OUTCORE_REQUIRE_BROWSER").is_none(),
            "OUTCORE_REQUIRE_BROWSER is set but OUTCORE_PLAYWRIGHT (node_modules holding playwright-core) is not"
        );
        eprintln!("SKIPPED: OUTCORE_PLAYWRIGHT is not set; the live page was not driven in a browser");
        return None;
    };
    Some((chromium, modules))
}

/// Runs `tests/browser/SCRIPT` (node with playwright-core) on the page at `url` in Chromium:
/// the JSON it prints.
fn in_chromium(script: &str, url: &str, chromium: &Path, modules: &std::ffi::OsStr) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser").join(script);
    let out = Command::new("node")
        .arg(&script)
        .arg(url)
        .arg(chromium)
        .env("NODE_PATH", modules)
        .output()
        .expect("run node (apt install nodejs)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("the script's JSON")
}

/// A 2,000,000-row TSQR served live (64 MiB), with `extra` flags, watched in Chromium to its
/// end by `tests/browser/live.cjs`: what the page showed.
fn watched(chromium: &Path, modules: &std::ffi::OsStr, extra: &[&str]) -> (Served, Value) {
    let mut args = vec!["tsqr", "--rows", "2000000", "--chunk-rows", "2000", "--memory-limit", "64MiB"];
    args.extend(["--dashboard", "127.0.0.1:0"]);
    args.extend(extra);
    let served = Served::start(&args);
    let seen = in_chromium("live.cjs", &served.url, chromium, modules);
    (served, seen)
}

/// The report of `large-svd ARGS --report DIR/report.html`, and the page
/// `tests/browser/layout.cjs` laid out at each width it tries.
fn laid_out(dir: &Path, args: &[&str], chromium: &Path, modules: &std::ffi::OsStr) -> (PathBuf, Value) {
    let report = dir.join("report.html");
    let out = Command::new(BIN).args(args).arg("--report").arg(&report).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen = in_chromium("layout.cjs", &format!("file://{}", report.display()), chromium, modules);
    (report, seen)
}

#[test]
fn chromium_shows_the_end_of_a_run_served_without_linger() {
    let Some((chromium, modules)) = playwright() else { return };
    let (_served, seen) = watched(&chromium, &modules, &[]);
    // The server went away with the command, after telling the page.
    assert_eq!(seen["final"]["status"], "finished", "{seen}");
    assert!(seen["final"]["notice"].as_str().unwrap().starts_with("the command has ended"), "{seen}");
    assert_eq!(seen["console_errors"], serde_json::json!([]), "{seen}");
}

#[test]
fn the_page_lays_out_at_phone_and_desktop_widths_its_labels_apart_its_legend_in_the_bars_colour() {
    let Some((chromium, modules)) = playwright() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    // Process memory above the target (1% of 64 MiB): the bar is orange, and so must be its legend.
    let args = ["tsqr", "--rows", "20000", "--memory-limit", "64MiB", "--thresholds", "target=0.01"];
    let (_, seen) = laid_out(dir.path(), &args, &chromium, &modules);
    for width in ["1280", "1600"] {
        assert_eq!(seen[width]["table_fits"], true, "at {width} px: {seen}");
    }
    for width in ["375", "1280", "1600"] {
        assert_eq!(seen[width]["cards_past_window"], 0, "at {width} px: {seen}");
        // limit, target, spill, pause, terminate: 60% to 100% of the limit, labels apart.
        assert_eq!(
            (seen[width]["threshold_labels"].as_u64(), &seen[width]["labels_overlap"]),
            (Some(5), &Value::Bool(false)),
            "{seen}"
        );
        assert_eq!(
            (seen[width]["tick_labels"].as_u64(), &seen[width]["tick_labels_overlap"]),
            (Some(4), &Value::Bool(false)),
            "the bar's ticks at {width} px: {seen}"
        );
        assert_eq!(seen[width]["legend"], seen[width]["bar"], "at {width} px: {seen}");
        assert!(seen[width]["bar"].as_str().unwrap().starts_with("rgb(255, 127, 14)"), "orange: {seen}");
    }
}

#[test]
fn the_stage_graph_fits_its_names_in_their_boxes_and_draws_its_loops() {
    let Some((chromium, modules)) = playwright() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    // The randomized SVD's stages loop: each pass over A follows an orthonormalization.
    let args = ["rsvd", "--rows", "3000", "--cols", "2000", "--chunk", "1000"];
    let (report, seen) = laid_out(dir.path(), &args, &chromium, &modules);
    let back_edges = {
        let stages = report_state(&report)["stages"].as_array().expect("stages").clone();
        let later =
            |(i, s): (usize, &Value)| s["after"].as_array().unwrap().iter().filter(|a| u(a) >= i as u64).count();
        stages.iter().enumerate().map(later).sum::<usize>()
    };
    assert!(back_edges > 0, "the rSVD's stage graph has loops");
    for width in ["700", "1280"] {
        assert_eq!(seen[width]["loops"].as_u64(), Some(back_edges as u64), "at {width} px: {seen}");
        for stage in seen[width]["names"].as_array().expect("names") {
            let (drawn, box_width) = (stage["drawn"].as_f64().unwrap(), stage["box"].as_f64().unwrap());
            assert!(drawn <= box_width - 4.0, "at {width} px, {} overflows its box: {seen}", stage["name"]);
        }
    }
}

#[test]
fn the_task_stream_zooms_pans_names_what_is_under_the_pointer_and_shows_spills() {
    let Some((chromium, modules)) = playwright() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("report.html");
    // A run that spills (a target of 1% of 64 MiB) and reloads.
    let args = ["tsqr", "--rows", "400000", "--chunk-rows", "1000", "--memory-limit", "64MiB", "--thresholds"];
    let out = Command::new(BIN).args(args).arg("target=0.01").arg("--report").arg(&report).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let state = report_state(&report);
    let marks = state["stream"]["marks"].as_array().expect("marks").clone();
    let kinds = |k: &str| marks.iter().filter(|m| m[1] == k).count() as u64;
    let worker = &state["workers"][0];
    assert_eq!((kinds("spill"), kinds("reload")), (u(&worker["spills"]), u(&worker["reloads"])), "{worker}");
    assert!(kinds("spill") > 0 && kinds("reload") > 0, "{worker}");
    let seen = in_chromium("stream.cjs", &format!("file://{}", report.display()), &chromium, &modules);
    let window = |at: &str| (seen[at]["from"].as_f64().unwrap(), seen[at]["to"].as_f64().unwrap());
    // An ended run is shown whole, every spill and reload with it.
    assert_eq!(seen["first"]["label"], "(all)", "{seen}");
    assert_eq!(u(&seen["first"]["rects"]), u(&state["tasks"]["done"]), "{seen}");
    assert_eq!(u(&seen["first"]["marks"]), marks.len() as u64, "{seen}");
    // Hovering names the task (stage, number, thread, duration, bytes) or the spill.
    let over_task = seen["over_task"].as_str().expect("a tooltip over a task");
    for word in ["panel QR (task ", " on thread t", " ms from ", " reserved"] {
        assert!(over_task.contains(word), "{word:?} in {over_task:?}");
    }
    let over_mark = seen["over_mark"].as_str().expect("a tooltip over a mark");
    assert!(over_mark.contains("spill: wrote ") || over_mark.contains("reload: read back "), "{over_mark:?}");
    // The wheel zooms in, a drag to the right shows earlier times, a double click shows all.
    let (first, zoomed, dragged) = (window("first"), window("zoomed"), window("dragged"));
    assert!(zoomed.1 - zoomed.0 < 0.7 * (first.1 - first.0), "{seen}");
    assert!(dragged.0 < zoomed.0 && (dragged.1 - dragged.0 - (zoomed.1 - zoomed.0)).abs() < 1e-3, "{seen}");
    assert_eq!(window("reset"), first, "{seen}");
    assert_eq!(seen["console_errors"], serde_json::json!([]), "{seen}");
}

#[test]
fn chromium_watches_the_live_page_move_without_console_errors() {
    let Some((chromium, modules)) = playwright() else { return };
    let (served, seen) = watched(&chromium, &modules, &["--dashboard-linger", "120"]);
    // While running, the page's count moved at least twice.
    let counts: Vec<u64> = seen["running_counts"].as_array().expect("counts").iter().map(u).collect();
    assert!(counts.windows(2).filter(|w| w[1] > w[0]).count() >= 2, "{seen}");
    assert_eq!(seen["console_errors"], serde_json::json!([]), "{seen}");
    // Once finished, the page shows what /api/state.json says.
    let state = served.finished_state();
    assert_eq!(seen["final"]["status"], "finished", "{seen}");
    assert_eq!(u(&seen["final"]["done"]), u(&state["tasks"]["done"]));
    assert_eq!(u(&seen["final"]["process"]), u(&state["workers"][0]["process"]));
    assert!(u(&seen["final"]["rects"]) > 0 && u(&seen["final"]["samples"]) > 0, "{seen}");
    assert_eq!(seen["final"]["notice"], "", "the server lingers: nothing to say");
    // The roofline gives the whole run's rate, and what bounds it.
    let roofline = &seen["final"]["roofline"];
    assert!(["compute", "decode", "disk"].contains(&roofline["bound"].as_str().unwrap()), "{roofline}");
    assert!(roofline["gflops"].as_f64().unwrap() > 0.0, "{roofline}");
    assert!(roofline["text"].as_str().unwrap().starts_with("whole run: "), "{roofline}");
    assert!(!seen["render_ms"].as_array().unwrap().is_empty(), "the page times its renders: {seen}");
}

// ---- The ranks of an MPI job ----

#[cfg(feature = "mpi")]
mod mpirun;

/// Each rank is a worker: rank 0's dashboard asks the others for their boards while they run,
/// and its report holds every rank's final state.
#[cfg(feature = "mpi")]
#[test]
fn each_rank_of_an_mpi_job_is_a_worker_on_rank_0s_dashboard_and_report() {
    let Some(mpirun) = mpirun::mpirun() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("ranks.html");
    let mut command = mpirun::patient_launcher(&mpirun);
    command.args(["-np", "3", BIN, "tsqr", "--rows", "1500000", "--chunk-rows", "2000", "--json"]);
    command.args(["--dashboard", "127.0.0.1:0", "--dashboard-linger", "120", "--report"]).arg(&report);
    let served = Served::spawn(command);
    // While the job runs, rank 0's state carries the others', asked of them live.
    let mut live = false;
    let deadline = Instant::now() + Duration::from_secs(300);
    let state = loop {
        assert!(Instant::now() < deadline, "the job did not finish");
        let state = served.state();
        let others = state["ranks"].as_array().cloned().unwrap_or_default();
        for r in &others {
            assert!(r.get("unreachable").is_none(), "{r}");
        }
        live |= state["status"] == "running" && others.len() == 2 && others.iter().any(|r| u(&r["tasks"]["done"]) > 0);
        if state["status"] == "finished" && others.iter().all(|r| r["status"] == "finished") {
            break state;
        }
        std::thread::sleep(Duration::from_millis(30));
    };
    assert!(live, "no state showed the other ranks at work");
    let stdout = served.interrupt_ranks();
    let summary: Value = serde_json::from_str(&stdout).expect("the summary");
    for state in [state, report_state(&report)] {
        let others = state["ranks"].as_array().expect("the other ranks");
        let ranks: Vec<u64> = others.iter().map(|r| u(&r["rank"])).collect();
        assert_eq!(ranks, [1, 2]);
        let all: Vec<&Value> = std::iter::once(&state).chain(others).collect();
        let done: u64 = all.iter().map(|r| u(&r["tasks"]["done"])).sum();
        assert_eq!(done, u(&summary["tasks"]), "tasks summed over ranks");
        for r in &all {
            assert!(r["workers"][0]["name"].as_str().expect("name").starts_with(&format!("rank {}", r["rank"])));
            assert_eq!(r["stream"]["tasks"].as_array().expect("stream").len() as u64, u(&r["tasks"]["done"]));
            assert!(u(&r["workers"][0]["process"]) > 0);
        }
    }
}
