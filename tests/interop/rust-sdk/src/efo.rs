//! Enhanced fan-out through the SDK: RegisterStreamConsumer until ACTIVE, SubscribeToShard (the
//! fluent `send()` consumes the initial-response), events carrying records put before and after
//! subscribing with their ContinuationSequenceNumber, a second subscription within 5 s refused,
//! takeover after 5 s (the old receiver gets a ResourceInUseException event), a closed parent shard
//! ending with ChildShards, DeleteStream with consumers.
//!
//! Transport: this client is `Builder::build_http()` (hyper, no TLS), which speaks HTTP/1.1 to a
//! plain `http://` endpoint (hyper only uses HTTP/2 after ALPN or when forced), so strait answers
//! SubscribeToShard with a chunked HTTP/1.1 event stream; the check below records it.

use super::*;

use kinesis::operation::subscribe_to_shard::SubscribeToShardOutput;
use kinesis::types::{ConsumerStatus, StartingPosition, SubscribeToShardEvent, SubscribeToShardEventStream};

/// What one `recv` with a deadline produced.
enum Next {
    Event(SubscribeToShardEvent),
    End,
    Error(String, bool), // detail, is ResourceInUseException
    Timeout,
}

async fn next_event(rx: &mut SubscribeToShardOutput, within: Duration) -> Next {
    match tokio::time::timeout(within, rx.event_stream.recv()).await {
        Err(_) => Next::Timeout,
        Ok(Ok(None)) => Next::End,
        Ok(Ok(Some(SubscribeToShardEventStream::SubscribeToShardEvent(ev)))) => Next::Event(ev),
        Ok(Ok(Some(other))) => Next::Error(format!("unexpected event {other:?}"), false),
        Ok(Err(e)) => {
            let riu = e.as_service_error().map(|se| se.is_resource_in_use_exception()).unwrap_or(false);
            let detail = match e.as_service_error() {
                Some(se) => format!("service error code={:?} message={:?}", se.code(), se.message()),
                None => format!("{}", DisplayErrorContext(&e)),
            };
            Next::Error(detail, riu)
        }
    }
}

/// Events until `want` records arrived in total (or `within` passed); returns (events, problems).
async fn collect(rx: &mut SubscribeToShardOutput, want: usize, within: Duration) -> (Vec<SubscribeToShardEvent>, Vec<String>) {
    let deadline = Instant::now() + within;
    let mut events = vec![];
    let mut n = 0;
    while n < want {
        let left = deadline.saturating_duration_since(Instant::now());
        match next_event(rx, left).await {
            Next::Event(ev) => {
                n += ev.records().len();
                events.push(ev);
            }
            Next::End => return (events, vec![format!("stream ended after {n} of {want} records")]),
            Next::Error(d, _) => return (events, vec![format!("after {n} of {want} records: {d}")]),
            Next::Timeout => return (events, vec![format!("{n} of {want} records within {within:?}")]),
        }
    }
    (events, vec![])
}

/// Records of `events` against what was written; ContinuationSequenceNumber = last record's.
fn compare_events(events: &[SubscribeToShardEvent], want: &[Written]) -> Vec<String> {
    let mut p = vec![];
    let got: Vec<&kinesis::types::Record> = events.iter().flat_map(|e| e.records()).collect();
    expect!(p, got.len() == want.len(), "{} records, expected {}", got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        expect!(p, g.partition_key() == Some(w.pk.as_str()), "record {i}: PartitionKey {:?}, expected {:?}", g.partition_key(), w.pk);
        expect!(p, g.data().as_ref() == w.data.as_slice(), "record {i}: data differs");
        expect!(p, g.sequence_number() == w.seq, "record {i}: SequenceNumber {}, expected {}", g.sequence_number(), w.seq);
    }
    for ev in events {
        if let Some(last) = ev.records().last() {
            expect!(
                p,
                ev.continuation_sequence_number() == last.sequence_number(),
                "ContinuationSequenceNumber {:?} != the event's last SequenceNumber {:?}",
                ev.continuation_sequence_number(),
                last.sequence_number()
            );
        } else {
            expect!(p, is_seqno(ev.continuation_sequence_number()), "empty event: ContinuationSequenceNumber {:?}", ev.continuation_sequence_number());
        }
        expect!(p, ev.millis_behind_latest() >= 0, "MillisBehindLatest {}", ev.millis_behind_latest());
    }
    p
}

async fn put(s: &Suite, stream: &str, recs: &[(String, Vec<u8>)]) -> Result<Vec<Written>, String> {
    let entries: Vec<PutRecordsRequestEntry> = recs
        .iter()
        .map(|(k, d)| PutRecordsRequestEntry::builder().partition_key(k).data(Blob::new(d.clone())).build().unwrap())
        .collect();
    let o = s.client.put_records().stream_name(stream).set_records(Some(entries)).send().await.map_err(|e| err_detail(&e))?;
    if o.failed_record_count().unwrap_or(0) != 0 {
        return Err(format!("FailedRecordCount {:?}", o.failed_record_count()));
    }
    Ok(recs
        .iter()
        .zip(o.records())
        .map(|((k, d), r)| Written { pk: k.clone(), data: d.clone(), seq: r.sequence_number().unwrap_or("").to_string() })
        .collect())
}

async fn register_active(s: &mut Suite, stream_arn: &str, name: &str) -> Option<String> {
    let check = format!("RegisterStreamConsumer {name} (CREATING, ARN) then DescribeStreamConsumer until ACTIVE");
    let t0 = now_secs();
    let o = match s.client.register_stream_consumer().stream_arn(stream_arn).consumer_name(name).send().await {
        Ok(o) => o,
        Err(e) => {
            s.fail(&check, err_detail(&e));
            return None;
        }
    };
    let mut p = vec![];
    let Some(c) = o.consumer() else {
        s.fail(&check, "no Consumer in the response");
        return None;
    };
    let arn = c.consumer_arn().to_string();
    let prefix = format!("{stream_arn}/consumer/{name}:");
    expect!(p, arn.starts_with(&prefix), "ConsumerARN {arn:?} does not start with {prefix:?}");
    let epoch = arn.rsplit(':').next().and_then(|e| e.parse::<f64>().ok());
    expect!(p, epoch.map(|e| (e - t0).abs() < 5.0).unwrap_or(false), "ConsumerARN epoch {epoch:?} far from now {t0}");
    expect!(p, *c.consumer_status() == ConsumerStatus::Creating, "status {:?} right after registering", c.consumer_status());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match s.client.describe_stream_consumer().consumer_arn(&arn).send().await {
            Ok(d) => {
                let st = d.consumer_description().map(|d| d.consumer_status().clone());
                if st == Some(ConsumerStatus::Active) {
                    break;
                }
                if Instant::now() > deadline {
                    p.push(format!("still {st:?} after 10 s"));
                    break;
                }
            }
            Err(e) => {
                p.push(err_detail(&e));
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ok = p.is_empty();
    s.check(&check, p);
    ok.then_some(arn)
}

fn position(ty: ShardIteratorType, seq: Option<&str>) -> StartingPosition {
    StartingPosition::builder().r#type(ty).set_sequence_number(seq.map(str::to_string)).build().unwrap()
}

async fn subscribe(s: &Suite, arn: &str, shard: &str, pos: StartingPosition) -> Result<SubscribeToShardOutput, SdkError<kinesis::operation::subscribe_to_shard::SubscribeToShardError, HttpResponse>> {
    s.client.subscribe_to_shard().consumer_arn(arn).shard_id(shard).starting_position(pos).send().await
}

pub async fn run(s: &mut Suite) {
    let stream = format!("rust-sdk-efo-{}-{}", std::process::id(), SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis());
    let stream_arn = format!("arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{stream}");
    const SHARD0: &str = "shardId-000000000000";
    if let Err(e) = s.client.create_stream().stream_name(&stream).shard_count(1).send().await {
        s.fail("EFO: CreateStream (1 shard)", err_detail(&e));
        return;
    }
    if let Err(e) = wait_active(s, &stream).await {
        s.fail("EFO: stream ACTIVE", e);
        return;
    }
    let before: Vec<(String, Vec<u8>)> = (0..3).map(|i| (format!("k{i}"), format!("before-{i}").into_bytes())).collect();
    let written_before = match put(s, &stream, &before).await {
        Ok(w) => w,
        Err(e) => {
            s.fail("EFO: PutRecords before subscribing", e);
            return cleanup(s, &stream).await;
        }
    };
    let Some(arn) = register_active(s, &stream_arn, "rust-efo").await else {
        return cleanup(s, &stream).await;
    };

    // --- SubscribeToShard: initial response, transport, records before and after ----------------
    let t_sub = Instant::now();
    let mut out = match subscribe(s, &arn, SHARD0, position(ShardIteratorType::TrimHorizon, None)).await {
        Ok(o) => {
            let (te, ct) = {
                let ex = s.capture.0.lock().unwrap();
                (ex.transfer_encoding.clone(), ex.content_type.clone())
            };
            println!("# SubscribeToShard response: content-type {ct:?}, transfer-encoding {te:?} (chunked = HTTP/1.1; HTTP/2 has no transfer-encoding)");
            let mut p = vec![];
            expect!(p, ct == "application/vnd.amazon.eventstream", "content-type {ct:?}");
            expect!(p, te == "chunked", "transfer-encoding {te:?}: not the HTTP/1.1 chunked stream expected over plain http");
            s.check("SubscribeToShard returns after the initial-response (event stream, HTTP/1.1 chunked over plain http)", p);
            o
        }
        Err(e) => {
            s.fail("SubscribeToShard (TRIM_HORIZON)", err_detail(&e));
            return cleanup(s, &stream).await;
        }
    };
    let (events, mut p) = collect(&mut out, written_before.len(), Duration::from_secs(10)).await;
    p.extend(compare_events(&events, &written_before));
    s.check("SubscribeToShard events carry the records put before subscribing (order, keys, data, ContinuationSequenceNumber)", p);

    let after: Vec<(String, Vec<u8>)> = (0..4).map(|i| (format!("k{}", i % 2), format!("after-{i}").into_bytes())).collect();
    match put(s, &stream, &after).await {
        Err(e) => s.fail("EFO: PutRecords while subscribed", e),
        Ok(written_after) => {
            let t_put = Instant::now();
            let (events, mut p) = collect(&mut out, written_after.len(), Duration::from_secs(10)).await;
            let took = t_put.elapsed();
            expect!(p, took < Duration::from_secs(2), "records put while subscribed took {took:?} to arrive");
            p.extend(compare_events(&events, &written_after));
            if let Some(last) = events.last() {
                expect!(p, last.millis_behind_latest() == 0, "caught up but MillisBehindLatest {}", last.millis_behind_latest());
            }
            s.check("SubscribeToShard pushes records put while subscribed (within 2 s, in order, continuation = last SequenceNumber)", p);
        }
    }

    // --- a second subscription within 5 s is refused; after 5 s it takes over ---------------------
    let r = subscribe(s, &arn, SHARD0, position(ShardIteratorType::Latest, None)).await;
    let quick = t_sub.elapsed() < Duration::from_secs(5);
    if quick {
        expect_typed_error(s, "SubscribeToShard again within 5 s -> ResourceInUseException", r, "ResourceInUseException", |e| e.is_resource_in_use_exception());
    } else {
        s.fail("SubscribeToShard again within 5 s -> ResourceInUseException", "the suite took over 5 s to get here; not checked");
    }
    let wait = Duration::from_millis(5500).saturating_sub(t_sub.elapsed());
    tokio::time::sleep(wait).await;
    match subscribe(s, &arn, SHARD0, position(ShardIteratorType::Latest, None)).await {
        Err(e) => s.fail("SubscribeToShard after 5 s takes over", err_detail(&e)),
        Ok(mut newer) => {
            // The old receiver: an exception event (ResourceInUseException), then nothing.
            let mut p = vec![];
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match next_event(&mut out, deadline.saturating_duration_since(Instant::now())).await {
                    Next::Event(ev) => expect!(p, ev.records().is_empty(), "old subscription got {} records after the takeover", ev.records().len()),
                    Next::Error(d, riu) => {
                        expect!(p, riu, "old subscription ended with {d}, expected ResourceInUseException");
                        break;
                    }
                    Next::End => {
                        p.push("old subscription ended without a ResourceInUseException event".into());
                        break;
                    }
                    Next::Timeout => {
                        p.push("old subscription still open 10 s after the takeover".into());
                        break;
                    }
                }
            }
            s.check("SubscribeToShard after 5 s takes over; the old stream receives ResourceInUseException", p);
            let mut p = vec![];
            match put(s, &stream, &[("t".to_string(), b"to-newer".to_vec())]).await {
                Err(e) => p.push(e),
                Ok(w) => {
                    let (events, mut q) = collect(&mut newer, 1, Duration::from_secs(10)).await;
                    q.extend(compare_events(&events, &w));
                    p.extend(q);
                }
            }
            s.check("the new subscription receives the next record", p);
        }
    }

    // --- an idle event's continuation resumes with AFTER_SEQUENCE_NUMBER (second consumer) -------
    // and a closed parent ends with ChildShards.
    if let Some(arn2) = register_active(s, &stream_arn, "rust-efo-2").await {
        match subscribe(s, &arn2, SHARD0, position(ShardIteratorType::Latest, None)).await {
            Err(e) => s.fail("SubscribeToShard LATEST (second consumer)", err_detail(&e)),
            Ok(mut o) => {
                let mut p = vec![];
                let cont = match next_event(&mut o, Duration::from_secs(8)).await {
                    Next::Event(ev) => {
                        expect!(p, ev.records().is_empty(), "LATEST: first event has {} records", ev.records().len());
                        expect!(p, is_seqno(ev.continuation_sequence_number()), "ContinuationSequenceNumber {:?}", ev.continuation_sequence_number());
                        Some(ev.continuation_sequence_number().to_string())
                    }
                    _ => {
                        p.push("no event on an idle shard within 8 s".into());
                        None
                    }
                };
                s.check("SubscribeToShard LATEST on an idle shard: an empty event with a ContinuationSequenceNumber", p);
                drop(o);
                if let Some(cont) = cont {
                    let newer: Vec<(String, Vec<u8>)> = (0..3).map(|i| (format!("r{i}"), format!("resume-{i}").into_bytes())).collect();
                    let res = put(s, &stream, &newer).await;
                    tokio::time::sleep(Duration::from_millis(5500)).await; // the 5 s rule for this consumer
                    match (res, subscribe(s, &arn2, SHARD0, position(ShardIteratorType::AfterSequenceNumber, Some(&cont))).await) {
                        (Err(e), _) => s.fail("EFO: PutRecords for resume", e),
                        (_, Err(e)) => s.fail("SubscribeToShard AFTER_SEQUENCE_NUMBER <idle continuation>", err_detail(&e)),
                        (Ok(w), Ok(mut o)) => {
                            let (mut events, mut p) = collect(&mut o, w.len(), Duration::from_secs(10)).await;
                            // A duplicate would show up right behind.
                            if let Next::Event(ev) = next_event(&mut o, Duration::from_millis(500)).await {
                                events.push(ev);
                            }
                            p.extend(compare_events(&events, &w));
                            s.check("SubscribeToShard AFTER_SEQUENCE_NUMBER <idle continuation> resumes with no gap and no duplicate", p);
                        }
                    }
                }
            }
        }
        // Split the shard; a subscription to the parent ends with ChildShards and no continuation.
        let split = s.client.split_shard().stream_name(&stream).shard_to_split(SHARD0).new_starting_hash_key((1u128 << 127).to_string()).send().await;
        match split {
            Err(e) => s.fail("EFO: SplitShard", err_detail(&e)),
            Ok(_) => {
                let _ = wait_active(s, &stream).await;
                tokio::time::sleep(Duration::from_millis(5500)).await; // the 5 s rule for arn2 again
                match subscribe(s, &arn2, SHARD0, position(ShardIteratorType::TrimHorizon, None)).await {
                    Err(e) => s.fail("SubscribeToShard to a closed parent", err_detail(&e)),
                    Ok(mut o) => {
                        let mut p = vec![];
                        let mut events = vec![];
                        let deadline = Instant::now() + Duration::from_secs(10);
                        loop {
                            match next_event(&mut o, deadline.saturating_duration_since(Instant::now())).await {
                                Next::Event(ev) => events.push(ev),
                                Next::End => break,
                                Next::Error(d, _) => {
                                    p.push(d);
                                    break;
                                }
                                Next::Timeout => {
                                    p.push("still open 10 s later".into());
                                    break;
                                }
                            }
                        }
                        let n: usize = events.iter().map(|e| e.records().len()).sum();
                        expect!(p, n == 3 + 4 + 1 + 3, "{n} records from the parent, expected 11");
                        match events.last() {
                            None => p.push("no events".into()),
                            Some(last) => {
                                let mut kids: Vec<String> = last.child_shards().iter().map(|c| c.shard_id().to_string()).collect();
                                kids.sort();
                                expect!(p, kids == ["shardId-000000000001", "shardId-000000000002"], "ChildShards {kids:?}");
                                for c in last.child_shards() {
                                    expect!(p, c.parent_shards() == [SHARD0], "{}: ParentShards {:?}", c.shard_id(), c.parent_shards());
                                }
                                expect!(p, last.continuation_sequence_number().is_empty(), "closed shard end has ContinuationSequenceNumber {:?}", last.continuation_sequence_number());
                            }
                        }
                        s.check("SubscribeToShard to a closed parent: all its records, then ChildShards, no continuation, end of stream", p);
                    }
                }
            }
        }
    }

    // --- ListStreamConsumers, DeleteStream with consumers ---------------------------------------
    match s.client.list_stream_consumers().stream_arn(&stream_arn).send().await {
        Ok(o) => {
            let mut names: Vec<&str> = o.consumers().iter().map(|c| c.consumer_name()).collect();
            names.sort();
            s.check("ListStreamConsumers", if names == ["rust-efo", "rust-efo-2"] { vec![] } else { vec![format!("{names:?}")] });
        }
        Err(e) => s.fail("ListStreamConsumers", err_detail(&e)),
    }
    let r = s.client.delete_stream().stream_name(&stream).send().await;
    expect_typed_error(s, "DeleteStream with consumers -> ResourceInUseException", r, "ResourceInUseException", |e| e.is_resource_in_use_exception());
    match s.client.delete_stream().stream_name(&stream).enforce_consumer_deletion(true).send().await {
        Ok(_) => s.pass("DeleteStream EnforceConsumerDeletion=true"),
        Err(e) => s.fail("DeleteStream EnforceConsumerDeletion=true", err_detail(&e)),
    }
    let r = s.client.describe_stream_consumer().consumer_arn(&arn).send().await;
    expect_typed_error(s, "DescribeStreamConsumer after DeleteStream -> ResourceNotFoundException", r, "ResourceNotFoundException", |e| e.is_resource_not_found_exception());
}
