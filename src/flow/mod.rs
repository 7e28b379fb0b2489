//! What happens between a source and its channels (interceptors, then the channel
//! selector) and between channels and sinks (sink processors of sink groups).

pub mod delivery;
pub mod interceptor;
pub mod processor;
pub mod selector;
