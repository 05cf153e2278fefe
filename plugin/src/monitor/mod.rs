//! Azure Monitor / Microsoft Sentinel: batching rows within the limits of each API and building
//! the requests (Logs Ingestion with a bearer token; the retired-but-kept Data Collector API with
//! a SharedKey signature; or a log shipper's HTTP input).
//!
//! | file | rules |
//! |---|---|
//! | `monitor/batch.rs` | rows into bodies of at most 1 MB (Logs Ingestion) or 30 MB (Data Collector); long fields cut |
//! | `monitor/logs_ingestion.rs` | the Logs Ingestion request: DCE, DCR immutable id, `Custom-` stream, gzip |
//! | `monitor/data_collector.rs` | the Data Collector request; the SharedKey string-to-sign and its signature; its column suffixes |
//! | `monitor/forward.rs` | forward mode: `POST {url}/{table}` to a log shipper |
//! | [`templates`] | the tables and DCR ARM templates and the Kusto schema, generated from the schema |

mod batch;
mod data_collector;
mod forward;
mod logs_ingestion;
pub mod templates;

pub use batch::{Batch, TRUNCATION_MARKER, batch_rows};
pub use data_collector::{
    DATA_COLLECTOR_API_VERSION, DATA_COLLECTOR_MAX_BYTES, DATA_COLLECTOR_MAX_FIELD_BYTES, DataCollectorTarget,
    MAX_LOG_TYPE_CHARS, classic_column_name, data_collector_request, shared_key_authorization,
};
pub use forward::forward_request;
pub use logs_ingestion::{
    LOGS_INGESTION_API_VERSION, LOGS_INGESTION_MAX_BYTES, LOGS_INGESTION_MAX_FIELD_BYTES, LogsIngestionTarget,
    TIME_GENERATED_MAX_AGE_SECS, logs_ingestion_request, time_generated_note,
};

/// The two ingestion APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// Logs Ingestion API (DCR, bearer token).
    LogsIngestion,
    /// HTTP Data Collector API (SharedKey).
    DataCollector,
}

impl Sink {
    /// Largest request body.
    pub fn max_body_bytes(self) -> usize {
        match self {
            Sink::LogsIngestion => LOGS_INGESTION_MAX_BYTES,
            Sink::DataCollector => DATA_COLLECTOR_MAX_BYTES,
        }
    }

    /// Largest field value.
    pub fn max_field_bytes(self) -> usize {
        match self {
            Sink::LogsIngestion => LOGS_INGESTION_MAX_FIELD_BYTES,
            Sink::DataCollector => DATA_COLLECTOR_MAX_FIELD_BYTES,
        }
    }
}
