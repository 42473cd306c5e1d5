//! The command examples in README.md and docs/ run here, against fakehub standing in for GitHub.
//!
//! Rules (also in docs/README.md):
//! - Every ```` ```sh ```` block runs, in document order, in one bash session per document (so
//!   `export` and `cd` carry over, as for a reader following the page). ```` ```sh no-run ````
//!   blocks are skipped: the text around them says why and which test covers them instead.
//! - A ```` ```toml ```` block whose first line is `# /ABSOLUTE/PATH` is written to that path first.
//! - Each non-comment line is one command and must exit 0, unless its trailing comment starts
//!   with `refused` or `fails`. A trailing comment that ends with `:` announces expected output:
//!   the comment lines right after it must each appear in the command's output.
//! - `ghapp proxy` and `ghapp emulator` are servers: they run in the background until the
//!   document ends, and must print their `listening` line.
//! - Names are mapped onto the emulator (the table in [`substitutions`]): github.com and
//!   ghe.example.com are fakehub, `my-org/my-repo` is `octo-org/widgets`, `their-org/their-repo`
//!   is `lonely/island` (where the app is not installed), app 123456 is fakehub's app, absolute
//!   paths move under the test's root, and the working directory is a clone of the repository.
//!   A written `[app]` or `[[app]]` table gets fakehub's `api_url`, as commands get
//!   `GHAPP_API_URL`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ghapp_e2e::World;

/// One fenced block.
struct Block {
    lang: String,
    no_run: bool,
    lines: Vec<String>,
}

fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut cur: Option<(Block, usize)> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let t = line.trim_start();
        match &mut cur {
            None => {
                if let Some(info) = t.strip_prefix("```") {
                    let mut words = info.split_whitespace();
                    let lang = words.next().unwrap_or("").to_owned();
                    let no_run = words.any(|w| w == "no-run");
                    cur = Some((
                        Block {
                            lang,
                            no_run,
                            lines: Vec::new(),
                        },
                        indent,
                    ));
                }
            }
            Some((b, ind)) => {
                if t.starts_with("```") {
                    out.push(cur.take().unwrap().0);
                } else {
                    let cut = line
                        .char_indices()
                        .nth(*ind)
                        .map(|(i, _)| i)
                        .unwrap_or(line.len());
                    let keep = if line[..cut].trim().is_empty() {
                        &line[cut..]
                    } else {
                        t
                    };
                    b.lines.push(keep.to_owned());
                }
            }
        }
    }
    out
}

/// One command of a `sh` block, with what the document expects of it.
#[derive(Debug)]
struct Cmd {
    doc: String,
    line: String,
    shell: String,
    expect_failure: bool,
    expect_output: Vec<String>,
    server: bool,
}

/// Splits `cmd   # comment` at the comment (a `#` after whitespace, outside quotes).
fn split_comment(line: &str) -> (&str, Option<&str>) {
    let (mut single, mut double) = (false, false);
    let b = line.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'\'' if !double => single = !single,
            b'"' if !single => double = !double,
            b'#' if !single && !double && (i == 0 || b[i - 1].is_ascii_whitespace()) => {
                return (line[..i].trim_end(), Some(line[i + 1..].trim()));
            }
            _ => {}
        }
    }
    (line.trim_end(), None)
}

fn commands(doc: &str, lines: &[String], subst: &dyn Fn(&str) -> String) -> Vec<Cmd> {
    let mut out: Vec<Cmd> = Vec::new();
    let mut collecting = false;
    for raw in lines {
        let l = raw.trim();
        if l.is_empty() {
            collecting = false;
            continue;
        }
        if l.starts_with('#') {
            if collecting && let Some(c) = out.last_mut() {
                let text = l.trim_start_matches('#').trim();
                if !text.is_empty() {
                    c.expect_output.push(subst(text));
                }
            }
            continue;
        }
        let (cmd, comment) = split_comment(l);
        let comment = comment.unwrap_or("");
        let shell = subst(cmd);
        collecting = comment.ends_with(':');
        out.push(Cmd {
            doc: doc.to_owned(),
            line: l.to_owned(),
            server: shell.starts_with("ghapp proxy") || shell.starts_with("ghapp emulator"),
            shell,
            expect_failure: comment.starts_with("refused") || comment.starts_with("fails"),
            expect_output: Vec::new(),
        });
    }
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The mapping from the documents' names onto the emulator and the test's root.
fn substitutions(w: &World, root: &Path) -> Vec<(String, String)> {
    let url = w.hub.url();
    let host = w.hub.git_host();
    let r = root.display().to_string();
    let mut v = vec![
        ("cargo run -p ghapp --".into(), "ghapp".into()),
        ("https://ghe.example.com/api/v3".into(), w.hub.api_url()),
        ("ghe.example.com".into(), host),
        ("https://github.com/".into(), format!("{url}/")),
        ("10.0.0.5:8080".into(), format!("127.0.0.1:{}", free_port())),
        (
            "127.0.0.1:9090".into(),
            format!("127.0.0.1:{}", free_port()),
        ),
        ("their-org/their-repo".into(), "lonely/island".into()),
        ("my-org/my-repo".into(), "octo-org/widgets".into()),
        ("my-org".into(), "octo-org".into()),
        ("123456".into(), fakehub::APP_ID.to_string()),
    ];
    for p in [
        "/etc/ghapp/",
        "/var/lib/ghapp-proxy/",
        "/var/log/ghapp-proxy/",
        "/sandbox/",
        "/run/secrets/",
    ] {
        v.push((p.into(), format!("{r}{p}")));
    }
    v
}

fn write_private(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Runs one document; returns the failures and how many commands ran.
fn run_document(doc: &Path, name: &str) -> (Vec<String>, usize) {
    let text = std::fs::read_to_string(doc).unwrap();
    let bl = blocks(&text);
    if !bl
        .iter()
        .any(|b| (b.lang == "sh" && !b.no_run) || b.lang == "toml")
    {
        return (Vec::new(), 0);
    }
    let mut w = World::new();
    let root = w.path("fs");
    let subs = substitutions(&w, &root);
    let subst = |s: &str| {
        let mut s = s.to_owned();
        for (from, to) in &subs {
            s = s.replace(from.as_str(), to);
        }
        s
    };

    // Fixtures: the app's key where the documents put it, a credentials JSON for CI, a
    // fine-grained token, a sandbox secret, and a clone to work in.
    let key = w.hub.private_key_pem().to_owned();
    write_private(&root.join("etc/ghapp/app.pem"), &key);
    write_private(&w.path("home/.config/ghapp/app.pem"), &key);
    let creds = serde_json::json!({"AppID": fakehub::APP_ID, "PrivateKeyPEM": key});
    write_private(&w.path("runner/ghapp.json"), &creds.to_string());
    let pat = w.hub.add_fine_grained_pat(
        "octo-dev",
        &["octo-org/widgets", "lonely/island"],
        &[("contents", "write"), ("metadata", "read")],
        Some(60 * 86_400),
    );
    write_private(&w.path("home/.config/ghapp/pat.txt"), &format!("{pat}\n"));
    w.clone_repo("octo-org", "widgets", "work").ok();
    std::fs::create_dir_all(root.join("sandbox")).unwrap();
    // From here git knows only what the documents configure.
    std::fs::write(w.path("gitconfig"), "[init]\n\tdefaultBranch = main\n").unwrap();
    for k in ["GHAPP_APP_ID", "GHAPP_PRIVATE_KEY_FILE"] {
        w.set_env(k, None);
    }
    w.set_env("RUNNER_TEMP", Some(w.path("runner").to_str().unwrap()));
    w.set_env(
        "AGENT1_SECRET",
        Some("docs-agent-1-secret-0123456789abcdef"),
    );

    let out = w.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let mut cmds: Vec<Cmd> = Vec::new();
    for b in &bl {
        if b.lang == "toml"
            && let Some(first) = b.lines.first()
            && let Some(p) = first.strip_prefix("# /")
        {
            let path = PathBuf::from(subst(&format!("/{}", p.trim())));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            // The emulator stands in for api.github.com, as GHAPP_API_URL does for commands.
            let text: Vec<String> = b
                .lines
                .iter()
                .map(|l| {
                    match l.trim_start().starts_with("[app]")
                        || l.trim_start().starts_with("[[app]]")
                    {
                        true => format!("{l}\napi_url = \"{}\"", w.hub.api_url()),
                        false => subst(l),
                    }
                })
                .collect();
            std::fs::write(&path, text.join("\n")).unwrap();
        }
        if b.lang == "sh" && !b.no_run {
            cmds.extend(commands(name, &b.lines, &subst));
        }
    }
    let mut script = String::from("set -u\ntrap 'kill $(jobs -p) 2>/dev/null' EXIT\n");
    script.push_str(&format!(
        "cd {}\n",
        shell_quote(w.path("work").to_str().unwrap())
    ));
    for (i, c) in cmds.iter().enumerate() {
        let o = shell_quote(out.join(format!("{i}.out")).to_str().unwrap());
        let rc = shell_quote(out.join(format!("{i}.rc")).to_str().unwrap());
        if c.server {
            script.push_str(&format!(
                "{} >{o} 2>&1 </dev/null &\n\
                 n=0; until grep -q listening {o} 2>/dev/null || [ $n -ge 300 ]; do sleep 0.1; n=$((n+1)); done\n\
                 if grep -q listening {o}; then echo 0 >{rc}; else echo 1 >{rc}; fi\n",
                c.shell
            ));
        } else {
            script.push_str(&format!(
                "{{ {}\n}} >{o} 2>&1 </dev/null; echo $? >{rc}\n",
                c.shell
            ));
        }
    }
    let script_path = w.path("doc.sh");
    std::fs::write(&script_path, &script).unwrap();
    let r = w.cmd("bash").arg(script_path.to_str().unwrap()).run();
    assert!(r.success(), "{name}: the script itself failed: {r:#?}");

    let mut failures = Vec::new();
    for (i, c) in cmds.iter().enumerate() {
        let output = std::fs::read_to_string(out.join(format!("{i}.out"))).unwrap_or_default();
        w.capture(output.clone());
        let code: i32 = std::fs::read_to_string(out.join(format!("{i}.rc")))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(-1);
        let shown = || {
            format!(
                "{}: `{}` (ran `{}`) exited {code}:\n{output}",
                c.doc, c.line, c.shell
            )
        };
        if c.expect_failure == (code == 0) {
            let want = if c.expect_failure {
                "to fail"
            } else {
                "to succeed"
            };
            failures.push(format!("expected {want}: {}", shown()));
            continue;
        }
        for want in &c.expect_output {
            if !output.lines().any(|l| matches_line(l, want)) {
                failures.push(format!("missing output line {want:?}: {}", shown()));
            }
        }
    }
    w.assert_no_secrets();
    (failures, cmds.len())
}

/// Whether `line` holds `want`, where `...` in `want` skips any text.
fn matches_line(line: &str, want: &str) -> bool {
    let mut rest = line.trim();
    for part in want.trim().split("...") {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            markdown_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "md") {
            out.push(p);
        }
    }
}

fn every_shell_example_in_the_docs_runs() {
    // The sandbox guide fetches the proxy's CA with curl, and later steps use it.
    ghapp_e2e::needs("curl");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut docs = vec![repo.join("README.md")];
    markdown_files(&repo.join("docs"), &mut docs);
    let mut failures = Vec::new();
    let mut ran = 0;
    let mut per_doc = Vec::new();
    for d in &docs {
        let name = d.strip_prefix(repo).unwrap().display().to_string();
        let (f, n) = run_document(d, &name);
        failures.extend(f);
        ran += n;
        per_doc.push(format!("{name}: {n}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // The documents hold at least this many runnable commands: a parser that found none would
    // make this test pass vacuously.
    assert!(ran >= 30, "only {ran} commands ran: {per_doc:?}");
}

fn the_parser_reads_fences_comments_and_expectations() {
    let text = "x\n   ```sh\n   a b   # refused:\n   #  ! out\n\n   c '#x' # note\n   ```\n```sh no-run\nz\n```\n";
    let b = blocks(text);
    assert_eq!(b.len(), 2);
    assert!(b[1].no_run);
    let c = commands("d", &b[0].lines, &|s| s.replace('b', "B"));
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].shell, "a B");
    assert!(c[0].expect_failure);
    assert_eq!(c[0].expect_output, vec!["! out"]);
    assert_eq!(c[1].shell, "c '#x'");
    assert!(!c[1].expect_failure && c[1].expect_output.is_empty());
    assert!(matches_line(
        "  ok source: a b from file /x answers c ",
        "source: a ... answers c"
    ));
    assert!(!matches_line(
        "answers c then source",
        "source ... answers c"
    ));
}

fn the_readme_says_what_a_newcomer_needs() {
    // Issue 11, trap 12: the prerequisites (a C compiler for aws-lc, curl for the tests), how to
    // uninstall, what the demo leaves behind and what to try next; no notes about the test
    // harness in the text a reader sees (they live in HTML comments).
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    for want in [
        "a C compiler",
        "`curl`",
        "install.sh --uninstall",
        "throwaway directory",
        "What to try next",
        "both binaries must be on `PATH`",
        "ghapp proxy --config\nproxy.toml --check",
    ] {
        assert!(readme.contains(want), "README.md lacks {want:?}");
    }
    let mut docs = vec![repo.join("README.md")];
    markdown_files(&repo.join("docs"), &mut docs);
    for d in docs {
        let text = std::fs::read_to_string(&d).unwrap();
        let visible: String = text
            .split("<!--")
            .enumerate()
            .map(|(i, part)| {
                if i == 0 {
                    part
                } else {
                    part.split_once("-->").map_or("", |(_, rest)| rest)
                }
            })
            .collect();
        assert!(
            !visible.to_ascii_lowercase().contains("docs test"),
            "{}: a note about the docs test in the visible text",
            d.display()
        );
    }
}

/// This module's tests, for the runner (`main.rs`).
pub(crate) const TESTS: &[(&str, fn())] = &[
    (
        "every_shell_example_in_the_docs_runs",
        every_shell_example_in_the_docs_runs,
    ),
    (
        "the_parser_reads_fences_comments_and_expectations",
        the_parser_reads_fences_comments_and_expectations,
    ),
    (
        "the_readme_says_what_a_newcomer_needs",
        the_readme_says_what_a_newcomer_needs,
    ),
];
