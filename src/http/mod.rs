//! The one place envbuild speaks HTTP. Wheel downloads (`fetch`), index pages
//! (`index`) and registries (`registry`) all build their client with [`build_client`],
//! retry with [`retry::retry`] under one policy, bound each transfer with [`send`] and
//! [`Body`], and show URLs only through [`redact_url`] / [`redact_text`].
//!
//! - [`client`](build_client): TLS from the OS store plus `SSL_CERT_FILE` / `SSL_CERT_DIR`
//!   and an optional extra CA, proxies from the environment, the user agent, timeouts,
//!   and the redirect policy (no downgrade to plain HTTP, no `Referer`, credentials never
//!   forwarded to another host);
//! - [`retry`]: transient statuses and errors, `Retry-After`, backoff with jitter, and
//!   the loop, generic over what one attempt does;
//! - transfer bounds: a deadline for the answer's head, a read timeout and a minimum
//!   rate for its body ([`MinimumRate`]), sizes as flags write them ([`ByteSize`]), and
//!   a circuit breaker for hosts that cannot be reached at all ([`UnreachableHosts`]);
//! - redaction: user information and every query value become `***`, in parsed URLs
//!   and in free text alike.

mod client;
mod redact;
pub mod retry;
mod transfer;

pub use client::{ClientError, ClientSettings, MAX_REDIRECTS, USER_AGENT, build_client};
pub use redact::{redact_text, redact_url};
pub use transfer::{
    Body, BodyError, ByteSize, ByteSizeError, MinimumRate, ReadError, ReceivedSize, SendError,
    UnreachableHosts, send,
};
