//! The contract's result limit (`delivery.result_limit_kib`): the largest 2xx process
//! answer a forwarder reads; a larger one fails its child at once with a reason that names
//! the limit.
//!
//! A forwarder calls a whole batch at once, so it may hold `batch_size` answers together,
//! each twice for a moment (the body as read, then the JSON text stored). Lambda stops a
//! function that passes its memory, and every message of the batch would lose an attempt,
//! so the limit must fit: `batch_size × 2 × limit` plus what the process itself holds. The
//! contract's 6 MiB is the default when that fits; otherwise the default is what fits, and
//! a set value that does not fit is refused.

/// The contract's result limit when the config sets none, in KiB.
pub const CONTRACT_LIMIT_KIB: u32 = 6 * 1024;

/// What a forwarder holds besides the answers: the runtime, the SDK clients, the batch.
pub const BASE_MEMORY_MB: u32 = 40;

/// The largest limit a forwarder of `memory_mb` holds for a batch of `batch_size`, in KiB.
pub fn fits_kib(memory_mb: u32, batch_size: u32) -> u32 {
    let room_kib = memory_mb.saturating_sub(BASE_MEMORY_MB) * 1024;
    room_kib / (2 * batch_size.max(1))
}

/// The forwarder memory a limit of `limit_kib` needs with batches of `batch_size`, in MB.
pub fn memory_needed_mb(limit_kib: u32, batch_size: u32) -> u32 {
    let answers_mb = (u64::from(limit_kib) * 2 * u64::from(batch_size.max(1))).div_ceil(1024);
    BASE_MEMORY_MB + u32::try_from(answers_mb).unwrap_or(u32::MAX - BASE_MEMORY_MB)
}

/// The limit when the config sets none.
pub fn default_kib(memory_mb: u32, batch_size: u32) -> u32 {
    CONTRACT_LIMIT_KIB.min(fits_kib(memory_mb, batch_size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_limit_when_it_fits() {
        assert_eq!(default_kib(256, 10), CONTRACT_LIMIT_KIB);
        assert_eq!(default_kib(2048, 10), CONTRACT_LIMIT_KIB);
        // 128 MB holds 88 MB of answers: ten of 4.4 MiB, twice each.
        assert_eq!(default_kib(128, 10), 4505);
        assert_eq!(default_kib(128, 1), CONTRACT_LIMIT_KIB);
    }

    #[test]
    fn what_a_limit_needs() {
        assert_eq!(memory_needed_mb(CONTRACT_LIMIT_KIB, 10), 160);
        assert!(fits_kib(memory_needed_mb(CONTRACT_LIMIT_KIB, 10), 10) >= CONTRACT_LIMIT_KIB);
    }
}
