//! `apache.rocketmq.v2.MessagingService` on the client port.
//!
//! Business errors travel as a `Status` in the response body with gRPC OK, as the RocketMQ proxy
//! does; the official clients read them from there. Answers about a group carry the
//! [`LEADER_HEADER`](super::context::LEADER_HEADER) so our SDK goes to the leader directly.

use std::sync::Arc;

use raftmq_proto::rocketmq as pb;
use raftmq_proto::rocketmq::messaging_service_server::MessagingService;
use raftmq_storage::GroupId;
use tonic::Request;
use tonic::Response;
use tonic::Status;
use tonic::Streaming;
use tonic::metadata::MetadataValue;

use super::context::Context;
use super::context::LEADER_HEADER;
use super::pull::PullStream;
use super::receive::ReceiveStream;
use super::status::status;
use super::telemetry::TelemetryStream;
use crate::session::client_id;

/// The MessagingService of one node.
pub struct MessagingServiceImpl {
    ctx: Arc<Context>,
}

impl MessagingServiceImpl {
    /// A service over `ctx`.
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx }
    }

    fn with_leaders<T>(&self, body: T, groups: &[GroupId]) -> Response<T> {
        let mut resp = Response::new(body);
        for g in groups {
            if let Some(v) = self.ctx.leader_header(*g).and_then(|h| MetadataValue::try_from(h).ok()) {
                resp.metadata_mut().append(LEADER_HEADER, v);
            }
        }
        resp
    }

    /// The group of `(topic, queue)` if both exist, for the leader header.
    fn group_of(&self, q: Option<&pb::MessageQueue>) -> Vec<GroupId> {
        let Some(q) = q else { return Vec::new() };
        let topic = q.topic.as_ref().map(|t| t.name.as_str()).unwrap_or_default();
        self.ctx
            .topic_local(topic)
            .ok()
            .flatten()
            .and_then(|t| self.ctx.queue_group(&t, q.id).ok())
            .into_iter()
            .collect()
    }
}

fn unimplemented(what: &str) -> Status {
    Status::unimplemented(format!("{what} is not implemented by this version of raftmq"))
}

#[tonic::async_trait]
impl MessagingService for MessagingServiceImpl {
    type ReceiveMessageStream = ReceiveStream;
    type PullMessageStream = PullStream;
    type TelemetryStream = TelemetryStream;

    #[tracing::instrument(level = "debug", skip_all, fields(topic = req.get_ref().topic.as_ref().map(|t| t.name.as_str()).unwrap_or_default()))]
    async fn query_route(
        &self,
        req: Request<pb::QueryRouteRequest>,
    ) -> Result<Response<pb::QueryRouteResponse>, Status> {
        if let Err(e) = client_id(req.metadata()) {
            return Ok(Response::new(pb::QueryRouteResponse {
                status: Some(status(&e)),
                message_queues: Vec::new(),
            }));
        }
        Ok(Response::new(self.ctx.query_route(req.into_inner()).await))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(n = req.get_ref().messages.len()))]
    async fn send_message(
        &self,
        req: Request<pb::SendMessageRequest>,
    ) -> Result<Response<pb::SendMessageResponse>, Status> {
        let t0 = std::time::Instant::now();
        if let Err(e) = client_id(req.metadata()) {
            return Ok(Response::new(pb::SendMessageResponse {
                status: Some(status(&e)),
                entries: Vec::new(),
            }));
        }
        let (resp, groups) = self.ctx.send(req).await;
        let r = Ok(self.with_leaders(resp, &groups));
        self.ctx.stats.send_latency.observe(t0.elapsed());
        r
    }

    #[tracing::instrument(level = "debug", skip_all, fields(offset = req.get_ref().offset))]
    async fn pull_message(
        &self,
        req: Request<pb::PullMessageRequest>,
    ) -> Result<Response<Self::PullMessageStream>, Status> {
        let groups = self.group_of(req.get_ref().message_queue.as_ref());
        if let Err(e) = client_id(req.metadata()) {
            return Ok(Response::new(super::pull::pull_status(e)));
        }
        let stream = self.ctx.pull(req).await?;
        Ok(self.with_leaders(stream, &groups))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn update_offset(
        &self,
        req: Request<pb::UpdateOffsetRequest>,
    ) -> Result<Response<pb::UpdateOffsetResponse>, Status> {
        let groups = self.group_of(req.get_ref().message_queue.as_ref());
        if let Err(e) = client_id(req.metadata()) {
            return Ok(Response::new(pb::UpdateOffsetResponse { status: Some(status(&e)) }));
        }
        Ok(self.with_leaders(self.ctx.update_offset(req).await, &groups))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn get_offset(
        &self,
        req: Request<pb::GetOffsetRequest>,
    ) -> Result<Response<pb::GetOffsetResponse>, Status> {
        let groups = self.group_of(req.get_ref().message_queue.as_ref());
        if let Err(e) = client_id(req.metadata()) {
            return Ok(Response::new(pb::GetOffsetResponse { status: Some(status(&e)), offset: 0 }));
        }
        Ok(self.with_leaders(self.ctx.get_offset(req).await, &groups))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn query_offset(
        &self,
        req: Request<pb::QueryOffsetRequest>,
    ) -> Result<Response<pb::QueryOffsetResponse>, Status> {
        let groups = self.group_of(req.get_ref().message_queue.as_ref());
        if let Err(e) = client_id(req.metadata()) {
            return Ok(Response::new(pb::QueryOffsetResponse { status: Some(status(&e)), offset: 0 }));
        }
        Ok(self.with_leaders(self.ctx.query_offset(req).await, &groups))
    }

    async fn heartbeat(
        &self,
        req: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        Ok(Response::new(self.ctx.heartbeat(req)))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(topic = req.get_ref().topic.as_ref().map(|t| t.name.as_str()).unwrap_or_default()))]
    async fn query_assignment(
        &self,
        req: Request<pb::QueryAssignmentRequest>,
    ) -> Result<Response<pb::QueryAssignmentResponse>, Status> {
        Ok(Response::new(self.ctx.query_assignment(req).await))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = req.get_ref().group.as_ref().map(|g| g.name.as_str()).unwrap_or_default()))]
    async fn receive_message(
        &self,
        req: Request<pb::ReceiveMessageRequest>,
    ) -> Result<Response<Self::ReceiveMessageStream>, Status> {
        let broker = req
            .get_ref()
            .message_queue
            .as_ref()
            .and_then(|q| q.broker.as_ref())
            .and_then(|b| GroupId::parse(&b.name))
            .filter(|g| g.is_broker());
        let stream = self.ctx.receive(req).await;
        Ok(self.with_leaders(stream, &broker.into_iter().collect::<Vec<_>>()))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(n = req.get_ref().entries.len()))]
    async fn ack_message(
        &self,
        req: Request<pb::AckMessageRequest>,
    ) -> Result<Response<pb::AckMessageResponse>, Status> {
        Ok(Response::new(self.ctx.ack(req).await))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn forward_message_to_dead_letter_queue(
        &self,
        req: Request<pb::ForwardMessageToDeadLetterQueueRequest>,
    ) -> Result<Response<pb::ForwardMessageToDeadLetterQueueResponse>, Status> {
        Ok(Response::new(self.ctx.forward_to_dead_letter_queue(req).await))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn end_transaction(
        &self,
        req: Request<pb::EndTransactionRequest>,
    ) -> Result<Response<pb::EndTransactionResponse>, Status> {
        Ok(Response::new(self.ctx.end_transaction(req).await))
    }

    async fn telemetry(
        &self,
        req: Request<Streaming<pb::TelemetryCommand>>,
    ) -> Result<Response<Self::TelemetryStream>, Status> {
        Ok(Response::new(self.ctx.clone().telemetry(req).await?))
    }

    async fn notify_client_termination(
        &self,
        req: Request<pb::NotifyClientTerminationRequest>,
    ) -> Result<Response<pb::NotifyClientTerminationResponse>, Status> {
        Ok(Response::new(self.ctx.notify_termination(req)))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn change_invisible_duration(
        &self,
        req: Request<pb::ChangeInvisibleDurationRequest>,
    ) -> Result<Response<pb::ChangeInvisibleDurationResponse>, Status> {
        Ok(Response::new(self.ctx.change_invisible(req).await))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn recall_message(
        &self,
        req: Request<pb::RecallMessageRequest>,
    ) -> Result<Response<pb::RecallMessageResponse>, Status> {
        Ok(Response::new(self.ctx.recall(req).await))
    }

    async fn sync_lite_subscription(
        &self,
        _req: Request<pb::SyncLiteSubscriptionRequest>,
    ) -> Result<Response<pb::SyncLiteSubscriptionResponse>, Status> {
        Err(unimplemented("SyncLiteSubscription"))
    }
}
