//! Writing webhook messages to the outbox, in the transaction of the change they announce.
