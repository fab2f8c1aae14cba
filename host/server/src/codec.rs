//! The protobuf codec of the generated clients and servers: prost's, with two changes on
//! the server's side of a call (inside [`scope`]):
//!
//! - a produce request is counted on its wire bytes before prost decodes it: records,
//!   headers and each record's bytes against `server.max_records_per_request`,
//!   `server.max_headers_per_request` and `server.max_record_bytes`. Decoding allocates
//!   about 45 times the wire size of a request of empty records (a `Record` is ~90 bytes
//!   for 2 on the wire), so the limits are enforced before that allocation, not after.
//!   The scan is one pass over the bytes, allocating nothing.
//! - a request that does not decode is the client's fault: INVALID_ARGUMENT, not
//!   tonic's INTERNAL.
//!
//! Outside a scope (a client decoding a response) it behaves exactly as prost's codec.

use crate::error::ApiError;
use crate::proto;
use bytes::Buf;
use prost::Message;
use std::any::TypeId;
use std::future::Future;
use std::marker::PhantomData;
use tonic::Status;
use tonic::codec::{BufferSettings, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// The limits a request is checked against before it is decoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WireLimits {
    pub(crate) max_records: usize,
    pub(crate) max_headers: usize,
    pub(crate) max_record_bytes: usize,
}

impl WireLimits {
    pub(crate) fn new(config: &crate::ServerConfig) -> Self {
        Self {
            max_records: config.max_records_per_request,
            max_headers: config.max_headers_per_request,
            max_record_bytes: config.max_record_bytes,
        }
    }
}

tokio::task_local! {
    static LIMITS: WireLimits;
}

/// Runs `fut` as the server side of a call: requests it decodes are checked against
/// `limits` first, and decoding errors are INVALID_ARGUMENT.
pub(crate) fn scope<F: Future>(limits: WireLimits, fut: F) -> impl Future<Output = F::Output> {
    LIMITS.scope(limits, fut)
}

/// prost's codec with the server-side checks above (named by `build.rs`).
#[derive(Debug)]
pub struct WireCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for WireCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for WireCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = WireEncoder<T>;
    type Decoder = WireDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        WireEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        WireDecoder(PhantomData)
    }
}

/// Encodes with prost.
#[derive(Debug)]
pub struct WireEncoder<T>(PhantomData<T>);

impl<T: Message> Encoder for WireEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        // EncodeBuf grows as needed: encoding cannot run out of space.
        item.encode(buf)
            .map_err(|e| Status::from(ApiError::Internal(format!("encoding: {e}"))))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// Checks (on the server) and decodes with prost.
#[derive(Debug)]
pub struct WireDecoder<U>(PhantomData<U>);

impl<U: Message + Default + 'static> Decoder for WireDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        let Ok(limits) = LIMITS.try_with(|l| *l) else {
            return U::decode(buf)
                .map(Some)
                .map_err(|e| Status::internal(e.to_string()));
        };
        if TypeId::of::<U>() == TypeId::of::<proto::ProduceRequest>() {
            // The whole message is buffered before `decode`: one contiguous chunk.
            check_produce(buf.chunk(), limits).map_err(Status::from)?;
        }
        U::decode(buf).map(Some).map_err(|e| {
            Status::from(ApiError::InvalidArgument(format!(
                "the request is not a valid protobuf message: {e}"
            )))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// One field of a protobuf message on the wire: its number and, for length-delimited
/// fields, its bytes.
struct Field<'a> {
    number: u64,
    bytes: Option<&'a [u8]>,
}

/// The top-level fields of `buf`; stops (as `None`) at the first malformed byte, which
/// prost then reports precisely.
fn fields(mut buf: &[u8]) -> impl Iterator<Item = Field<'_>> {
    std::iter::from_fn(move || {
        if buf.is_empty() {
            return None;
        }
        let key = prost::encoding::decode_varint(&mut buf).ok()?;
        let number = key >> 3;
        let bytes = match key & 7 {
            0 => {
                prost::encoding::decode_varint(&mut buf).ok()?;
                None
            }
            1 | 5 => {
                let n = if key & 7 == 1 { 8 } else { 4 };
                buf = buf.get(n..)?;
                None
            }
            2 => {
                let len = usize::try_from(prost::encoding::decode_varint(&mut buf).ok()?).ok()?;
                let (value, rest) = (buf.get(..len)?, buf.get(len..)?);
                buf = rest;
                Some(value)
            }
            _ => return None,
        };
        Some(Field { number, bytes })
    })
}

/// Counts the records and headers of an encoded `ProduceRequest` (field 3: `Record`;
/// its fields 1 key, 2 value, 3 `Header` with 1 key and 2 value) and each record's bytes,
/// as `convert::record_size` will (a repeated scalar field counts every copy: an upper
/// bound), and refuses the request at the first limit it passes.
fn check_produce(wire: &[u8], limits: WireLimits) -> Result<(), ApiError> {
    let mut records = 0usize;
    let mut headers = 0usize;
    for record in fields(wire)
        .filter(|f| f.number == 3)
        .filter_map(|f| f.bytes)
    {
        records += 1;
        if records > limits.max_records {
            return Err(ApiError::TooLarge(format!(
                "produce request has more than {} records, the limit",
                limits.max_records
            )));
        }
        let mut size = 0usize;
        for field in fields(record) {
            match (field.number, field.bytes) {
                (1 | 2, Some(b)) => size += b.len(),
                (3, Some(header)) => {
                    headers += 1;
                    size += fields(header)
                        .filter(|f| f.number == 1 || f.number == 2)
                        .filter_map(|f| f.bytes.map(<[u8]>::len))
                        .sum::<usize>();
                }
                _ => {}
            }
        }
        if headers > limits.max_headers {
            return Err(ApiError::TooLarge(format!(
                "produce request has more than {} headers, the limit",
                limits.max_headers
            )));
        }
        if size > limits.max_record_bytes {
            return Err(ApiError::TooLarge(format!(
                "record {} is {size} bytes, over the limit of {}",
                records - 1,
                limits.max_record_bytes
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_records: usize, max_headers: usize, max_record_bytes: usize) -> WireLimits {
        WireLimits {
            max_records,
            max_headers,
            max_record_bytes,
        }
    }

    fn request(records: Vec<proto::Record>) -> Vec<u8> {
        proto::ProduceRequest {
            topic: "t".into(),
            partition: Some(1),
            records,
            sequence: 7,
        }
        .encode_to_vec()
    }

    fn record(value: usize, headers: &[(&str, usize)]) -> proto::Record {
        proto::Record {
            key: Some(b"k".to_vec()),
            value: Some(vec![0; value]),
            headers: headers
                .iter()
                .map(|(k, n)| proto::Header {
                    key: (*k).into(),
                    value: vec![1; *n],
                })
                .collect(),
            timestamp_ms: Some(-1),
        }
    }

    #[test]
    fn the_scan_counts_what_the_decoded_request_holds() {
        let wire = request(vec![record(10, &[("h", 3), ("", 0)]), record(0, &[])]);
        // Exactly at every limit: accepted. Record 0 is 1 + 10 + 1 + 3 = 15 bytes.
        check_produce(&wire, limits(2, 2, 15)).expect("at the limits");
        let refused = |l| match check_produce(&wire, l) {
            Err(ApiError::TooLarge(why)) => why,
            other => panic!("{other:?}"),
        };
        assert!(refused(limits(1, 2, 15)).contains("more than 1 records"));
        assert!(refused(limits(2, 1, 15)).contains("more than 1 headers"));
        assert!(refused(limits(2, 2, 14)).contains("record 0 is 15 bytes"));
    }

    #[test]
    fn many_empty_records_are_refused_without_decoding() {
        // 60 MiB of empty records is 31 million records on the wire.
        let wire: Vec<u8> = std::iter::repeat_n([0x1a, 0x00], 1 << 20)
            .flatten()
            .collect();
        assert!(matches!(
            check_produce(&wire, limits(100_000, 100, 100)),
            Err(ApiError::TooLarge(_))
        ));
        // Malformed bytes are left to prost's precise error.
        check_produce(&[0x1a, 0x05, 0x00], limits(1, 1, 1)).expect("truncated: not counted");
    }
}
