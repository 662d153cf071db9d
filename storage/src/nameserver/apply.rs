//! Applying [`MetaCommand`]s to [`MetaState`]: pure, deterministic, and the only way it changes.

use super::command::GroupSpec;
use super::command::MetaCommand;
use super::command::MetaError;
use super::command::MetaResponse;
use super::command::TopicSpec;
use super::command::TopicUpdate;
use super::model::BrokerGroupInfo;
use super::model::ConsumerGroup;
use super::model::DEFAULT_RETENTION_SECS;
use super::model::MAX_QUEUE_COUNT;
use super::model::MessageType;
use super::model::MetaState;
use super::model::Permission;
use super::model::QueueRoute;
use super::model::Topic;
use super::names;
use super::records::Change;
use crate::types::GroupId;

/// Longest retention a topic may have: ten years, in seconds.
pub const RETENTION_SECS_MAX: u64 = 10 * 365 * 24 * 3600;
/// Most delivery attempts a consumer group may configure.
pub const MAX_DELIVERY_ATTEMPTS_MAX: u32 = 100;

impl MetaState {
    /// Checks whether `cmd` would be accepted, without changing anything. The leader calls this
    /// before proposing so that bad requests never reach the log; apply checks again.
    pub fn check(&self, cmd: &MetaCommand) -> Result<(), MetaError> {
        match cmd {
            MetaCommand::InitCluster { .. }
            | MetaCommand::UpsertMember { .. }
            | MetaCommand::SetRemotingAddr { .. } => Ok(()),
            MetaCommand::ReportLeader { .. } => Ok(()),
            MetaCommand::RetireMember { .. }
            | MetaCommand::ForgetMember { .. }
            | MetaCommand::SetBrokerMembers { .. } => Ok(()),
            MetaCommand::CreateTopic { spec, .. } => self.check_create_topic(spec),
            MetaCommand::UpdateTopic { name, update, .. } => self.check_update_topic(name, update),
            MetaCommand::DeleteTopic { name } => {
                self.topics.get(name).map(|_| ()).ok_or_else(|| MetaError::TopicNotFound(name.clone()))
            }
            MetaCommand::CreateGroup { spec, .. } => self.check_create_group(spec),
            MetaCommand::DeleteGroup { name } => {
                self.groups.get(name).map(|_| ()).ok_or_else(|| MetaError::GroupNotFound(name.clone()))
            }
        }
    }

    /// Applies `cmd`; returns the outcome and the records to persist (in the same write batch as
    /// the applied log id).
    pub fn apply(&mut self, cmd: &MetaCommand) -> (MetaResponse, Vec<Change>) {
        if let Err(e) = self.check(cmd) {
            return (MetaResponse::Rejected(e), Vec::new());
        }
        let mut changes = Vec::new();
        let response = match cmd {
            MetaCommand::InitCluster { members, broker_groups } => {
                if !self.initialized {
                    self.initialized = true;
                    changes.push(Change::initialized());
                    for m in members {
                        self.members.insert(m.id, m.clone());
                        changes.push(Change::member(m));
                    }
                    for spec in broker_groups {
                        let info = BrokerGroupInfo {
                            id: spec.id,
                            name: GroupId(spec.id).name(),
                            members: spec.members.clone(),
                            leader: None,
                            term: 0,
                        };
                        changes.push(Change::broker_group(&info));
                        self.broker_groups.insert(spec.id, info);
                    }
                }
                MetaResponse::Done
            }
            MetaCommand::UpsertMember { member } => {
                let mut member = member.clone();
                if member.remoting_addr.is_none() {
                    member.remoting_addr = self.members.get(&member.id).and_then(|m| m.remoting_addr.clone());
                }
                if self.members.get(&member.id) != Some(&member) && !self.retired.contains(&member.id) {
                    changes.push(Change::member(&member));
                    self.members.insert(member.id, member);
                }
                MetaResponse::Done
            }
            MetaCommand::SetRemotingAddr { id, addr } => {
                if let Some(m) = self.members.get_mut(id)
                    && m.remoting_addr != *addr
                {
                    m.remoting_addr = addr.clone();
                    changes.push(Change::member(m));
                }
                MetaResponse::Done
            }
            MetaCommand::CreateTopic { spec, now_ms } => {
                let topic = self.new_topic(spec, *now_ms);
                changes.push(Change::topic(&topic));
                self.topics.insert(topic.name.clone(), topic.clone());
                MetaResponse::Topic(topic)
            }
            MetaCommand::UpdateTopic { name, update, now_ms } => {
                let group_ids: Vec<u32> = self.broker_groups.keys().copied().collect();
                let Some(topic) = self.topics.get_mut(name) else {
                    return (MetaResponse::Rejected(MetaError::TopicNotFound(name.clone())), changes);
                };
                if let Some(n) = update.queue_count {
                    for q in topic.queue_count()..n {
                        topic
                            .queues
                            .push(QueueRoute { queue_id: q, group: group_ids[q as usize % group_ids.len()] });
                    }
                }
                if let Some(t) = update.message_type {
                    topic.message_type = t;
                }
                if let Some(p) = update.permission {
                    topic.permission = p;
                }
                if let Some(r) = update.retention_secs {
                    topic.retention_secs = r;
                }
                topic.updated_at_ms = *now_ms;
                changes.push(Change::topic(topic));
                MetaResponse::Topic(topic.clone())
            }
            MetaCommand::DeleteTopic { name } => {
                self.topics.remove(name);
                changes.push(Change::delete_topic(name));
                MetaResponse::Done
            }
            MetaCommand::CreateGroup { spec, now_ms } => {
                let group = ConsumerGroup {
                    name: spec.name.clone(),
                    mode: spec.mode,
                    fifo: spec.fifo,
                    max_delivery_attempts: spec.max_delivery_attempts,
                    consume_from: spec.consume_from,
                    created_at_ms: *now_ms,
                };
                changes.push(Change::group(&group));
                self.groups.insert(group.name.clone(), group.clone());
                // The group's retry and dead-letter topics come with it (one queue per broker
                // group, so each broker group keeps its own retries and dead letters); they
                // outlive the group.
                for name in [names::retry_topic(&spec.name), names::dlq_topic(&spec.name)] {
                    if self.topics.contains_key(&name) || self.broker_groups.is_empty() {
                        continue;
                    }
                    let spec = TopicSpec {
                        name,
                        queue_count: self.broker_groups.len() as u32,
                        message_type: MessageType::Mixed,
                        permission: Permission::Read,
                        retention_secs: DEFAULT_RETENTION_SECS,
                        system: true,
                    };
                    let topic = self.new_topic(&spec, *now_ms);
                    changes.push(Change::topic(&topic));
                    self.topics.insert(topic.name.clone(), topic);
                }
                MetaResponse::Group(group)
            }
            MetaCommand::DeleteGroup { name } => {
                self.groups.remove(name);
                changes.push(Change::delete_group(name));
                MetaResponse::Done
            }
            MetaCommand::ReportLeader { group, leader, term } => {
                if let Some(info) = self.broker_groups.get_mut(group)
                    && *term >= info.term
                    && (info.leader != Some(*leader) || info.term != *term)
                {
                    info.leader = Some(*leader);
                    info.term = *term;
                    changes.push(Change::broker_group(info));
                }
                MetaResponse::Done
            }
            MetaCommand::RetireMember { id } => {
                if self.retired.insert(*id) {
                    changes.push(Change::retired(*id));
                }
                MetaResponse::Done
            }
            MetaCommand::ForgetMember { id } => {
                if self.retired.contains(id) && self.members.remove(id).is_some() {
                    changes.push(Change::delete_member(*id));
                }
                MetaResponse::Done
            }
            MetaCommand::SetBrokerMembers { group, members } => {
                if let Some(info) = self.broker_groups.get_mut(group)
                    && info.members != *members
                {
                    info.members = members.clone();
                    changes.push(Change::broker_group(info));
                }
                MetaResponse::Done
            }
        };
        (response, changes)
    }

    /// A topic as `spec` describes it, its queues spread over the broker groups in id order
    /// (queue `q` on the `q mod n`-th group). The caller checked there is a broker group.
    fn new_topic(&self, spec: &TopicSpec, now_ms: i64) -> Topic {
        let group_ids: Vec<u32> = self.broker_groups.keys().copied().collect();
        let queues = (0..spec.queue_count)
            .map(|q| QueueRoute { queue_id: q, group: group_ids[q as usize % group_ids.len()] })
            .collect();
        Topic {
            name: spec.name.clone(),
            message_type: spec.message_type,
            permission: spec.permission,
            retention_secs: spec.retention_secs,
            queues,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        }
    }

    fn check_create_topic(&self, spec: &TopicSpec) -> Result<(), MetaError> {
        if spec.system {
            names::check_syntax("topic", &spec.name)?;
        } else {
            names::check_topic(&spec.name)?;
        }
        check_queue_count(spec.queue_count)?;
        check_retention(spec.retention_secs)?;
        if self.broker_groups.is_empty() {
            return Err(MetaError::NoBrokerGroups);
        }
        if self.topics.contains_key(&spec.name) {
            return Err(MetaError::TopicExists(spec.name.clone()));
        }
        Ok(())
    }

    fn check_update_topic(&self, name: &str, update: &TopicUpdate) -> Result<(), MetaError> {
        let topic = self.topics.get(name).ok_or_else(|| MetaError::TopicNotFound(name.to_string()))?;
        if let Some(n) = update.queue_count {
            check_queue_count(n)?;
            if n < topic.queue_count() {
                return Err(MetaError::Invalid(format!(
                    "queue count of topic {name:?} can only grow (it has {}, asked for {n}): \
                     messages in removed queues would become unreachable",
                    topic.queue_count()
                )));
            }
            if self.broker_groups.is_empty() {
                return Err(MetaError::NoBrokerGroups);
            }
        }
        if let Some(r) = update.retention_secs {
            check_retention(r)?;
        }
        Ok(())
    }

    fn check_create_group(&self, spec: &GroupSpec) -> Result<(), MetaError> {
        names::check_group(&spec.name)?;
        if spec.max_delivery_attempts == 0 || spec.max_delivery_attempts > MAX_DELIVERY_ATTEMPTS_MAX {
            return Err(MetaError::Invalid(format!(
                "max delivery attempts must be 1-{MAX_DELIVERY_ATTEMPTS_MAX}, got {}",
                spec.max_delivery_attempts
            )));
        }
        if self.groups.contains_key(&spec.name) {
            return Err(MetaError::GroupExists(spec.name.clone()));
        }
        Ok(())
    }
}

fn check_queue_count(n: u32) -> Result<(), MetaError> {
    if n == 0 || n > MAX_QUEUE_COUNT {
        return Err(MetaError::Invalid(format!("queue count must be 1-{MAX_QUEUE_COUNT}, got {n}")));
    }
    Ok(())
}

fn check_retention(secs: u64) -> Result<(), MetaError> {
    if secs == 0 || secs > RETENTION_SECS_MAX {
        return Err(MetaError::Invalid(format!(
            "retention must be 1 s to 10 years ({RETENTION_SECS_MAX} s), got {secs} s"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
