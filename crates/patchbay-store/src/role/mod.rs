//! The role stores: one file per role, each with its trait, its row types and
//! its one implementation for both engines (for `SqlTx<DB>`, `DB: Engine`; see
//! `engine.rs`). A new role is a new file here.

mod agents;
mod assets;
mod audit;
mod backups;
mod changes;
mod contacts;
mod csaf;
mod discovery;
mod drift;
mod escalations;
mod events;
mod exceptions;
mod feeds;
mod finding_seq;
mod findings;
mod impact;
mod inventory;
mod leases;
mod plan;
mod rollouts;
mod schedule;
mod siem;
mod tokens;
mod users;
mod webhooks;

pub use agents::*;
pub use assets::*;
pub use audit::*;
pub use backups::*;
pub use changes::*;
pub use contacts::*;
pub use csaf::*;
pub use discovery::*;
pub use drift::*;
pub use escalations::*;
pub use events::*;
pub use exceptions::*;
pub use feeds::*;
pub use finding_seq::*;
pub use findings::*;
pub use impact::*;
pub use inventory::*;
pub use leases::*;
pub use plan::*;
pub use rollouts::*;
pub use schedule::*;
pub use siem::*;
pub use tokens::*;
pub use users::*;
pub use webhooks::*;
