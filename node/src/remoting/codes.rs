//! Request and response codes of the Remoting protocol (RocketMQ 4.9.x `RequestCode` and
//! `ResponseCode`), the ones this server answers or sends.

/// Request codes.
pub mod request {
    /// Send one message, long field names (Go, C++).
    pub const SEND_MESSAGE: i32 = 10;
    /// Pull messages of a queue.
    pub const PULL_MESSAGE: i32 = 11;
    /// Messages by key.
    pub const QUERY_MESSAGE: i32 = 12;
    /// A consumer group's committed offset.
    pub const QUERY_CONSUMER_OFFSET: i32 = 14;
    /// Commit a consumer group's offset.
    pub const UPDATE_CONSUMER_OFFSET: i32 = 15;
    /// Offset of a queue at a time.
    pub const SEARCH_OFFSET_BY_TIMESTAMP: i32 = 29;
    /// End offset of a queue.
    pub const GET_MAX_OFFSET: i32 = 30;
    /// First offset of a queue.
    pub const GET_MIN_OFFSET: i32 = 31;
    /// Store time of a queue's first message.
    pub const GET_EARLIEST_MSG_STORETIME: i32 = 32;
    /// A message by its offset message id.
    pub const VIEW_MESSAGE_BY_ID: i32 = 33;
    /// A client's producers and consumers.
    pub const HEART_BEAT: i32 = 34;
    /// A client leaves.
    pub const UNREGISTER_CLIENT: i32 = 35;
    /// A consumer hands a message back for a later retry.
    pub const CONSUMER_SEND_MSG_BACK: i32 = 36;
    /// Commit or roll back a transaction.
    pub const END_TRANSACTION: i32 = 37;
    /// The client ids of a consumer group.
    pub const GET_CONSUMER_LIST_BY_GROUP: i32 = 38;
    /// Broker to producer: what became of a transaction?
    pub const CHECK_TRANSACTION_STATE: i32 = 39;
    /// Broker to consumer: the group's members changed, rebalance now.
    pub const NOTIFY_CONSUMER_IDS_CHANGED: i32 = 40;
    /// Lock queues for an orderly consumer.
    pub const LOCK_BATCH_MQ: i32 = 41;
    /// Unlock queues.
    pub const UNLOCK_BATCH_MQ: i32 = 42;
    /// Check a consumer's subscription (SQL92).
    pub const CHECK_CLIENT_CONFIG: i32 = 46;
    /// Routes of a topic.
    pub const GET_ROUTEINFO_BY_TOPIC: i32 = 105;
    /// The clusters and their brokers.
    pub const GET_BROKER_CLUSTER_INFO: i32 = 106;
    /// Send one message, one-letter field names (Java).
    pub const SEND_MESSAGE_V2: i32 = 310;
    /// Send a batch of messages.
    pub const SEND_BATCH_MESSAGE: i32 = 320;
    /// Send a reply message (request-reply).
    pub const SEND_REPLY_MESSAGE_V2: i32 = 325;
    /// Pull for a lite pull consumer (rocketmq-client-rust).
    pub const LITE_PULL_MESSAGE: i32 = 361;
}

/// Response codes.
pub mod response {
    /// Done.
    pub const SUCCESS: i32 = 0;
    /// Failed inside the broker.
    pub const SYSTEM_ERROR: i32 = 1;
    /// Too busy now; retry.
    pub const SYSTEM_BUSY: i32 = 2;
    /// This code is not served.
    pub const REQUEST_CODE_NOT_SUPPORTED: i32 = 3;
    /// The message breaks a rule (size, name, properties).
    pub const MESSAGE_ILLEGAL: i32 = 13;
    /// The broker cannot serve now (no leader).
    pub const SERVICE_NOT_AVAILABLE: i32 = 14;
    /// Not allowed.
    pub const NO_PERMISSION: i32 = 16;
    /// No such topic.
    pub const TOPIC_NOT_EXIST: i32 = 17;
    /// No new message (after the long poll).
    pub const PULL_NOT_FOUND: i32 = 19;
    /// Pull again at once.
    pub const PULL_RETRY_IMMEDIATELY: i32 = 20;
    /// The offset is outside the queue: continue at `nextBeginOffset`.
    pub const PULL_OFFSET_MOVED: i32 = 21;
    /// Nothing found (no committed offset, no message).
    pub const QUERY_NOT_FOUND: i32 = 22;
    /// The subscription expression does not parse.
    pub const SUBSCRIPTION_PARSE_FAILED: i32 = 23;
    /// The consumer's subscription is not known (heartbeat first).
    pub const SUBSCRIPTION_NOT_EXIST: i32 = 24;
    /// No such consumer group.
    pub const SUBSCRIPTION_GROUP_NOT_EXIST: i32 = 26;
    /// The flow-control answer of a send (the Java producer backs off).
    pub const NO_BUYER_ID: i32 = 204;
}
