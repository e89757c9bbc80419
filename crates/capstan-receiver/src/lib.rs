//! Push webhooks (work in progress).
