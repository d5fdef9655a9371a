//! End-to-end tests: each starts the real `aiaas` binary on port 0 with a fresh data
//! directory and talks to it over HTTP (and through the CLI), as a user would.

mod access;
mod backups;
mod cli;
mod common;
mod jobs;
mod library;
mod limits;
mod privacy;
mod replicas;
mod routes;
mod security;
mod serving;
mod tenancy;
mod tls;
mod worked_example;
