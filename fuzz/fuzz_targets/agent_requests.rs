//! What an agent (or anyone holding an agent credential) sends the server:
//! enrolment and check-in bodies, decoded as the server decodes them.
#![no_main]
use patchbay_proto::agent::{CheckinRequest, EnrollRequest};
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    let _ = serde_json::from_slice::<EnrollRequest>(bytes);
    if let Ok(req) = serde_json::from_slice::<CheckinRequest>(bytes) {
        // Re-encoding what decoded must not fail.
        serde_json::to_vec(&req).expect("a decoded request re-encodes");
    }
});
