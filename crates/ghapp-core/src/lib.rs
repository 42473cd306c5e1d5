//! ghapp-core: everything between "a GitHub App's private key" and "a token for this repository".
//!
//! - [`config`]: the one loader (flags, environment, TOML file, the credentials JSON).
//! - [`keys`]: key sources (file, environment, credentials JSON, command, OS keyring).
//! - [`jwt`]: RS256 app JWTs with clock-offset recovery.
//! - [`client`]: the GitHub REST client with GitHub's retry rules.
//! - [`cache`]: the 0600 on-disk token cache with per-key cross-process locks.
//! - [`broker`]: cache, single-flight, installation discovery and minting.
//! - [`request`]: what a token is asked for and its cache key (pure).
//! - [`resolve`]: which app (or personal access token) answers for a host and owner, and
//!   obtaining its credential.
//! - [`permissions`]: permission names and their ordered levels.
//! - [`fsutil`]: 0600 files in 0700 directories, written atomically.
//!
//! The `mint` feature (off by default; every member that mints turns it on) brings the broker,
//! the GitHub client, JWT signing, the OS keyring and the log subscriber, and with them tokio,
//! reqwest and rustls. Without it (the credential helper) this crate reads configuration and
//! the token cache only.
//!
//! ```no_run
//! # #[cfg(feature = "mint")]
//! # async fn f() -> ghapp_core::Result<()> {
//! use ghapp_core::{broker::{Broker, TokenRequest}, config::{Config, Overrides}};
//! use ghapp_gitproto::repo::RepoName;
//! let cfg = Config::load(&Overrides::default())?;
//! let broker = Broker::new(cfg.primary()?.clone(), cfg.refresh_margin, &cfg.cache_dir)?;
//! let repo = RepoName::parse("octo-org/widgets").expect("a repository name");
//! let token = broker.token(&TokenRequest::for_repo(&repo)).await?;
//! # let _ = token; Ok(()) }
//! ```
//!
//! # Security
//! Private keys, tokens and JWTs live in the newtypes of [`secret`], whose `Debug` prints `****`
//! and which have no `Display`. Errors name sources and scopes, never values. Cache files are
//! 0600 in a 0700 directory and written atomically.

#[cfg(feature = "mint")]
pub mod broker;
pub mod cache;
#[cfg(feature = "mint")]
pub mod client;
pub mod config;
pub mod error;
#[cfg(feature = "mint")]
pub mod exchange;
pub mod fsutil;
#[cfg(feature = "mint")]
pub mod jwt;
pub mod keys;
#[cfg(feature = "mint")]
pub mod log;
pub mod permissions;
pub mod request;
pub mod resolve;
pub mod secret;
#[cfg(feature = "mint")]
pub mod signer;
pub mod time;

pub use error::{Error, Result};
