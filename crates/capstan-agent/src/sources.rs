//! Sources other than the root repository that a cluster's units name: fetched by the
//! shared round ([`capstan_engine::sources`]); re-exported here for the agent's users.

pub use capstan_engine::sources::*;
