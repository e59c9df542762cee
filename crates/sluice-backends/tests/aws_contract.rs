//! The backend contract, run against the AWS implementations through the
//! real Kinesis, S3 and SQS APIs of a moto_server the harness starts.
//! What moto cannot show (a closed parent shard that ends, injected partial
//! failures) is covered against the local backend in `local_contract.rs`.

mod contract;

use std::time::Duration;

use sluice_backends::aws::{
    AwsClients, AwsConfig, KinesisStream, S3ObjectStore, SqsQueue, ensure_bucket,
    ensure_bucket_notification, ensure_queue, ensure_stream,
};
use sluice_testkit::{MotoServer, unique_name};

async fn clients() -> AwsClients {
    let moto = MotoServer::shared().await;
    AwsClients::from_config(&AwsConfig::emulator(moto.endpoint()))
        .await
        .expect("emulator config is valid")
}

async fn stream(shards: u32) -> KinesisStream {
    let clients = clients().await;
    let name = unique_name("stream");
    ensure_stream(&clients.kinesis, &name, shards)
        .await
        .unwrap();
    KinesisStream::from_client(clients.kinesis, name)
}

async fn bucket() -> S3ObjectStore {
    let clients = clients().await;
    let name = unique_name("bucket");
    ensure_bucket(&clients.s3, &name).await.unwrap();
    S3ObjectStore::from_client(clients.s3, name)
}

async fn queue(visibility: Duration, dead_letter: Option<u32>) -> (SqsQueue, Option<SqsQueue>) {
    let clients = clients().await;
    let name = unique_name("queue");
    let dlq_name = format!("{name}-dlq");
    let ensured = ensure_queue(
        &clients.sqs,
        &name,
        visibility,
        dead_letter.map(|max| (dlq_name.as_str(), max)),
    )
    .await
    .unwrap();
    let dlq = ensured
        .dead_letter
        .map(|d| SqsQueue::from_client(clients.sqs.clone(), d.url));
    (SqsQueue::from_client(clients.sqs, ensured.queue.url), dlq)
}

#[tokio::test]
async fn stream_ordered_per_shard_and_resumable() {
    contract::stream::ordered_per_shard_and_resumable(&stream(4).await).await;
}

#[tokio::test]
async fn stream_latest_sees_only_new_records() {
    contract::stream::latest_sees_only_new_records(&stream(2).await).await;
}

#[tokio::test]
async fn resharding_2_to_4() {
    contract::stream::resharding_is_visible(&stream(2).await).await;
}

#[tokio::test]
async fn object_store_put_get_list_delete() {
    contract::object_store::put_get_list_delete(&bucket().await).await;
}

#[tokio::test]
async fn object_store_conditional_puts() {
    contract::object_store::conditional_puts(&bucket().await).await;
}

#[tokio::test]
async fn object_store_put_notifies_queue() {
    let store = bucket().await;
    let (queue, _) = queue(Duration::from_secs(30), None).await;
    let clients = clients().await;
    ensure_bucket_notification(
        &clients.s3,
        &clients.sqs,
        store.bucket(),
        queue.queue_url(),
        "raw/",
        "",
    )
    .await
    .unwrap();
    contract::object_store::put_notifies_queue(&store, &queue).await;
}

#[tokio::test]
async fn queue_send_receive_delete() {
    contract::queue::send_receive_delete(&queue(Duration::from_secs(30), None).await.0).await;
}

#[tokio::test]
async fn queue_redelivery_after_visibility_timeout() {
    contract::queue::redelivery_after_visibility_timeout(
        &queue(Duration::from_secs(30), None).await.0,
    )
    .await;
}

#[tokio::test]
async fn queue_kept_hidden_while_worked_on() {
    contract::queue::kept_hidden_while_worked_on(&queue(Duration::from_secs(30), None).await.0)
        .await;
}

#[tokio::test]
async fn queue_dead_letter_after_max_receives() {
    let (queue, dlq) = queue(Duration::from_secs(30), Some(3)).await;
    contract::queue::dead_letter_after_max_receives(&queue, &dlq.unwrap(), 3).await;
}
