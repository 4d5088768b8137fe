//! The end of a call: the final answer, CANCEL, timeouts, and a caller that leaves.
//!
//! Whatever races (a CANCEL crossing a YIELD, a timeout crossing a YIELD, the callee or the caller
//! leaving), the caller gets exactly one final answer, because one place decides it: the removal of
//! the [`PendingInvocation`](crate::router::session::PendingInvocation) on the callee's shard. The
//! YIELD, the callee's ERROR, the CANCEL, the timeout and the callee's departure all try to take it;
//! whoever takes it answers, and everything that arrives afterwards finds nothing and is dropped.
//!
//! The caller's shard keeps only a count of calls in flight per caller (the per-caller cap). A
//! CANCEL and a caller's departure are sent to every shard, and only when that caller has calls in
//! flight; each shard finds that caller's invocations in its [`CallIndex`](crate::router::inflight)
//! (caller → request → callee and INVOCATION id), so they cost what that caller has pending, not
//! what the shard has.

use std::borrow::Cow;

use bytes::Bytes;

use crate::protocol::errors;
use crate::protocol::features::ClientFeatures;
use crate::protocol::{Message, Val};
use crate::router::dealer::error_frame;
use crate::router::inflight::Slot;
use crate::router::{Flow, Router, ShardMsg};

/// How a CANCEL ends a call (`CANCEL.Options.mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelMode {
    /// Answer the caller now; the callee is not told and its answer is dropped.
    Skip,
    /// Tell the callee; its answer (RESULT or ERROR) is the caller's answer.
    Kill,
    /// Answer the caller now and tell the callee; its answer is dropped.
    KillNoWait,
}

impl CancelMode {
    /// The mode named in CANCEL.Options; the spec's default is `killnowait`.
    pub fn from_options(options: &Val<'_>) -> Self {
        if options.is_empty_dict() {
            return CancelMode::KillNoWait;
        }
        match options.get("mode").and_then(|v| v.as_str()).as_deref() {
            Some("skip") => CancelMode::Skip,
            Some("kill") => CancelMode::Kill,
            _ => CancelMode::KillNoWait,
        }
    }

    fn name(self) -> &'static str {
        match self {
            CancelMode::Skip => "skip",
            CancelMode::Kill => "kill",
            CancelMode::KillNoWait => "killnowait",
        }
    }
}

impl Router {
    /// Sends the final answer of a call to its caller (or nothing, when no frame could be built)
    /// and frees the caller's in-flight slot, wherever the caller is.
    pub(crate) fn finish_call(&mut self, shard: usize, caller: u64, frame: Option<Bytes>) {
        if shard == self.shard {
            self.on_answer(caller, frame);
        } else {
            self.out.send(
                shard,
                ShardMsg::Answer {
                    session: caller,
                    frame,
                },
            );
        }
    }

    /// A call of `caller` (on this shard) ended with `frame`.
    pub(crate) fn on_answer(&mut self, caller: u64, frame: Option<Bytes>) {
        // The router's own call of a dynamic authorizer (caller ids above 2^53 are no session's).
        if caller > crate::router::ids::MAX_ID {
            self.on_authorizer_answer(caller, frame);
            return;
        }
        // The router's own call of a dynamic authenticator, for a login not yet a session.
        if !self.awaiting.is_empty() && self.awaiting.contains_key(&caller) {
            if let Some(frame) = frame {
                self.on_authenticator_answer(caller, &frame);
            }
            return;
        }
        let Some(s) = self.sessions.get_mut(&caller) else {
            return;
        };
        s.calls_in_flight = s.calls_in_flight.saturating_sub(1);
        if let Some(frame) = frame {
            let peer = s.peer.clone();
            self.push(&peer, frame);
        }
    }

    /// CANCEL from a caller: every shard looks for the call (only one can have it).
    pub(crate) fn on_cancel(&mut self, sid: u64, request: u64, options: &Val<'_>) -> Flow {
        let mode = CancelMode::from_options(options);
        if self
            .sessions
            .get(&sid)
            .is_none_or(|s| s.calls_in_flight == 0)
        {
            return Flow::Continue; // answered already: nothing to cancel
        }
        self.broadcast_no_ack(|| ShardMsg::Cancel {
            caller: sid,
            request,
            mode,
        });
        self.cancel_here(sid, request, mode);
        Flow::Continue
    }

    /// Cancels call `request` of `caller` if this shard holds its invocation (or holds it back until
    /// a registration is confirmed).
    pub(crate) fn cancel_here(&mut self, caller: u64, request: u64, mode: CancelMode) {
        if self.cancel_early(caller, request) {
            return;
        }
        let Some((callee, invocation)) = self.find_invocation(caller, request) else {
            self.forward_cancel(caller, request, mode);
            return;
        };
        let canceling = self.callee_cancels(callee);
        match mode {
            CancelMode::Kill if canceling => self.interrupt(callee, invocation, mode, None),
            CancelMode::Skip | CancelMode::Kill => {
                self.end_invocation(
                    callee,
                    invocation,
                    errors::CANCELED,
                    "canceled by the caller",
                );
            }
            CancelMode::KillNoWait => {
                self.end_invocation(
                    callee,
                    invocation,
                    errors::CANCELED,
                    "canceled by the caller",
                );
                if canceling {
                    self.interrupt(callee, invocation, mode, None);
                }
            }
        }
    }

    /// A call still held back for an unconfirmed registration is answered and dropped.
    fn cancel_early(&mut self, caller: u64, request: u64) -> bool {
        let found = self.unconfirmed.values_mut().find_map(|early| {
            let pos = early
                .iter()
                .position(|i| i.caller == caller && i.caller_request == request)?;
            Some(early.remove(pos))
        });
        match found {
            Some(inv) => {
                inv.fail(self, errors::CANCELED, "canceled by the caller");
                true
            }
            None => false,
        }
    }

    /// The callee session and INVOCATION id of `caller`'s call `request`, if pending here.
    fn find_invocation(&self, caller: u64, request: u64) -> Option<(u64, u64)> {
        let slot = self.inflight.find(caller, request)?;
        let pending = self
            .sessions
            .get(&slot.callee)?
            .invocations
            .get(&slot.invocation)?;
        (pending.caller == caller).then_some((slot.callee, slot.invocation))
    }

    fn callee_cancels(&self, callee: u64) -> bool {
        self.sessions
            .get(&callee)
            .is_some_and(|s| s.features.has(ClientFeatures::CALLEE_CALL_CANCELING))
    }

    /// Ends a pending invocation with an ERROR to its caller; false if it had ended already.
    fn end_invocation(&mut self, callee: u64, invocation: u64, error: &str, text: &str) -> bool {
        let Some(p) = self
            .sessions
            .get_mut(&callee)
            .and_then(|s| s.invocations.remove(&invocation))
        else {
            return false;
        };
        let slot = Slot { callee, invocation };
        self.inflight.remove(p.caller, p.caller_request, slot);
        self.unload(p.caller_shard, p.counted);
        let frame = error_frame(p.caller_enc, p.caller_request, error, text);
        self.finish_call(p.caller_shard, p.caller, frame);
        true
    }

    /// Sends INTERRUPT for `invocation` to `callee`.
    fn interrupt(&self, callee: u64, invocation: u64, mode: CancelMode, reason: Option<&str>) {
        let mut options = vec![(Cow::Borrowed("mode"), Val::Str(Cow::Borrowed(mode.name())))];
        if let Some(r) = reason {
            options.push((Cow::Borrowed("reason"), Val::Str(Cow::Borrowed(r))));
        }
        self.reply(
            callee,
            &Message::Interrupt {
                request: invocation,
                options: Val::Dict(options),
            },
        );
    }

    /// A chunk of a progressive call could not be sent to the callee: the call ends with `error`
    /// and the callee is interrupted.
    pub(crate) fn fail_stream(&mut self, callee: u64, invocation: u64, error: &str, text: &str) {
        let ended = self.end_invocation(callee, invocation, error, text);
        if ended && self.callee_cancels(callee) {
            self.interrupt(callee, invocation, CancelMode::KillNoWait, Some(error));
        }
    }

    /// Arms the timeout of INVOCATION `invocation` of `callee`, first pruning the heap of ended
    /// calls when it has grown enough (calls with long timeouts answered quickly).
    pub(crate) fn start_call_timer(
        &mut self,
        ms: u64,
        callee: u64,
        invocation: u64,
        caller_request: u64,
    ) {
        if self.timers.wants_pruning() {
            let sessions = &self.sessions;
            self.timers.prune(|d| {
                sessions
                    .get(&d.callee)
                    .and_then(|s| s.invocations.get(&d.invocation))
                    .is_some_and(|p| p.caller_request == d.caller_request)
            });
        }
        self.timers.start(ms, callee, invocation, caller_request);
    }

    /// Ends the calls whose timeout has come due: `wamp.error.timeout` to the caller, INTERRUPT to
    /// a callee that announced call canceling (mode `killnowait`, otherwise `skip`).
    pub fn expire_calls(&mut self) {
        let now = self.timers.now_ms();
        while let Some(due) = self.timers.pop_due(now) {
            let current = self
                .sessions
                .get(&due.callee)
                .and_then(|s| s.invocations.get(&due.invocation))
                .is_some_and(|p| p.caller_request == due.caller_request);
            if !current {
                continue; // answered (or canceled) before its deadline
            }
            self.end_invocation(
                due.callee,
                due.invocation,
                errors::TIMEOUT,
                "the call timed out",
            );
            if self.callee_cancels(due.callee) {
                self.interrupt(
                    due.callee,
                    due.invocation,
                    CancelMode::KillNoWait,
                    Some(errors::TIMEOUT),
                );
            }
        }
    }

    /// True while call timeouts are armed on this shard.
    pub fn has_call_timers(&self) -> bool {
        !self.timers.is_empty()
    }

    /// A caller with calls in flight left: tell every shard so that its callees are interrupted and
    /// their slots freed.
    pub(crate) fn caller_left(&mut self, caller: u64) {
        self.broadcast_no_ack(|| ShardMsg::CallerGone { caller });
        self.drop_calls_of(caller);
    }

    /// Frees the pending invocations (and held-back calls) of a caller that left; callees that
    /// announced call canceling get INTERRUPT.
    pub(crate) fn drop_calls_of(&mut self, caller: u64) {
        self.forward_caller_gone(caller);
        let mut unloads = Vec::new();
        for early in self.unconfirmed.values_mut() {
            early.retain(|i| {
                let gone = i.caller == caller;
                if gone && i.route.counted != 0 {
                    unloads.push((i.caller_shard, i.route.counted));
                }
                !gone
            });
        }
        let mut interrupts = Vec::new();
        for slot in self.inflight.take_caller(caller) {
            let Some(s) = self.sessions.get_mut(&slot.callee) else {
                continue;
            };
            if s.invocations.get(&slot.invocation).map(|p| p.caller) != Some(caller) {
                continue;
            }
            let p = s.invocations.remove(&slot.invocation).expect("looked up");
            if s.features.has(ClientFeatures::CALLEE_CALL_CANCELING) {
                interrupts.push((slot.callee, slot.invocation));
            }
            if p.counted != 0 {
                unloads.push((p.caller_shard, p.counted));
            }
        }
        for (shard, callee) in unloads {
            self.unload(shard, callee);
        }
        for (callee, inv) in interrupts {
            self.interrupt(callee, inv, CancelMode::KillNoWait, Some(errors::CANCELED));
        }
    }
}
