//! Integration tests of the inventory parsers: real files from `fixtures/`,
//! property tests (no panics on any input, truncation and line deletion of real
//! files, render → parse round trips), and differential checks against the real
//! tools of this machine (`dpkg-query`, `/bin/sh`) where they exist.

mod apk;
mod audit;
mod canary;
mod common;
mod dpkg;
mod exception;
mod machine;
mod os_release;
mod plan;
mod policy;
mod report;
mod report_deployments;
mod report_governance;
mod risk;
mod rollout;
mod rpm;
mod rules;
mod siem;
mod unmanaged;
mod webhook_templates;
mod window;
