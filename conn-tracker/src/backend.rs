//! The parser API this crate uses, in one place.

pub(crate) use protocol_parsers::detect::{detect, Detected};
pub(crate) use protocol_parsers::http1::{Http1Limits, Http1Session, Upgrade};
pub(crate) use protocol_parsers::http2::{Http2Limits, Http2Session};
