//! The container recipe and the Kubernetes manifests in `deploy/` checked against the binary
//! (no image registry is reachable here, so the image is not built): every flag, environment
//! variable, port and health path they use exists, and the configuration they ship loads.

use std::collections::BTreeSet;

use ghapp_e2e::World;

fn read(path: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(path),
    )
    .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The `proxy.toml` of the ConfigMap.
fn shipped_config(yaml: &str) -> String {
    let start = yaml
        .find("proxy.toml: |")
        .expect("the ConfigMap's proxy.toml")
        + "proxy.toml: |".len();
    yaml[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("    ") || l.trim().is_empty())
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ports(text: &str, key: &str) -> BTreeSet<u16> {
    text.lines()
        .filter_map(|l| l.split(key).nth(1))
        .filter_map(|rest| {
            rest.trim_start_matches([' ', ':', '='])
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

fn the_recipe_and_manifests_use_only_what_the_binary_has() {
    let docker = read("deploy/Dockerfile");
    let yaml = read("deploy/kubernetes/proxy.yaml");
    let w = World::new();

    // Flags: what the entrypoint and the container args pass, `ghapp proxy --help` knows.
    let help = w.ghapp(&["proxy", "--help"]);
    help.ok();
    let flags: BTreeSet<&str> = docker
        .lines()
        .filter(|l| l.starts_with("ENTRYPOINT") || l.starts_with("CMD"))
        .chain(yaml.lines().filter(|l| l.trim_start().starts_with("args:")))
        .flat_map(|l| l.split(['"', ' ', '[', ']', ',']))
        .filter(|t| t.starts_with("--") && t.len() > 2)
        .collect();
    assert!(flags.contains("--config"), "{flags:?}");
    for flag in flags {
        assert!(help.stdout.contains(flag), "ghapp proxy has {flag}");
    }
    assert!(docker.contains(r#"ENTRYPOINT ["/usr/local/bin/ghapp", "proxy", "--config""#));

    // The configuration they ship loads with the proxy's own loader, its secret files given.
    let dir = w.path("deploy");
    std::fs::create_dir_all(&dir).unwrap();
    let mut text = shipped_config(&yaml);
    for (file, content) in [
        (
            "/run/secrets/ghapp/admin-token",
            "an-admin-token-0123456789",
        ),
        (
            "/run/secrets/ghapp/webhook-secret",
            "a-webhook-secret-0123456789",
        ),
    ] {
        let local = dir.join(file.rsplit('/').next().unwrap());
        std::fs::write(&local, content).unwrap();
        text = text.replace(file, &local.display().to_string());
    }
    // GHAPP_PROXY_STATE, as the Deployment sets it from its Secret, names the store.
    assert!(yaml.contains("name: GHAPP_PROXY_STATE"));
    let cfg = ghapp_proxy::config::ProxyConfig::parse(&text, "deploy/kubernetes/proxy.yaml")
        .unwrap_or_else(|e| panic!("the shipped proxy.toml: {e}"));
    assert!(
        cfg.admin_listen.is_some() && cfg.webhook_listen.is_some() && cfg.metrics_listen.is_some()
    );
    assert_eq!(cfg.ca_dir, std::path::PathBuf::from("/etc/ghapp-proxy/ca"));
    // Sandboxes are told the Service's address, not the pod's 0.0.0.0.
    let proxy_port = cfg.listen.port();
    assert_eq!(
        cfg.advertise.as_deref(),
        Some(format!("ghapp-proxy:{proxy_port}").as_str())
    );
    assert!(yaml.contains("kind: Service\nmetadata:\n  name: ghapp-proxy\n"));
    assert!(
        text.contains("ca_dir = \"/etc/ghapp-proxy/ca\"")
            && yaml.contains("mountPath: /etc/ghapp-proxy/ca")
    );
    // GHAPP_LOG is the documented log variable.
    assert!(read("docs/reference/configuration.md").contains("`GHAPP_LOG`"));
    assert!(yaml.contains("name: GHAPP_LOG") && docker.contains("GHAPP_LOG"));

    // Ports: the listeners of the config are the container's ports and the image's.
    let listening: BTreeSet<u16> = [
        Some(cfg.listen),
        cfg.metrics_listen,
        cfg.admin_listen,
        cfg.webhook_listen,
    ]
    .into_iter()
    .flatten()
    .map(|a| a.port())
    .collect();
    assert_eq!(ports(&yaml, "containerPort"), listening);
    let exposed: BTreeSet<u16> = docker
        .lines()
        .find_map(|l| l.strip_prefix("EXPOSE "))
        .unwrap()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    assert_eq!(exposed, listening);
    // The admin API and the webhooks have their own Services, never the sandboxes' one.
    for svc in ["name: ghapp-proxy-admin", "name: ghapp-proxy-webhooks"] {
        assert!(yaml.contains(svc), "{svc}");
    }

    // Health: the probes' paths are served on the metrics listener.
    for path in ["/healthz", "/readyz"] {
        assert!(
            yaml.contains(&format!("path: {path}, port: metrics")),
            "{path}"
        );
    }
    let p = w.start_proxy(&ghapp_e2e::two_sandboxes(""), "");
    for path in ["/healthz", "/readyz"] {
        let url = format!("http://{}{path}", p.metrics_addr.clone().unwrap());
        let code = ghapp_e2e::curl_local(["-o", "/dev/null", "-w", "%{http_code}", &url]);
        assert_eq!(code, "200", "{path}");
    }
}

/// The image's HEALTHCHECK, run as the image runs it (its binary and config path swapped for
/// this world's): it passes while the proxy serves and fails, saying so, once it is gone.
/// (It must ask the proxy: a check that cannot fail while the container runs tells nothing.)
fn the_images_healthcheck_asks_the_proxy_and_fails_when_it_is_down() {
    let docker = read("deploy/Dockerfile");
    let line = docker
        .lines()
        .find_map(|l| l.strip_prefix("HEALTHCHECK "))
        .expect("a HEALTHCHECK");
    let argv: Vec<String> = line[line.find('[').expect("exec form")..]
        .trim_matches(['[', ']'])
        .split(',')
        .map(|a| a.trim().trim_matches('"').to_owned())
        .collect();
    assert_eq!(argv[0], "/usr/local/bin/ghapp", "{line}");
    let entry_config = "/etc/ghapp-proxy/proxy.toml";
    assert!(argv.iter().any(|a| a == entry_config), "{line}");

    let w = World::new();
    let p = w.start_proxy(&ghapp_e2e::two_sandboxes(""), "");
    // The proxy's own config with the metrics port it was given (it asked for any free one),
    // as a deployment's config names its fixed port.
    let config = w.path("health.toml");
    let text = std::fs::read_to_string(&p.config_path).unwrap().replace(
        "metrics_listen = \"127.0.0.1:0\"",
        &format!("metrics_listen = {:?}", p.metrics_addr.clone().unwrap()),
    );
    std::fs::write(&config, text).unwrap();
    let args: Vec<String> = argv[1..]
        .iter()
        .map(|a| {
            if a == entry_config {
                config.display().to_string()
            } else {
                a.clone()
            }
        })
        .collect();
    let up = w.ghapp(&args.iter().map(String::as_str).collect::<Vec<_>>());
    up.ok();
    assert!(
        up.stdout
            .contains("ok: the proxy answers at http://127.0.0.1:"),
        "{up:#?}"
    );

    drop(p);
    let down = w.ghapp(&args.iter().map(String::as_str).collect::<Vec<_>>());
    down.fails()
        .one_line_error("ghapp", "the proxy does not answer at http://127.0.0.1:");
    assert!(down.stderr.contains("nothing listens there"), "{down:#?}");
}

/// What is deployed (the image's `ghapp`, install.sh's three binaries) links no emulator:
/// fakehub's sources, named in a build's panic locations, appear only in `ghapp-emulator`.
fn the_deployed_binaries_carry_no_emulator() {
    let dir = ghapp_e2e::bin_dir();
    let has_fakehub = |bin: &str| {
        let bytes = std::fs::read(dir.join(bin)).unwrap_or_else(|e| panic!("{bin}: {e}"));
        memchr::memmem::find(&bytes, b"crates/fakehub/").is_some()
    };
    for bin in ["ghapp", "git-credential-ghapp", "gh-pr"] {
        assert!(!has_fakehub(bin), "{bin} links fakehub");
    }
    assert!(
        has_fakehub("ghapp-emulator"),
        "the check finds fakehub where it is"
    );
    // The image builds exactly `ghapp`.
    assert!(
        read("deploy/Dockerfile").contains("cargo build --release --locked -p ghapp --bin ghapp\n")
    );
}

/// This module's tests, for the runner (`main.rs`).
pub(crate) const TESTS: &[(&str, fn())] = &[
    (
        "the_recipe_and_manifests_use_only_what_the_binary_has",
        the_recipe_and_manifests_use_only_what_the_binary_has,
    ),
    (
        "the_images_healthcheck_asks_the_proxy_and_fails_when_it_is_down",
        the_images_healthcheck_asks_the_proxy_and_fails_when_it_is_down,
    ),
    (
        "the_deployed_binaries_carry_no_emulator",
        the_deployed_binaries_carry_no_emulator,
    ),
];
