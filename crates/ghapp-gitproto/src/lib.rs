//! Pure protocol code for ghapp: no I/O, only functions over bytes.
//!
//! [`credential`] parses what git sends a credential helper and formats the answer, following
//! git's `Documentation/git-credential.adoc` (git 2.47). [`pktline`] frames git's wire protocol,
//! [`receive_pack`] reads a push's command section and builds report-status refusals, and
//! [`policy`] decides which ref updates a sandbox may make; [`route`] and [`rest`] name git and REST
//! requests, decoded once and normalised, so the proxy forwards exactly what it decided on;
//! [`graphql`] reads a GraphQL request as GitHub would run it (operation, mutation fields,
//! variables resolved); [`pack`] reads a pushed pack as it streams (object sizes, blob
//! contents) and [`secrets`] finds credentials in pushed files. Everything here is table-tested and
//! property-tested: arbitrary input never panics, and formatting then parsing gives back the input.
//!
//! ```
//! use ghapp_gitproto::credential::{Request, repo_from_path};
//! let req = Request::parse(b"protocol=https\nhost=github.com\npath=octo/widgets.git\n\n").unwrap();
//! assert_eq!(req.host(), Some("github.com"));
//! assert_eq!(repo_from_path(req.path().unwrap()), Some(("octo".into(), "widgets".into())));
//! ```

pub mod basic;
pub mod credential;
#[cfg(feature = "graphql")]
pub mod graphql;
pub mod lfs;
pub mod pack;
pub mod pktline;
pub mod policy;
pub mod receive_pack;
pub mod repo;
pub mod rest;
pub mod route;
pub mod secrets;
