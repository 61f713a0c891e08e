//! A Kinesis API request body, JSON or CBOR, through the operation it names, on the core over
//! the in-memory backend: decoding, validation and the operation itself. Any answer is fine
//! (an AWS exception included); a panic is the finding. The first byte picks the operation,
//! the second the protocol. A stream named `s` (2 shards) exists, so bodies naming it get past
//! the lookup; the core is made again every 5,000 runs so state cannot grow without bound.
#![no_main]

use std::cell::RefCell;
use std::sync::Arc;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strait::backend::memory::{MemoryLog, MemoryMetaStore};
use strait::config::StreamsConfig;
use strait::core::{Core, ForeignTopics};
use strait::kinesis::ops::{Ctx, Handler, OPERATIONS};
use strait::protocol::kinesis::codec::Protocol;

struct Harness {
    runtime: tokio::runtime::Runtime,
    ctx: Arc<Ctx>,
    runs: u32,
}

const RUNS_PER_CORE: u32 = 5_000;

fn fresh(runtime: &tokio::runtime::Runtime) -> Arc<Ctx> {
    runtime.block_on(async {
        let core = Core::open(
            "000000000000".into(),
            StreamsConfig::default(),
            Arc::new(MemoryLog::new()),
            Arc::new(MemoryMetaStore::new()),
            ForeignTopics::Delete,
        )
        .await
        .expect("core on memory");
        let ctx = Arc::new(Ctx::detached(Arc::new(core)));
        let create = unary("CreateStream");
        create(
            ctx.clone(),
            Protocol::Json,
            Bytes::from_static(br#"{"StreamName":"s","ShardCount":2}"#),
        )
        .await
        .expect("stream s");
        ctx
    })
}

fn unary(name: &str) -> fn(Arc<Ctx>, Protocol, Bytes) -> strait::kinesis::ops::Reply {
    match OPERATIONS
        .iter()
        .find(|o| o.name == name)
        .and_then(|o| o.handler)
    {
        Some(Handler::Unary(f)) => f,
        _ => panic!("{name} is a unary operation"),
    }
}

thread_local! {
    static HARNESS: RefCell<Option<Harness>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    let [op, protocol, body @ ..] = data else {
        return;
    };
    let unary_ops: Vec<_> = OPERATIONS
        .iter()
        .filter_map(|o| match o.handler {
            Some(Handler::Unary(f)) => Some(f),
            _ => None,
        })
        .collect();
    let handler = unary_ops[*op as usize % unary_ops.len()];
    let protocol = if protocol & 1 == 0 {
        Protocol::Json
    } else {
        Protocol::Cbor
    };
    let body = Bytes::copy_from_slice(body);
    HARNESS.with(|h| {
        let mut h = h.borrow_mut();
        let h = h.get_or_insert_with(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let ctx = fresh(&runtime);
            Harness {
                runtime,
                ctx,
                runs: 0,
            }
        });
        h.runs += 1;
        if h.runs % RUNS_PER_CORE == 0 {
            h.ctx = fresh(&h.runtime);
        }
        let ctx = h.ctx.clone();
        let _ = h.runtime.block_on(handler(ctx, protocol, body));
    });
});
