//! wampd: a thread-per-core WAMP router.
