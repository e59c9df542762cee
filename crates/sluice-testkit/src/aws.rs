//! Static credentials and region for talking to moto_server. moto accepts any
//! credentials; these are the values its documentation uses, so a stray request
//! that reaches real AWS fails to authenticate instead of touching an account.

pub const AWS_ACCESS_KEY_ID: &str = "testing";
pub const AWS_SECRET_ACCESS_KEY: &str = "testing";
pub const AWS_REGION: &str = "us-east-1";
