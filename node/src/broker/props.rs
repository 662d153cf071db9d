//! Message property names RocketMQ reserves for itself (`MessageConst`): a 4.x client sends some
//! of them with every message (`WAIT`, `PGROUP`, ...), and the broker keeps them so that 4.x
//! consumers get them back; they are never a user's own properties, so no front end shows them
//! as such.

/// RocketMQ's reserved property names, and `__FLAG` (a 4.x message's integer flag, kept as a
/// property). Not here: `RETRY_TOPIC` and `RECONSUME_TIME`, the retry bookkeeping a dead letter
/// shows its readers (a retry copy hides them, see `broker::moves`).
pub const SYSTEM: [&str; 35] = [
    "KEYS",
    "TAGS",
    "WAIT",
    "DELAY",
    "REAL_TOPIC",
    "REAL_QID",
    "TRAN_MSG",
    "PGROUP",
    "MIN_OFFSET",
    "MAX_OFFSET",
    "BUYER_ID",
    "ORIGIN_MESSAGE_ID",
    "TRANSFER_FLAG",
    "CORRECTION_FLAG",
    "MQ2_FLAG",
    "MSG_REGION",
    "TRACE_ON",
    "UNIQ_KEY",
    "MAX_RECONSUME_TIMES",
    "CONSUME_START_TIME",
    "TRAN_PREPARED_QUEUE_OFFSET",
    "TRANSACTION_CHECK_TIMES",
    "CHECK_IMMUNITY_TIME_IN_SECONDS",
    "INSTANCE_ID",
    "CORRELATION_ID",
    "REPLY_TO_CLIENT",
    "TTL",
    "ARRIVE_TIME",
    "PUSH_REPLY_TIME",
    "CLUSTER",
    "MSG_TYPE",
    "INNER_MULTI_DISPATCH",
    "INNER_MULTI_QUEUE_OFFSET",
    "SHARDING_KEY",
    FLAG,
];

/// A 4.x message's integer `flag`, kept as a property when it is not 0.
pub const FLAG: &str = "__FLAG";

/// Whether `name` is reserved (not a user property).
pub fn is_system(name: &str) -> bool {
    SYSTEM.contains(&name)
}
