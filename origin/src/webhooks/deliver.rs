//! Delivering webhook messages: claim, sign, send, schedule.
