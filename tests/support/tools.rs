//! Other programs, the repository's files, HTTP and the bench's JSON.

use super::*;

/// Where program `name` is installed: on the PATH or in the sbin folders
/// that a non-root PATH may lack (nginx lives in /usr/sbin).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A file shipped with the project, read whole.
pub fn shipped(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The first code block after `heading` in `text`, a shipped Markdown file.
pub fn block_after<'a>(text: &'a str, heading: &str) -> &'a str {
    let rest = &text[text.find(heading).unwrap_or_else(|| panic!("no {heading}"))..];
    let start = rest.find("```\n").expect("a code block") + 4;
    let len = rest[start..].find("```").expect("its end");
    &rest[start..start + len]
}

/// The `--flags` named in `text`, a synopsis.
pub fn flags(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(str::to_string)
        .collect()
}

/// A fresh directory of its own under the system's temporary directory,
/// removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "udp-greeter-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        // A leftover of an earlier run with the same pid.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One HTTP exchange: status, headers and body.
pub struct Http {
    pub status: u16,
    pub headers: ureq::http::HeaderMap,
    pub body: String,
}

impl Http {
    /// The value of header `name` (any case), if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends one `method` request to `url` (with `body`, unless empty) and
/// returns the response, whatever its status; fails the test if there is
/// none within 5 s.
pub fn http(method: &str, url: &str, body: &str) -> Http {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        // 4xx and 5xx are answers the tests look at, not errors.
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        // Loopback only: a proxy from the environment must not step in.
        .proxy(None)
        .build()
        .into();
    let request = ureq::http::Request::builder().method(method).uri(url);
    let sent = if body.is_empty() {
        agent.run(request.body(()).expect("a request"))
    } else {
        agent.run(request.body(body).expect("a request"))
    };
    let mut response = sent.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let body = response
        .body_mut()
        .read_to_string()
        .unwrap_or_else(|e| panic!("{method} {url}: body: {e}"));
    Http {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body,
    }
}

/// The bench client's `--json` report: one line, one flat JSON object
/// whose values are numbers, strings or null. Fails the test otherwise.
pub fn bench_json(stdout: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(stdout);
    assert_eq!(text.lines().count(), 1, "not one line: {text}");
    let report: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    let fields = report
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {text}"));
    for (key, value) in fields {
        assert!(
            value.is_number() || value.is_string() || value.is_null(),
            "value of {key} is not flat: {text}"
        );
    }
    report
}

/// A count in a [`bench_json`] report; fails the test if `key` is missing
/// or not a whole number.
pub fn json_count(report: &serde_json::Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count in {report}"))
}
