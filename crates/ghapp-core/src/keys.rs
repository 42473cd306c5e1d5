//! Where the app's private key comes from: a file, an environment variable, the credentials JSON,
//! a command (so `vault`, `aws secretsmanager` or a KMS wrapper plug in without us linking their
//! SDKs), or the OS keyring (with a 0600 file as the fallback on a headless machine).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::secret::{PersonalAccessToken, PrivateKeyPem, WebhookSecret};

/// How long a key command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub enum KeySource {
    File(PathBuf),
    /// `GHAPP_PRIVATE_KEY`.
    Env(PrivateKeyPem),
    /// From a credentials JSON file.
    Inline(PrivateKeyPem),
    /// A shell command whose stdout is the PEM or the credentials JSON.
    Command(String),
    /// No key here at all: a command (`signer = { command = [...] }`, `GHAPP_SIGNER_COMMAND`)
    /// or an HSM's PKCS#11 module (`signer = { pkcs11 = {...} }`) signs the app's JWT, so the
    /// key stays in its KMS or HSM. See `signer`.
    Signer(SignerSpec),
    /// An OS keyring entry holding the PEM.
    Keyring {
        service: String,
        user: String,
    },
}

/// Who signs the app's JWT when no key is held here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignerSpec {
    /// A program: the signing input on stdin, the signature on stdout.
    Command(Vec<String>),
    /// A key inside an HSM (or any PKCS#11 token), used through its module.
    Pkcs11(Pkcs11Spec),
}

/// `signer = { pkcs11 = { module, token, key_label, pin = { env | file } } }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkcs11Spec {
    /// The vendor's PKCS#11 library (`/usr/lib/softhsm/libsofthsm2.so`, a cloud HSM's client).
    pub module: PathBuf,
    /// The token's label.
    pub token: String,
    /// The private key's label (`CKA_LABEL`).
    pub key_label: String,
    /// Where the user PIN is read, at each signature (never held).
    pub pin: PinSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinSource {
    Env(String),
    File(PathBuf),
}

impl SignerSpec {
    /// How errors name it (no argument, no PIN).
    pub fn describe(&self) -> String {
        match self {
            SignerSpec::Command(argv) => signer_name(argv),
            SignerSpec::Pkcs11(p) => format!(
                "PKCS#11 key {:?} in token {:?} ({})",
                p.key_label,
                p.token,
                p.module.display()
            ),
        }
    }
}

/// What a key source gave.
#[derive(Debug)]
pub struct LoadedKey {
    pub pem: PrivateKeyPem,
    /// Set when the source was a credentials JSON (from a command).
    pub credentials: Option<(u64, Option<u64>)>,
    /// Non-fatal findings, e.g. a key file readable by others.
    pub warnings: Vec<String>,
}

impl KeySource {
    /// A human description of the source, without the secret.
    pub fn describe(&self) -> String {
        match self {
            KeySource::File(p) => format!("file {}", p.display()),
            KeySource::Env(_) => "GHAPP_PRIVATE_KEY".into(),
            KeySource::Inline(_) => "the credentials JSON".into(),
            KeySource::Command(c) => format!("command `{}`", first_word(c)),
            KeySource::Signer(spec) => spec.describe(),
            KeySource::Keyring { service, user } => format!("keyring entry {service}/{user}"),
        }
    }

    /// Reads the key. Blocking: call it outside an async runtime (the keyring's D-Bus client
    /// must not run inside tokio) or in `spawn_blocking`.
    pub fn load(&self) -> Result<LoadedKey> {
        let mut warnings = Vec::new();
        let (pem, credentials) = match self {
            KeySource::File(p) => {
                if let Some(w) = loose_permissions("private key file", p) {
                    warnings.push(w);
                }
                let text = read_secret_file(p).map_err(|e| Error::KeyFileUnreadable {
                    path: p.clone(),
                    reason: io_reason(&e),
                })?;
                (PrivateKeyPem::new(text), None)
            }
            KeySource::Env(p) | KeySource::Inline(p) => (p.clone(), None),
            KeySource::Signer(_) => {
                return Err(Error::Key(format!(
                    "{} holds no key to load: it signs the app's JWT itself",
                    self.describe()
                )));
            }
            KeySource::Command(cmd) => {
                let out = run_command(cmd)?;
                if out.trim_start().starts_with('{') {
                    let c = Credentials::parse(&out, &self.describe())?;
                    (c.private_key, Some((c.app_id, c.installation_id)))
                } else {
                    (PrivateKeyPem::new(out), None)
                }
            }
            KeySource::Keyring { service, user } => match read_keyring(service, user) {
                Ok(pem) => (pem, None),
                Err(reason) => {
                    let fallback = keyring_fallback_path(service, user);
                    match read_secret_file(&fallback) {
                        Ok(text) => {
                            warnings.push(format!(
                                "the OS keyring is unavailable ({reason}); using the fallback key file {}",
                                fallback.display()
                            ));
                            (PrivateKeyPem::new(text), None)
                        }
                        Err(_) => {
                            return Err(Error::Key(format!(
                                "cannot read keyring entry {service}/{user}: {reason}; on a headless machine keep the key in a 0600 file ({} or GHAPP_PRIVATE_KEY_FILE), or run under `dbus-run-session` with `gnome-keyring-daemon --unlock`",
                                fallback.display()
                            )));
                        }
                    }
                }
            },
        };
        check_pem_shape(&pem, &self.describe())?;
        Ok(LoadedKey {
            pem,
            credentials,
            warnings,
        })
    }
}

/// Where `ghapp setup` keeps a key when the keyring does not work, and where a keyring source
/// looks when the keyring cannot be reached.
pub fn keyring_fallback_path(service: &str, user: &str) -> PathBuf {
    let base = directories::ProjectDirs::from("", "", "ghapp")
        .map(|d| d.config_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".ghapp"));
    base.join("keys").join(format!("{service}-{user}.pem"))
}

/// Where [`store_secret`] put a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    Keyring { service: String, user: String },
    File(PathBuf),
}

#[cfg(feature = "mint")]
/// Stores `value` in the OS keyring when one works (written, then read back to prove it), else
/// in the 0600 file `fallback` (in a 0700 directory). Returns where, and, when the keyring was
/// passed over, why. Blocking: call it outside an async runtime.
pub fn store_secret(
    service: &str,
    user: &str,
    value: &str,
    fallback: &Path,
) -> Result<(Stored, Option<String>)> {
    let keyring = (|| -> std::result::Result<(), String> {
        let entry = keyring::Entry::new(service, user).map_err(keyring_reason)?;
        entry.set_password(value).map_err(keyring_reason)?;
        match entry.get_password() {
            Ok(v) if v == value => Ok(()),
            Ok(_) => Err("the keyring gave back a different value".into()),
            Err(e) => Err(keyring_reason(e)),
        }
    })();
    match keyring {
        Ok(()) => Ok((
            Stored::Keyring {
                service: service.into(),
                user: user.into(),
            },
            None,
        )),
        Err(reason) => {
            crate::fsutil::write_private_atomic(fallback, value.as_bytes())
                .map_err(|e| write_error(fallback, &e))?;
            Ok((Stored::File(fallback.to_path_buf()), Some(reason)))
        }
    }
}

/// Writes a secret to a file the user chose: 0600, atomically (missing directories are made
/// 0700; an existing one is left as the user set it).
pub fn store_secret_file(path: &Path, value: &str) -> Result<()> {
    crate::fsutil::write_atomic(path, value.as_bytes(), 0o600).map_err(|e| write_error(path, &e))
}

fn write_error(path: &Path, e: &std::io::Error) -> Error {
    Error::Key(format!(
        "cannot write {}: {}; choose a writable place (e.g. --key-file)",
        path.display(),
        io_reason(e)
    ))
}

/// Without the `mint` feature (the lean credential helper) there is no keyring client: the
/// `ghapp` binary, which the helper hands a miss to, reads keyring sources.
#[cfg(not(feature = "mint"))]
fn read_keyring(_service: &str, _user: &str) -> std::result::Result<PrivateKeyPem, String> {
    Err("this program has no keyring client (the `ghapp` binary reads keyring sources)".into())
}

#[cfg(feature = "mint")]
fn read_keyring(service: &str, user: &str) -> std::result::Result<PrivateKeyPem, String> {
    let entry = keyring::Entry::new(service, user).map_err(keyring_reason)?;
    entry
        .get_password()
        .map(PrivateKeyPem::new)
        .map_err(keyring_reason)
}

#[cfg(feature = "mint")]
/// keyring's errors on a headless box are misleading (`NoEntry`, `AccessDenied`): say plainly
/// what they usually mean.
fn keyring_reason(e: keyring::Error) -> String {
    match e {
        keyring::Error::NoEntry => {
            "no such entry, or no keyring service answers (headless?)".into()
        }
        keyring::Error::PlatformFailure(_) | keyring::Error::NoStorageAccess(_) => {
            "no keyring service answers on this machine (no D-Bus Secret Service?)".into()
        }
        other => first_line(&other.to_string()),
    }
}

/// Warns on a secret file (`what`: "private key file", "token file") that group or others can
/// read.
pub fn loose_permissions(what: &str, path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "{what} {} is readable by group or others (mode {mode:o}): run chmod 600 {}",
            path.display(),
            path.display()
        )
    })
}

/// Where a fine-grained personal access token comes from.
#[derive(Debug, Clone)]
pub enum PatSource {
    /// `GHAPP_PAT`.
    Env(PersonalAccessToken),
    /// A file holding the token (`GHAPP_PAT_FILE`, `token_file`).
    File(PathBuf),
    /// An OS keyring entry (`GHAPP_PAT_KEYRING`, `token_keyring`).
    Keyring { service: String, user: String },
}

impl PatSource {
    /// Where the token comes from, without the token.
    pub fn describe(&self) -> String {
        match self {
            PatSource::Env(_) => "GHAPP_PAT".into(),
            PatSource::File(p) => format!("file {}", p.display()),
            PatSource::Keyring { service, user } => format!("keyring entry {service}/{user}"),
        }
    }

    /// Whether reading it needs the OS keyring (which the lean helper leaves to `ghapp`).
    pub fn needs_keyring(&self) -> bool {
        matches!(self, PatSource::Keyring { .. })
    }

    /// Reads the token; warnings (a file others can read) come back beside it. Blocking.
    pub fn load(&self) -> Result<(PersonalAccessToken, Vec<String>)> {
        match self {
            PatSource::Keyring { service, user } => {
                let text = read_keyring(service, user).map_err(|reason| {
                    Error::Key(format!(
                        "cannot read keyring entry {service}/{user}: {reason}; on a headless machine keep the token in a 0600 file and set GHAPP_PAT_FILE"
                    ))
                })?;
                Ok((self.check(text.expose())?, Vec::new()))
            }
            _ => self.load_without_keyring(),
        }
    }

    /// [`PatSource::load`] for the environment and file sources; a keyring source is refused.
    /// The lean helper calls this one, so that it links no keyring client.
    pub fn load_without_keyring(&self) -> Result<(PersonalAccessToken, Vec<String>)> {
        let mut warnings = Vec::new();
        let text = match self {
            PatSource::Env(t) => t.expose().to_owned(),
            PatSource::File(p) => {
                warnings.extend(loose_permissions("token file", p));
                read_secret_file(p).map_err(|e| {
                    Error::Key(format!(
                        "cannot read token file {}: {}; set GHAPP_PAT_FILE to a 0600 file holding the fine-grained personal access token",
                        p.display(),
                        io_reason(&e)
                    ))
                })?
            }
            PatSource::Keyring { .. } => {
                return Err(Error::Key(format!(
                    "{} is read by the ghapp binary: install it beside git-credential-ghapp",
                    self.describe()
                )));
            }
        };
        Ok((self.check(&text)?, warnings))
    }

    fn check(&self, text: &str) -> Result<PersonalAccessToken> {
        let token = text.trim();
        if token.is_empty() || token.contains(char::is_whitespace) {
            return Err(Error::Key(format!(
                "the personal access token from {} is empty or holds more than one word: it must be the token alone (github_pat_...)",
                self.describe()
            )));
        }
        Ok(PersonalAccessToken::new(token))
    }
}

fn check_pem_shape(pem: &PrivateKeyPem, origin: &str) -> Result<()> {
    let t = pem.expose();
    if t.contains("-----BEGIN CERTIFICATE-----") && !t.contains("PRIVATE KEY-----") {
        return Err(Error::Key(format!(
            "the private key from {origin} is a certificate, not a private key: use the .pem file downloaded from the app's settings (Private keys)"
        )));
    }
    if t.contains("-----BEGIN PUBLIC KEY-----") && !t.contains("PRIVATE KEY-----") {
        return Err(Error::Key(format!(
            "the private key from {origin} is a public key, not the private one: use the .pem file downloaded from the app's settings (Private keys)"
        )));
    }
    if !t.contains("-----BEGIN") || !t.contains("PRIVATE KEY-----") {
        return Err(Error::Key(format!(
            "the private key from {origin} is not PEM text (no -----BEGIN ... PRIVATE KEY----- line): use the .pem file downloaded from the app's settings"
        )));
    }
    Ok(())
}

/// The most a key command may print on each of stdout and stderr that is read.
const COMMAND_OUTPUT_LIMIT: u64 = 1 << 20;

fn run_command(cmd: &str) -> Result<String> {
    let what = format!("private key command `{}`", first_word(cmd));
    let argv = ["sh".to_owned(), "-c".to_owned(), cmd.to_owned()];
    let out = run_bounded(&what, &argv, None, COMMAND_TIMEOUT)?;
    String::from_utf8(out)
        .map_err(|_| Error::Key(format!("{what} printed something that is not UTF-8 text")))
}

/// Runs `argv` with `input` on its stdin (else none), reading at most [`COMMAND_OUTPUT_LIMIT`]
/// of its stdout (a key, a credentials JSON or a signature is a few KiB; more is cut off, not
/// held) and killing it after `deadline`. Its stderr's first line, redacted, names a failure.
pub(crate) fn run_bounded(
    what: &str,
    argv: &[String],
    input: Option<Vec<u8>>,
    deadline: Duration,
) -> Result<Vec<u8>> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| Error::Key(format!("{what} is empty: name a program to run")))?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Key(format!("cannot start {what}: {e}")))?;
    if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
        // Its own thread: a command that does not read its input must not block us.
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(&data);
        });
    }
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_thread = std::thread::spawn(move || {
        let mut s = Vec::new();
        let r = (&mut stdout).take(COMMAND_OUTPUT_LIMIT).read_to_end(&mut s);
        // Keep the pipe drained so the command is not blocked on a full pipe.
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        r.map(|_| s)
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = (&mut stderr).take(COMMAND_OUTPUT_LIMIT).read_to_end(&mut s);
        let _ = std::io::copy(&mut stderr, &mut std::io::sink());
        s
    });
    use wait_timeout::ChildExt;
    let status = match child.wait_timeout(deadline) {
        Ok(Some(s)) => s,
        Ok(None) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Key(format!(
                "{what} did not finish within {} s: check that it does not wait for input",
                deadline.as_secs()
            )));
        }
        Err(e) => return Err(Error::Key(format!("{what}: {e}"))),
    };
    let out = out_thread
        .join()
        .ok()
        .and_then(|r| r.ok())
        .ok_or_else(|| Error::Key(format!("cannot read what {what} printed")))?;
    let err = err_thread.join().unwrap_or_default();
    if !status.success() {
        return Err(Error::Key(format!(
            "{what} failed ({status}): {}",
            redact_stderr(&String::from_utf8_lossy(&err))
        )));
    }
    Ok(out)
}

/// The first line of a child's stderr, with anything that looks like key material cut.
fn redact_stderr(s: &str) -> String {
    let line = first_line(s);
    if line.contains("-----BEGIN") || line.contains("PRIVATE KEY") {
        return "(stderr held key material; not shown)".into();
    }
    let line = ghapp_gitproto::secrets::redact(&line);
    let mut line: String = line.chars().take(200).collect();
    if line.is_empty() {
        line = "(no message)".into();
    }
    line
}

/// A signer command as errors name it: `signer command `PROGRAM``, its arguments left out (they
/// may name a key).
pub fn signer_name(argv: &[String]) -> String {
    // GHAPP_SIGNER_COMMAND is a shell command line: name its program, not the shell.
    let program = match argv {
        [sh, c, line] if sh == "sh" && c == "-c" => first_word(line),
        _ => argv.first().map_or("", String::as_str),
    };
    let program = program.rsplit('/').next().unwrap_or(program);
    format!("signer command `{program}`")
}

fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_owned()
}

fn first_word(s: &str) -> &str {
    s.split_whitespace().next().unwrap_or("")
}

/// The largest key, token or credentials file read.
const MAX_SECRET_FILE: u64 = 1 << 20;

/// Reads a file holding a secret, at most [`MAX_SECRET_FILE`] bytes.
fn read_secret_file(path: &Path) -> std::io::Result<String> {
    crate::fsutil::read_bounded(path, MAX_SECRET_FILE)
}

pub(crate) fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// The credentials JSON many teams keep in a secrets manager:
/// `{"AppID": 1, "InstallationID": 2, "PrivateKeyPEM": "...", "WebhookSecret": "..."}`.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub app_id: u64,
    pub installation_id: Option<u64>,
    pub private_key: PrivateKeyPem,
    pub webhook_secret: Option<WebhookSecret>,
}

impl Credentials {
    pub fn read_file(path: &Path) -> Result<Self> {
        let text = read_secret_file(path).map_err(|e| {
            Error::Config(format!(
                "cannot read credentials file {}: {}; check GHAPP_CREDENTIALS_FILE",
                path.display(),
                io_reason(&e)
            ))
        })?;
        Self::parse(&text, &format!("credentials file {}", path.display()))
    }

    /// Parses the JSON. The classic mistake, snake_case keys, would leave AppID at 0: refuse it
    /// and name the keys found and the keys expected (never their values).
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            Error::Config(format!(
                "{origin} is not valid JSON (line {}, column {}): expected {{\"AppID\": .., \"InstallationID\": .., \"PrivateKeyPEM\": ..}}",
                e.line(),
                e.column()
            ))
        })?;
        let obj = v.as_object().ok_or_else(|| {
            Error::Config(format!(
                "{origin} is not a JSON object: expected {{\"AppID\": .., \"InstallationID\": .., \"PrivateKeyPEM\": ..}}"
            ))
        })?;
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        let shape_error = || {
            Error::Config(format!(
                "{origin} has keys [{}] but needs AppID, PrivateKeyPEM and optionally InstallationID, WebhookSecret (exact spelling)",
                keys.join(", ")
            ))
        };
        let num = |k: &str| -> Option<u64> {
            match obj.get(k)? {
                serde_json::Value::Number(n) => n.as_u64(),
                serde_json::Value::String(s) => s.trim().parse().ok(),
                _ => None,
            }
        };
        let app_id = num("AppID").filter(|&id| id != 0).ok_or_else(shape_error)?;
        let pem = obj
            .get("PrivateKeyPEM")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(shape_error)?;
        Ok(Credentials {
            app_id,
            installation_id: num("InstallationID").filter(|&id| id != 0),
            private_key: PrivateKeyPem::new(pem),
            webhook_secret: obj
                .get("WebhookSecret")
                .and_then(|v| v.as_str())
                .map(WebhookSecret::new),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PEM armour lines for a made-up key of `kind` (`"RSA "` or `""`), built at run time so no
    /// key-shaped text is in the source.
    pub(super) fn begin(kind: &str) -> String {
        format!("-----BEGIN {kind}{}-----", ["PRIVATE", "KEY"].join(" "))
    }

    pub(super) fn end(kind: &str) -> String {
        format!("-----END {kind}{}-----", ["PRIVATE", "KEY"].join(" "))
    }

    #[test]
    fn credentials_json() {
        let c = Credentials::parse(
            &format!(
                r#"{{"AppID": 12, "InstallationID": "34", "PrivateKeyPEM": "{}\nQQ\n{}", "WebhookSecret": "w"}}"#,
                begin("RSA "),
                end("RSA ")
            ),
            "test",
        )
        .unwrap();
        assert_eq!(c.app_id, 12);
        assert_eq!(c.installation_id, Some(34));
        assert!(!format!("{c:?}").contains("QQ"));

        let err = Credentials::parse(
            r#"{"app_id": 12, "installation_id": 34, "private_key": "SECRETPEM"}"#,
            "credentials file x.json",
        )
        .unwrap_err()
        .to_string();
        for want in [
            "app_id",
            "installation_id",
            "private_key",
            "AppID",
            "InstallationID",
            "PrivateKeyPEM",
        ] {
            assert!(err.contains(want), "{err}");
        }
        assert!(!err.contains("SECRETPEM"));

        let err = Credentials::parse("{\"AppID\": 0, \"PrivateKeyPEM\": \"x\"}", "t").unwrap_err();
        assert!(err.to_string().contains("AppID"));
        let err = Credentials::parse("{nope", "t").unwrap_err().to_string();
        assert!(err.contains("not valid JSON"), "{err}");
    }

    #[test]
    fn command_source() {
        let k = KeySource::Command(format!("printf -- '{}\\nAA\\n{}\\n'", begin(""), end("")));
        let l = k.load().unwrap();
        assert!(l.pem.expose().starts_with(&begin("")));

        let k = KeySource::Command(format!(
            r#"printf '%s' '{{"AppID": 5, "PrivateKeyPEM": "{}\nX\n{}"}}'"#,
            begin("RSA "),
            end("RSA ")
        ));
        let l = k.load().unwrap();
        assert_eq!(l.credentials, Some((5, None)));

        let k = KeySource::Command(format!("echo '{} leaked' >&2; exit 3", begin("RSA ")));
        let err = k.load().unwrap_err().to_string();
        assert!(err.contains("failed"), "{err}");
        assert!(!err.contains("leaked"), "{err}");

        let k = KeySource::Command("echo not a key".into());
        assert!(k.load().unwrap_err().to_string().contains("not PEM"));
    }

    #[test]
    fn file_source_errors_and_warning() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.pem");
        let err = KeySource::File(p.clone()).load().unwrap_err().to_string();
        assert!(
            err.contains("no such file") && err.contains("k.pem"),
            "{err}"
        );
        std::fs::write(&p, format!("{}\nA\n{}\n", begin("RSA "), end("RSA "))).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let l = KeySource::File(p.clone()).load().unwrap();
        assert!(l.warnings[0].contains("chmod 600"), "{:?}", l.warnings);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(KeySource::File(p).load().unwrap().warnings.is_empty());
    }
}

#[cfg(test)]
mod keyring_tests {
    use super::tests::{begin, end};
    use super::*;

    /// On a machine without a Secret Service (CI, this box), reading the keyring fails with a
    /// message that says what to do, and a fallback file, when present, is used with a warning.
    #[test]
    fn headless_keyring_falls_back_or_explains() {
        let service = format!("ghapp-test-{}", std::process::id());
        let k = KeySource::Keyring {
            service: service.clone(),
            user: "app-1".into(),
        };
        let start = std::time::Instant::now();
        match k.load() {
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(&format!("keyring entry {service}/app-1")),
                    "{msg}"
                );
                assert!(msg.contains("0600 file"), "{msg}");
                assert!(!msg.contains('\n'));
            }
            Ok(l) => panic!(
                "no such entry exists, yet the keyring answered: {:?}",
                l.warnings
            ),
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no hang");

        let fallback = keyring_fallback_path(&service, "app-1");
        std::fs::create_dir_all(fallback.parent().unwrap()).unwrap();
        std::fs::write(
            &fallback,
            format!("{}\nAA\n{}\n", begin("RSA "), end("RSA ")),
        )
        .unwrap();
        let l = k.load();
        let _ = std::fs::remove_file(&fallback);
        let l = l.unwrap();
        assert!(
            l.warnings.iter().any(|w| w.contains("fallback key file")),
            "{:?}",
            l.warnings
        );
    }
}
