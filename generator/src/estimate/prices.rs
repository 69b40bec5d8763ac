//! Public on-demand prices the cost model uses: US East (N. Virginia), `us-east-1`, in US
//! dollars, free tiers left out. Other regions differ by a few percent to a few tens of
//! percent; the estimate says which region its prices are for.
//!
//! Sources (each price was checked against the page named above it):

// Lambda — https://aws.amazon.com/lambda/pricing/ (first tier of duration).
/// Per invocation (`$0.20` per million requests), either architecture.
pub const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
/// Per GB-second of duration on arm64 (Graviton).
pub const LAMBDA_GB_SECOND_ARM64: f64 = 0.000_013_333_4;
/// Per GB-second of duration on x86_64.
pub const LAMBDA_GB_SECOND_X86_64: f64 = 0.000_016_666_7;

// SQS — https://aws.amazon.com/sqs/pricing/ (standard queue, first 100 billion requests a
// month). Every API action is a request, an empty receive included; each 64 KiB chunk of a
// payload counts as one request, and a batch of up to 10 messages is one request.
/// Per request to a standard queue (`$0.40` per million).
pub const SQS_REQUEST: f64 = 0.40 / 1e6;

// DynamoDB — https://aws.amazon.com/dynamodb/pricing/on-demand/ (on-demand capacity mode).
// A standard write of up to 1 KB is one write request unit, a transactional write two; a
// strongly consistent read of up to 4 KB is one read request unit, an eventually
// consistent one half.
/// Per write request unit (`$0.625` per million).
pub const DYNAMODB_WRITE_UNIT: f64 = 0.625 / 1e6;
/// Per read request unit (`$0.125` per million).
pub const DYNAMODB_READ_UNIT: f64 = 0.125 / 1e6;

// S3 — https://aws.amazon.com/s3/pricing/ (S3 Standard requests).
/// Per PUT, COPY, POST or LIST request (`$0.005` per 1,000).
pub const S3_PUT: f64 = 0.005 / 1e3;

// Step Functions — https://aws.amazon.com/step-functions/pricing/ and, for the Distributed
// Map, https://docs.aws.amazon.com/step-functions/latest/dg/concepts-transitions.html ("one
// state transition for each child workflow execution that the Distributed Map state
// starts").
/// Per state transition of a Standard workflow (`$0.025` per 1,000).
pub const SFN_STATE_TRANSITION: f64 = 0.025 / 1e3;
/// Per Express workflow execution (`$1.00` per million requests).
pub const SFN_EXPRESS_REQUEST: f64 = 1.00 / 1e6;
/// Per GB-second of Express duration (first tier), billed in 100 ms steps and 64 MB chunks.
pub const SFN_EXPRESS_GB_SECOND: f64 = 0.000_016_67;
/// Express duration is rounded up to this many seconds.
pub const SFN_EXPRESS_BILLING_STEP_SECONDS: f64 = 0.1;
/// Express memory is billed in chunks of this many GB (64 MB); a small child uses one.
pub const SFN_EXPRESS_MEMORY_GB: f64 = 64.0 / 1024.0;

/// The region the prices above are for.
pub const PRICES_REGION: &str = "us-east-1";

/// Hours in the month AWS bills by (365 × 24 / 12).
pub const HOURS_PER_MONTH: f64 = 730.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_million_figures_read_as_on_the_pricing_pages() {
        let per_million = |unit: f64| (unit * 1e6 * 1e4).round() / 1e4;
        assert_eq!(per_million(LAMBDA_REQUEST), 0.20);
        assert_eq!(per_million(SQS_REQUEST), 0.40);
        assert_eq!(per_million(DYNAMODB_WRITE_UNIT), 0.625);
        assert_eq!(per_million(DYNAMODB_READ_UNIT), 0.125);
        assert_eq!(per_million(S3_PUT), 5.0);
        assert_eq!(per_million(SFN_STATE_TRANSITION), 25.0);
        assert_eq!(per_million(SFN_EXPRESS_REQUEST), 1.0);
    }
}
