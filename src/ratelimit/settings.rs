//! `limits` at run time: the token buckets in force (their file shape and check are
//! `config::limits`).

/// A token bucket: `burst` at once, refilled at `per_minute` a minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub burst: u32,
    pub per_minute: u32,
}

/// The limits in force (a reload changes them for new requests; counts are kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub start_per_client: Bucket,
    pub start_per_provider: Bucket,
    pub exchange_per_client: Bucket,
    pub exchange_overall: Bucket,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            start_per_client: Bucket {
                burst: 10,
                per_minute: 10,
            },
            start_per_provider: Bucket {
                burst: 600,
                per_minute: 600,
            },
            exchange_per_client: Bucket {
                burst: 60,
                per_minute: 60,
            },
            exchange_overall: Bucket {
                burst: 300,
                per_minute: 300,
            },
        }
    }
}
