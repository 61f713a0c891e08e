//! What every AWS client and server needs: credentials and where they come from (the
//! environment, or a web identity exchanged at STS), and Signature Version 4.

pub mod credentials;
pub mod sigv4;
pub mod sts;
