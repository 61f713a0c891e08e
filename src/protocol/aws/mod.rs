//! What every AWS client and server needs: credentials and where they come from (the
//! environment, a web identity exchanged at STS, the container agent, the instance profile, a
//! profile file), and Signature Version 4.

pub mod credentials;
pub mod http1;
pub mod instance;
pub mod sigv4;
pub mod sts;
