//! What the commands that talk to GitHub as the app share: the configuration read, the log
//! started, the broker (with the key loaded when asked) and a current-thread runtime, loaded
//! one way.

use anyhow::{Context, Result};
use ghapp_core::broker::Broker;
use ghapp_core::config::Config;

use crate::cli::AppFlags;

pub(crate) struct AppContext {
    pub(crate) broker: Broker,
    pub(crate) rt: tokio::runtime::Runtime,
}

impl AppContext {
    /// Loads the configuration for `cli`, starts the log, and builds the broker for the primary
    /// app; with `key`, the key is loaded now (so a bad key fails before any request).
    pub(crate) fn load(app: &AppFlags, key: bool) -> Result<AppContext> {
        let cfg = Config::load(&app.overrides())?;
        let app = cfg.primary()?.clone();
        ghapp_core::log::init("ghapp");
        let broker = Broker::new(app, cfg.refresh_margin, &cfg.cache_dir)?;
        if key {
            broker.load_key_now()?;
        }
        Ok(AppContext {
            broker,
            rt: runtime()?,
        })
    }
}

/// A current-thread runtime: these commands make a few requests, one after another.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
